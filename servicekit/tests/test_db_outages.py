"""A database outage is a 503 with Retry-After, never a 500, and the pool heals at once.

Unit tests of the classification (which errors are an outage, which are bugs), then the same
rules on a real MariaDB whose test user is cut off (`ThrowawayDatabase.cut()`: account locked,
connections killed) or whose connections are killed under a unit of work.
"""

from __future__ import annotations

import logging
import socket
import threading
from urllib.parse import urlsplit

import pymysql
import pytest
from flask import jsonify
from sqlalchemy import event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import sessionmaker

from servicekit.db import (
    is_database_unavailable,
    is_retryable,
    make_engine,
    make_session_factory,
    ping,
    read,
    transaction,
)
from servicekit.testing import ThrowawayDatabase, free_port
from servicekit.web import create_service_app


def wrapped(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
    """The driver's error as SQLAlchemy raises it (`connection_invalidated` is its disconnect verdict)."""
    return sa_exc.DBAPIError.instance(
        "SELECT 1", {}, orig, pymysql.err.Error, connection_invalidated=invalidated, dialect=None
    )


OperationalError = pymysql.err.OperationalError

OUTAGES = {
    "connection refused": wrapped(OperationalError(2003, "Can't connect to MySQL server ([Errno 111] refused)")),
    "connect timeout": wrapped(OperationalError(2003, "Can't connect to MySQL server (timed out)")),
    "access denied at connect": wrapped(OperationalError(1045, "Access denied for user")),
    "account locked (MariaDB)": wrapped(OperationalError(4151, "Access denied, this account is locked")),
    "account locked (MySQL)": wrapped(OperationalError(3118, "Access denied. Account is locked.")),
    "too many connections": wrapped(OperationalError(1040, "Too many connections")),
    "server gone away": wrapped(OperationalError(2006, "MySQL server has gone away"), invalidated=True),
    "killed mid-request": wrapped(OperationalError(2013, "Lost connection during query"), invalidated=True),
    "connection was killed": wrapped(OperationalError(1927, "Connection was killed"), invalidated=True),
    "closed connection": wrapped(pymysql.err.InterfaceError(0, ""), invalidated=True),
    "pool checkout timeout": sa_exc.TimeoutError("QueuePool limit of size 2 overflow 0 reached"),
    "pre-ping disconnect": sa_exc.DisconnectionError("connection invalidated"),
}

BUGS = {
    "syntax error": wrapped(pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax")),
    "missing table": wrapped(pymysql.err.ProgrammingError(1146, "Table 'x.y' doesn't exist")),
    "unknown column": wrapped(OperationalError(1054, "Unknown column 'nope' in 'field list'")),
    "duplicate key": wrapped(pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'")),
    "foreign key": wrapped(pymysql.err.IntegrityError(1452, "Cannot add or update a child row")),
    "data too long": wrapped(pymysql.err.DataError(1406, "Data too long for column")),
    "session misuse": sa_exc.PendingRollbackError("This Session's transaction has been rolled back"),
    "not a database error": ValueError("bug"),
}


try:
    import MySQLdb
except ImportError:  # PyMySQL only: the fallback
    MySQLdb = None

if MySQLdb is not None:
    # The same failures as mysqlclient (libmariadb) raises them: its own classes, the same numbers.
    def wrapped_mysqldb(orig: Exception, *, invalidated: bool = False) -> sa_exc.DBAPIError:
        return sa_exc.DBAPIError.instance(
            "SELECT 1", {}, orig, MySQLdb.Error, connection_invalidated=invalidated, dialect=None
        )

    OUTAGES.update(
        {
            "mysqlclient: connection refused": wrapped_mysqldb(
                MySQLdb.OperationalError(2002, "Can't connect to server on '127.0.0.1' (115)")
            ),
            "mysqlclient: account locked": wrapped_mysqldb(MySQLdb.OperationalError(4151, "Access denied")),
            "mysqlclient: server gone away": wrapped_mysqldb(
                MySQLdb.OperationalError(2006, "Server has gone away"), invalidated=True
            ),
            "mysqlclient: lost connection": wrapped_mysqldb(
                MySQLdb.OperationalError(2013, "Lost connection to server during query"), invalidated=True
            ),
            "mysqlclient: connect timeout": wrapped_mysqldb(
                MySQLdb.OperationalError(2013, "Lost connection to server at 'handshake: reading initial packet'")
            ),
            "mysqlclient: closed connection": wrapped_mysqldb(MySQLdb.InterfaceError(0, ""), invalidated=True),
        }
    )
    BUGS.update(
        {
            "mysqlclient: syntax error": wrapped_mysqldb(MySQLdb.ProgrammingError(1064, "You have an error")),
            "mysqlclient: duplicate key": wrapped_mysqldb(MySQLdb.IntegrityError(1062, "Duplicate entry")),
        }
    )


@pytest.mark.parametrize("error", OUTAGES.values(), ids=OUTAGES.keys())
def test_connectivity_failures_are_an_outage(error):
    assert is_database_unavailable(error)


@pytest.mark.parametrize("error", BUGS.values(), ids=BUGS.keys())
def test_statement_failures_are_not_an_outage(error):
    assert not is_database_unavailable(error)
    assert not is_retryable(error)


@pytest.mark.parametrize("code", [1205, 1213])
def test_lock_contention_is_busy_not_unavailable(code):
    error = wrapped(OperationalError(code, "Deadlock found / Lock wait timeout exceeded"))
    assert is_retryable(error) and not is_database_unavailable(error)


# --- On a real MariaDB -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database():
    db = ThrowawayDatabase("skoutage")
    yield db
    db.drop()


@pytest.fixture
def engine(database):
    engine = make_engine(database.url, pool_size=3, max_overflow=0, pool_timeout_seconds=0.3)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS counters (id INT PRIMARY KEY, value INT NOT NULL)"))
        conn.execute(text("DELETE FROM counters"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0)"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["session", "connection"])
def session_factory(request, engine):
    """What the unit of work runs on: an ORM Session, or a Core Connection (orders-service's):
    the promises below (a loss before COMMIT runs again once, a loss during it never) hold for both."""
    return make_session_factory(engine) if request.param == "session" else engine.connect


@pytest.fixture
def disconnects(engine) -> list[bool]:
    """One entry per database error SQLAlchemy saw on this engine, True when it judged it a disconnect."""
    seen: list[bool] = []
    event.listen(engine, "handle_error", lambda context: seen.append(context.is_disconnect))
    return seen


def counter_value(session_factory) -> int:
    return read(session_factory, lambda s: s.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one())


def fill_pool(engine, size: int = 3) -> None:
    """Open `size` pooled connections (all checked out at once), then give them back."""
    connections = [engine.connect() for _ in range(size)]
    for connection in connections:
        connection.execute(text("SELECT 1"))
    for connection in connections:
        connection.close()


def test_a_connection_lost_before_commit_is_run_again_once_and_applied_once(
    database, session_factory, disconnects, caplog
):
    runs = []

    def work(session):
        runs.append(1)
        session.execute(text("UPDATE counters SET value = value + 1 WHERE id = 1"))
        if len(runs) == 1:
            database.kill_connections()  # the server rolls back what this connection did
        return session.execute(text("SELECT value FROM counters WHERE id = 1")).scalar_one()

    with caplog.at_level(logging.INFO, logger="servicekit.db"):
        assert transaction(session_factory, work) == 1
    assert len(runs) == 2 and disconnects == [True]
    assert counter_value(session_factory) == 1
    assert any(r.getMessage() == "transaction_reconnect" for r in caplog.records)


def test_a_connection_lost_during_commit_is_not_run_again(database, engine, session_factory, caplog):
    runs = []

    def kill_before_the_commit_is_sent(_connection):
        database.kill_connections()

    event.listen(engine, "commit", kill_before_the_commit_is_sent, once=True)

    def work(session):
        runs.append(1)
        session.execute(text("UPDATE counters SET value = value + 1 WHERE id = 1"))

    with caplog.at_level(logging.INFO, logger="servicekit.db"), pytest.raises(sa_exc.OperationalError) as info:
        transaction(session_factory, work)
    assert len(runs) == 1  # whether the server committed is unknown: the client decides (503)
    assert is_database_unavailable(info.value)
    assert any(r.getMessage() == "commit_outcome_unknown" for r in caplog.records)
    assert counter_value(session_factory) == 0  # here the COMMIT never reached the server


def test_a_dead_pool_heals_in_one_attempt(database, engine, session_factory, disconnects):
    fill_pool(engine)
    assert database.kill_connections() == 3
    assert transaction(session_factory, lambda s: s.execute(text("SELECT 1")).scalar_one()) == 1
    # The one disconnect invalidated every pooled connection as old as it: none fails again.
    fill_pool(engine)
    for _ in range(5):
        assert read(session_factory, lambda s: s.execute(text("SELECT 1")).scalar_one()) == 1
    assert disconnects == [True]


def test_a_lost_connection_is_retried_once_only(database, session_factory):
    runs = []

    def work(session):
        runs.append(1)
        session.execute(text("SELECT 1"))
        database.kill_connections()  # every time: a server that keeps dropping us
        session.execute(text("SELECT 1"))

    with pytest.raises(sa_exc.OperationalError) as info:
        read(session_factory, work)
    assert len(runs) == 2 and is_database_unavailable(info.value)


def test_during_an_outage_work_fails_fast_and_is_not_retried(database, engine, session_factory):
    fill_pool(engine)
    opened = []

    def open_unit():
        opened.append(1)
        return session_factory()

    def work(session):
        return session.execute(text("SELECT 1")).scalar_one()

    with database.outage():
        with pytest.raises(sa_exc.OperationalError) as info:
            transaction(open_unit, work)
        assert is_database_unavailable(info.value)
        # Run 1 met the killed pooled connection; run 2's new connection was refused (a Session
        # connects at its first statement, a Connection when it is opened): no run 3.
        assert len(opened) == 2
        with pytest.raises(sa_exc.OperationalError):
            ping(engine)
    assert transaction(session_factory, work) == 1


def test_ping_replaces_a_dead_pooled_connection(database, engine):
    fill_pool(engine)
    database.kill_connections()
    ping(engine)  # no exception: the dead connection was replaced


class FreezingProxy:
    """A TCP proxy to MariaDB that, once `freeze()` is called, keeps every socket open and
    forwards nothing: a server that vanished without closing its connections."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = threading.Event()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def freeze(self) -> None:
        self.frozen.set()

    def close(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # accepted, never answered
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets.append(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                if not self.frozen.is_set():
                    sink.sendall(chunk)
        except OSError:
            pass


def test_a_server_that_stops_answering_is_an_outage_not_a_hang(database):
    url = urlsplit(database.url)
    proxy = FreezingProxy(url.port or 3306)
    proxied = database.url.replace(f"{url.hostname}:{url.port}", f"127.0.0.1:{proxy.port}")
    engine = make_engine(proxied, pool_size=1, max_overflow=0, read_timeout_seconds=0.5, connect_timeout_seconds=0.5)
    session_factory = make_session_factory(engine)
    try:
        assert read(session_factory, lambda s: s.execute(text("SELECT 1")).scalar_one()) == 1
        proxy.freeze()
        with pytest.raises(sa_exc.OperationalError) as info:
            read(session_factory, lambda s: s.execute(text("SELECT 1")).scalar_one())
        assert is_database_unavailable(info.value)
        with pytest.raises(sa_exc.OperationalError):
            ping(engine)
    finally:
        engine.dispose()
        proxy.close()


# --- The HTTP answer (servicekit.web) ---------------------------------------------------------


def engine_of(open_unit):
    """The engine a sessionmaker is bound to, or whose `connect` opens the unit."""
    return open_unit.kw["bind"] if isinstance(open_unit, sessionmaker) else open_unit.__self__


@pytest.fixture
def app_for(session_factory):
    def build(factory=None, engine_for_ready=None):
        factory = factory or session_factory
        app, _api = create_service_app(
            "outage-test",
            title="outage-test",
            version="1",
            description="",
            verifier=None,
            readiness_check=lambda: ping(engine_for_ready or engine_of(factory)),
        )

        def run(sql: str):
            return jsonify(value=transaction(factory, lambda s: s.execute(text(sql)).scalar()))

        app.add_url_rule("/ok", "ok", lambda: run("SELECT 41 + 1"))
        app.add_url_rule("/syntax", "syntax", lambda: run("SELEKT 1"))
        app.add_url_rule("/duplicate", "duplicate", lambda: run("INSERT INTO counters VALUES (1, 0)"))
        app.add_url_rule("/missing-table", "missing", lambda: run("SELECT * FROM no_such_table"))
        return app.test_client()

    return build


def assert_database_unavailable(response, code="database_unavailable"):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == code
    assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("path", ["/syntax", "/duplicate", "/missing-table"])
def test_a_database_error_that_is_a_bug_stays_a_500(app_for, path):
    response = app_for().get(path)
    assert response.status_code == 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "internal_error"


def test_a_refused_connection_is_a_503(app_for):
    dead = make_engine(f"mysql+pymysql://nobody:nothing@127.0.0.1:{free_port()}/none", pool_timeout_seconds=0.3)
    client = app_for(make_session_factory(dead))
    assert_database_unavailable(client.get("/ok"))
    assert_database_unavailable(client.get("/ready"), "not_ready")


def test_a_pool_checkout_timeout_is_a_503(app_for, engine):
    held = [engine.connect() for _ in range(3)]  # the whole pool (no overflow)
    try:
        assert_database_unavailable(app_for().get("/ok"))
    finally:
        for connection in held:
            connection.close()


def test_an_outage_is_a_503_everywhere_and_the_first_request_after_it_succeeds(database, engine, app_for):
    client = app_for()
    fill_pool(engine)
    database.cut()
    try:
        assert_database_unavailable(client.get("/ok"))  # a killed pooled connection, then a locked account
        assert_database_unavailable(client.get("/ok"))
        assert_database_unavailable(client.get("/ready"), "not_ready")
    finally:
        database.restore()
    assert client.get("/ready").status_code == 200
    assert client.get("/ok").get_json() == {"value": 42}


def test_the_first_request_after_an_unnoticed_outage_succeeds(database, engine, app_for):
    """Connections killed while nobody used them: the first request meets a dead one, and runs again."""
    client = app_for()
    fill_pool(engine)
    with database.outage():
        pass
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(client.get("/ok").status_code)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert answers == [200, 200, 200]
