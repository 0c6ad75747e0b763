"""Writes sent with COMMIT (`send_with_commit`), on a real MariaDB, with both drivers: applied
with the commit and never before, all or nothing, never left over for the next transaction of a
pooled connection, and a failure among them is COMMIT's own (not run again when that is unsafe)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy import exc as sa_exc

from servicekit.db import (
    DRIVER_VARIABLE,
    MYSQL_DUPLICATE_KEY,
    MYSQL_LOCK_WAIT_TIMEOUT,
    failed_in_commit_batch,
    is_database_unavailable,
    make_engine,
    make_session_factory,
    mysql_error_code,
    queued_with_commit,
    read,
    send_with_commit,
    transaction,
)
from servicekit.testing import ThrowawayDatabase

try:
    import MySQLdb
except ImportError:  # PyMySQL only: the fallback
    MySQLdb = None

DRIVERS = ["pymysql", pytest.param("mysqlclient", marks=pytest.mark.skipif(MySQLdb is None, reason="no mysqlclient"))]

BUMP = "UPDATE counters SET value = value + %(by)s WHERE id = %(id)s"
NOTE = "INSERT INTO notes (id, body, at) VALUES (%(id)s, %(body)s, %(at)s)"


@pytest.fixture(scope="module")
def database():
    db = ThrowawayDatabase("skbatch")
    engine = create_engine(db.url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counters (id INT PRIMARY KEY, value INT NOT NULL)"))
        conn.execute(text("CREATE TABLE notes (id INT PRIMARY KEY, body TEXT, at DATETIME(6))"))
    engine.dispose()
    yield db
    db.drop()


@pytest.fixture(params=DRIVERS)
def engine(request, database, monkeypatch):
    monkeypatch.setenv(DRIVER_VARIABLE, request.param)
    engine = make_engine(database.url, pool_size=1, max_overflow=0, lock_wait_timeout_seconds=1)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM counters"))
        conn.execute(text("DELETE FROM notes"))
        conn.execute(text("INSERT INTO counters VALUES (1, 0), (2, 0)"))
    yield engine
    engine.dispose()


@pytest.fixture(params=["session", "connection"])
def session_factory(request, engine):
    """What the unit of work runs on: an ORM Session, or a Core Connection (orders-service's)."""
    return make_session_factory(engine) if request.param == "session" else engine.connect


def counters(session_factory) -> dict[int, int]:
    return dict(read(session_factory, lambda s: s.execute(text("SELECT id, value FROM counters")).all()))


def notes(session_factory) -> list[tuple]:
    return [tuple(r) for r in read(session_factory, lambda s: s.execute(text("SELECT * FROM notes ORDER BY id")).all())]


def test_queued_writes_are_applied_with_the_commit_and_not_before(engine, session_factory, database):
    sent: list[str] = []
    committed_with: list[list[str]] = []
    event.listen(engine, "before_cursor_execute", lambda conn, cursor, statement, *args: sent.append(statement))
    event.listen(
        engine, "commit", lambda conn: committed_with.append(queued_with_commit(conn.connection.dbapi_connection))
    )
    seen_from_outside: list[dict[int, int]] = []

    def work(session):
        session.execute(text("UPDATE counters SET value = 10 WHERE id = 2"))  # sent now
        send_with_commit(session, BUMP, {"by": 5, "id": 1})
        send_with_commit(session, BUMP, {"by": 1, "id": 1})
        seen_from_outside.append(outside_view(database))
        return "done"

    assert transaction(session_factory, work) == "done"
    assert seen_from_outside == [{1: 0, 2: 0}]  # not sent before the commit (nor committed)
    assert counters(session_factory) == {1: 6, 2: 10}  # in order, with the commit
    assert len(committed_with) == 1 and len(committed_with[0]) == 2
    assert not any("value + 5" in statement for statement in sent)  # never a statement of its own


def outside_view(database) -> dict[int, int]:
    other = create_engine(database.url)
    try:
        with other.connect() as conn:
            return dict(conn.execute(text("SELECT id, value FROM counters")).all())
    finally:
        other.dispose()


def test_values_are_bound_by_the_driver_exactly(session_factory):
    tricky = 'it\'s 100% \\ "quoted"; DROP TABLE counters; -- é ✓'
    at = datetime(2026, 12, 3, 7, 8, 9, 123456)
    transaction(
        session_factory,
        lambda s: (
            send_with_commit(s, NOTE, {"id": 1, "body": tricky, "at": at}),
            send_with_commit(s, NOTE, {"id": 2, "body": None, "at": None}),
        ),
    )
    assert notes(session_factory) == [(1, tricky, at), (2, None, None)]
    assert counters(session_factory) == {1: 0, 2: 0}  # the table is still there


def test_a_failing_write_commits_nothing_and_is_not_run_again(session_factory):
    runs = []

    def work(session):
        runs.append(1)
        session.execute(text("UPDATE counters SET value = 7 WHERE id = 2"))
        send_with_commit(session, BUMP, {"by": 1, "id": 1})
        send_with_commit(session, NOTE, {"id": 1, "body": "first", "at": None})
        send_with_commit(session, NOTE, {"id": 1, "body": "duplicate", "at": None})
        send_with_commit(session, BUMP, {"by": 100, "id": 1})  # after the failure: never runs

    with pytest.raises(sa_exc.IntegrityError) as info:
        transaction(session_factory, work)
    assert mysql_error_code(info.value) == MYSQL_DUPLICATE_KEY and failed_in_commit_batch(info.value)
    assert len(runs) == 1
    assert counters(session_factory) == {1: 0, 2: 0} and notes(session_factory) == []
    # The connection is clean for the next unit of work.
    transaction(session_factory, lambda s: send_with_commit(s, BUMP, {"by": 3, "id": 1}))
    assert counters(session_factory) == {1: 3, 2: 0}


def test_a_rolled_back_unit_of_work_leaves_nothing_queued_for_the_next(session_factory):
    """The pool has one connection: the next transaction runs on the very connection whose
    queue the failed one filled."""

    def fails(session):
        send_with_commit(session, BUMP, {"by": 1000, "id": 1})
        raise ValueError("a bug after queueing")

    with pytest.raises(ValueError):
        transaction(session_factory, fails)
    transaction(session_factory, lambda s: s.execute(text("UPDATE counters SET value = value + 1 WHERE id = 2")))
    read(session_factory, lambda s: send_with_commit(s, BUMP, {"by": 1000, "id": 1}))  # a read never commits
    transaction(session_factory, lambda s: s.execute(text("UPDATE counters SET value = value + 1 WHERE id = 2")))
    assert counters(session_factory) == {1: 0, 2: 2}


def test_a_lock_wait_among_the_writes_is_not_run_again(database, session_factory):
    """A write sent with COMMIT may only wait briefly: a lock held past the lock wait timeout
    is the caller's to answer (orders-service: 409 in flight), not a reason to wait again."""
    holder = create_engine(database.url)
    runs = []

    def work(session):
        runs.append(1)
        send_with_commit(session, BUMP, {"by": 1, "id": 1})
        send_with_commit(session, BUMP, {"by": 1, "id": 2})

    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT value FROM counters WHERE id = 2 FOR UPDATE"))
            with pytest.raises(sa_exc.OperationalError) as info:
                transaction(session_factory, work)
            conn.rollback()
    finally:
        holder.dispose()
    assert mysql_error_code(info.value) == MYSQL_LOCK_WAIT_TIMEOUT and failed_in_commit_batch(info.value)
    assert len(runs) == 1 and counters(session_factory) == {1: 0, 2: 0}


def test_a_lock_wait_before_the_commit_is_still_run_again(database, session_factory):
    """Only the commit's own writes are exempt: a statement sent on its own that timed out on a
    lock is retried as before."""
    holder = create_engine(database.url)
    runs = []
    released = threading.Event()

    def work(session):
        runs.append(1)
        if len(runs) == 2:
            released.wait(5)
        session.execute(text("UPDATE counters SET value = value + 1 WHERE id = 2"))
        send_with_commit(session, BUMP, {"by": 1, "id": 1})

    try:
        with holder.connect() as conn:
            conn.execute(text("SELECT value FROM counters WHERE id = 2 FOR UPDATE"))
            threading.Timer(1.5, lambda: (conn.rollback(), released.set())).start()
            transaction(session_factory, work)
    finally:
        holder.dispose()
    assert len(runs) == 2 and counters(session_factory) == {1: 1, 2: 1}


def test_a_connection_lost_with_the_writes_is_not_run_again(database, engine, session_factory, caplog):
    runs = []
    event.listen(engine, "commit", lambda _connection: database.kill_connections(), once=True)

    def work(session):
        runs.append(1)
        send_with_commit(session, BUMP, {"by": 1, "id": 1})

    with caplog.at_level(logging.INFO, logger="servicekit.db"), pytest.raises(sa_exc.OperationalError) as info:
        transaction(session_factory, work)
    assert len(runs) == 1 and is_database_unavailable(info.value)  # outcome unknown: a 503
    assert any(r.getMessage() == "commit_outcome_unknown" for r in caplog.records)
    assert counters(session_factory) == {1: 0, 2: 0}  # here the batch never reached the server


def test_only_a_mysql_engine_of_make_engine_takes_them(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with pytest.raises(RuntimeError, match="MySQL engine"):
            transaction(make_session_factory(engine), lambda s: send_with_commit(s, "SELECT 1"))
    finally:
        engine.dispose()


def test_only_the_first_write_may_wait_for_a_lock(session_factory):
    """A gevent worker waits for the batch's first answer on the hub and reads the rest in C, so
    a write that may wait for a contended lock must come first."""

    def work(session):
        send_with_commit(session, BUMP, {"by": 1, "id": 1})
        send_with_commit(session, BUMP, {"by": 1, "id": 2}, may_wait=True)

    with pytest.raises(RuntimeError, match="first"):
        transaction(session_factory, work)
    transaction(session_factory, lambda s: send_with_commit(s, BUMP, {"by": 1, "id": 2}, may_wait=True))
    assert counters(session_factory) == {1: 0, 2: 1}
