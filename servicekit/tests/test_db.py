"""The unit of work on a real MariaDB: deadlocks are retried, not surfaced."""

import importlib.util
import threading

import pytest
from sqlalchemy import text

from servicekit.config import ConfigError
from servicekit.db import (
    DRIVER_VARIABLE,
    is_duplicate_key,
    make_engine,
    make_session_factory,
    mysql_driver,
    mysql_url,
    transaction,
)
from servicekit.testing import ThrowawayDatabase

try:
    import MySQLdb
except ImportError:  # PyMySQL only: the fallback
    MySQLdb = None


@pytest.fixture(scope="module")
def engine():
    database = ThrowawayDatabase("servicekit")
    engine = make_engine(database.url, lock_wait_timeout_seconds=5)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counters (id INT PRIMARY KEY, value INT NOT NULL)"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    yield engine
    engine.dispose()
    database.drop()


UNITS = ["session", "connection"]


def unit_opener(engine, unit: str):
    """What a unit of work runs on: an ORM Session, or a Core Connection (orders-service's)."""
    return make_session_factory(engine) if unit == "session" else engine.connect


@pytest.fixture(params=UNITS)
def open_unit(request, engine):
    with engine.begin() as conn:
        conn.execute(text("UPDATE counters SET value = 0"))
    return unit_opener(engine, request.param)


def test_opposite_lock_order_deadlock_is_retried_and_both_apply(open_unit):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    attempts = {"a": 0, "b": 0}

    def lock_in_order(name, first, second):
        def work(session):
            attempts[name] += 1
            session.execute(text("UPDATE counters SET value = value + 1 WHERE id = :id"), {"id": first})
            if attempts[name] == 1:
                barrier.wait(timeout=10)  # both hold their first lock before asking for the second
            session.execute(text("UPDATE counters SET value = value + 1 WHERE id = :id"), {"id": second})

        try:
            transaction(open_unit, work)
        except BaseException as exc:  # surfaced to the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=lock_in_order, args=("a", 1, 2)),
        threading.Thread(target=lock_in_order, args=("b", 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert attempts["a"] + attempts["b"] == 3  # exactly one of them was the deadlock victim and retried
    with open_unit() as session:
        values = session.execute(text("SELECT value FROM counters ORDER BY id")).scalars().all()
    assert values == [2, 2]


def test_rollback_when_work_raises(open_unit):
    def work(session):
        session.execute(text("UPDATE counters SET value = value + 100 WHERE id = 1"))
        raise ValueError("business rule")

    with open_unit() as session:
        before = session.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one()
    with pytest.raises(ValueError):
        transaction(open_unit, work)
    with open_unit() as session:
        assert session.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one() == before


def test_duplicate_key_is_recognised(open_unit):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as info:
        transaction(open_unit, lambda s: s.execute(text("INSERT INTO counters VALUES (1, 0)")))
    assert is_duplicate_key(info.value)


# --- The driver: mysqlclient when installed, PyMySQL otherwise ----------------------------------


def test_a_mysql_url_gets_the_driver_of_the_process(monkeypatch):
    url = "mysql+pymysql://app:secret@db.example:3306/orders?charset=utf8mb4"
    monkeypatch.setenv(DRIVER_VARIABLE, "pymysql")
    assert mysql_url(url).drivername == "mysql+pymysql"
    monkeypatch.setenv(DRIVER_VARIABLE, "auto")
    expected = "mysqldb" if importlib.util.find_spec("MySQLdb") else "pymysql"
    translated = mysql_url(url)
    assert translated.drivername == f"mysql+{expected}"
    assert (translated.username, translated.password, translated.host, translated.database) == (
        "app",
        "secret",
        "db.example",
        "orders",
    )
    assert translated.query == {"charset": "utf8mb4"}
    assert mysql_url("mysql://app@db/orders").drivername == f"mysql+{expected}"
    assert mysql_url("sqlite:///var/orders.db").drivername == "sqlite"


def test_a_driver_choice_that_cannot_be_met_is_a_config_error(monkeypatch):
    monkeypatch.setenv(DRIVER_VARIABLE, "oracle")
    with pytest.raises(ConfigError, match="DB_DRIVER"):
        mysql_driver()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "MySQLdb" else object())
    assert mysql_driver("auto") == "pymysql"  # the fallback when mysqlclient is not installed
    with pytest.raises(ConfigError, match="not installed"):
        mysql_driver("mysqlclient")


DRIVERS = ["pymysql", pytest.param("mysqlclient", marks=pytest.mark.skipif(MySQLdb is None, reason="no mysqlclient"))]


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_committed_connection_goes_back_to_the_pool_without_a_rollback(engine, monkeypatch, driver, unit):
    """One round trip saved per request: the pool's ROLLBACK on check-in is skipped when the
    connection's last COMMIT or ROLLBACK left it idle (PyMySQL: the server's status flag;
    mysqlclient: a mark kept by servicekit.db), and still sent when a transaction is open."""
    monkeypatch.setenv(DRIVER_VARIABLE, driver)
    engine = make_engine(engine.url, pool_size=1, max_overflow=0)
    factory = unit_opener(engine, unit)
    assert engine.dialect.driver == ("mysqldb" if driver == "mysqlclient" else "pymysql")

    def rollbacks() -> int:
        with engine.connect() as conn:
            value = conn.exec_driver_sql("SHOW SESSION STATUS LIKE 'Com_rollback'").one()[1]
            conn.rollback()
        return int(value)

    try:
        before = rollbacks()
        for _ in range(3):
            transaction(factory, lambda s: s.execute(text("UPDATE counters SET value = value WHERE id = 1")))
        assert rollbacks() == before + 1  # only the explicit one in rollbacks() itself
        # A transaction SQLAlchemy did not begin (on the driver's own connection) is rolled back
        # on check-in: the server's flag says so, or (mysqlclient) no COMMIT since the checkout.
        with engine.connect() as conn:
            conn.connection.dbapi_connection.cursor().execute("UPDATE counters SET value = value WHERE id = 1")
        assert rollbacks() == before + 3  # rollbacks()'s own, and the one on check-in
    finally:
        engine.dispose()
