"""The unit of work on a real MariaDB: deadlocks are retried, not surfaced."""

import threading

import pytest
from sqlalchemy import text

from servicekit.db import is_duplicate_key, make_engine, make_session_factory, transaction
from servicekit.testing import ThrowawayDatabase


@pytest.fixture(scope="module")
def session_factory():
    database = ThrowawayDatabase("servicekit")
    engine = make_engine(database.url, lock_wait_timeout_seconds=5)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counters (id INT PRIMARY KEY, value INT NOT NULL)"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    yield make_session_factory(engine)
    engine.dispose()
    database.drop()


def test_opposite_lock_order_deadlock_is_retried_and_both_apply(session_factory):
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
            transaction(session_factory, work)
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
    with session_factory() as session:
        values = session.execute(text("SELECT value FROM counters ORDER BY id")).scalars().all()
    assert values == [2, 2]


def test_rollback_when_work_raises(session_factory):
    def work(session):
        session.execute(text("UPDATE counters SET value = value + 100 WHERE id = 1"))
        raise ValueError("business rule")

    with session_factory() as session:
        before = session.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one()
    with pytest.raises(ValueError):
        transaction(session_factory, work)
    with session_factory() as session:
        assert session.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one() == before


def test_duplicate_key_is_recognised(session_factory):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError) as info:
        transaction(session_factory, lambda s: s.execute(text("INSERT INTO counters VALUES (1, 0)")))
    assert is_duplicate_key(info.value)
