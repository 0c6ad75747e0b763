"""Database engine and the unit of work every request runs in.

- MySQL/MariaDB (tests, compose, production) through mysqlclient (MySQLdb, the C driver) when it
  is installed, else PyMySQL (pure Python): `DB_DRIVER` (auto, mysqlclient, pymysql) chooses, and
  a URL's own driver (`mysql+pymysql://`) does not: the URL names the database, the process
  chooses the driver (`mysql_url`). READ COMMITTED (no gap locks, so fewer deadlocks between
  concurrent reservations), utf8mb4, a short lock wait so a stuck lock becomes a clear error
  instead of a hung request. The C driver blocks while it waits for the server; under gevent
  (orders-service's worker) its statements wait on gevent's hub instead (`_connect_cooperatively`).
- SQLite (the `make run` default when no database is configured): every transaction starts
  with `BEGIN IMMEDIATE`, which takes the write lock up front, so read-check-write sequences
  are serialised the way row locks serialise them on MySQL.
- A unit of work runs on what `open_unit` opens: an ORM `Session` (a `sessionmaker`), or a Core
  `Connection` (`engine.connect`) where nothing of the ORM is used; the Connection costs a
  request about 10 % less CPU (orders-service, bench/README.md "Issue 9, stop 20").
- `transaction()` retries a unit of work that hit a deadlock or lock wait timeout: locking
  in a fixed order makes these rare, and a retry makes them invisible to clients.
- A database outage is a 503, never a 500 (docs/database-outages.md): `is_database_unavailable`
  tells a connectivity failure (refused, locked account, killed or dropped connection, pool or
  connect timeout) from a bug, and `servicekit.web` answers it `database_unavailable`.
- A pooled connection found dead is replaced without a ping per checkout: SQLAlchemy invalidates
  it and every connection of the pool opened before it, and `transaction()`/`read()` run the
  unit of work once more on a fresh connection when the loss came before COMMIT was sent (the
  server never committed it). A connection lost *during* COMMIT is not retried: the outcome is
  unknown, so the client gets the 503 and retries under its idempotency key.
- `send_with_commit()` (MySQL): a write whose answer the unit of work does not need goes to the
  server with COMMIT, in one round trip (docs/adr/0011-writes-sent-with-commit.md). Its error
  (a duplicate key, a deadlock, a lost connection) is COMMIT's: nothing of the transaction is
  committed, and `transaction()` treats it as it treats a failed COMMIT.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from .config import ConfigError
from .logging import log_event

log = logging.getLogger(__name__)

T = TypeVar("T")
# What a unit of work runs on: an ORM Session, or a Core Connection (see the module's docstring).
Unit = TypeVar("Unit", Session, Connection)

# MySQL error numbers worth retrying the whole transaction for.
MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT_TIMEOUT = 1205
RETRYABLE_MYSQL_ERRORS = frozenset({MYSQL_DEADLOCK, MYSQL_LOCK_WAIT_TIMEOUT})
MYSQL_DUPLICATE_KEY = 1062
MYSQL_LOCK_NOWAIT = 3572  # MySQL's answer to FOR UPDATE NOWAIT on a locked row (MariaDB's is 1205)

# MySQL/MariaDB error numbers meaning "the database cannot be reached or dropped us", not "the
# statement is wrong": server errors at connect (1040-4151) and client-side errors (20xx).
MYSQL_UNAVAILABLE_ERRORS = frozenset(
    {
        1040,  # too many connections
        1045,  # access denied at connect (credentials rotated or revoked mid-flight)
        1053,  # server shutdown in progress
        1129,  # host blocked after connection errors
        1130,  # host not allowed to connect
        1927,  # connection was killed (MariaDB)
        2002,  # cannot connect through the socket
        2003,  # cannot connect (refused, connect timeout)
        2005,  # unknown server host
        2006,  # server has gone away
        2013,  # lost connection during query
        2055,  # lost connection (system error)
        3118,  # account locked (MySQL)
        4031,  # disconnected by the server for inactivity (MySQL 8)
        4151,  # account locked (MariaDB)
    }
)

# Long enough for a flash crowd queueing for connections (the bench's 200 buyers of one product
# wait up to ~1.3 s on a quiet box), short enough that nobody queues long behind a database that
# stopped answering.
DEFAULT_POOL_TIMEOUT_SECONDS = 5.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 2.0
# A statement may wait this long beyond the InnoDB lock wait for an answer before its connection
# counts as lost: a server that vanished without closing the socket is a 503, not a hung request.
READ_TIMEOUT_MARGIN_SECONDS = 10


# DB_DRIVER: which MySQL driver a process uses. "auto" is mysqlclient when it is installed.
DRIVER_VARIABLE = "DB_DRIVER"
_DRIVERS = {"mysqlclient": "mysqldb", "mysqldb": "mysqldb", "pymysql": "pymysql"}


def mysql_driver(choice: str | None = None) -> str:
    """The SQLAlchemy name of the MySQL driver to use: "mysqldb" (mysqlclient, C) or "pymysql".

    `choice` (default: the DB_DRIVER variable, else "auto") is "auto", "mysqlclient" or
    "pymysql"; "auto" takes mysqlclient when it is importable (it needs libmariadb/libmysqlclient
    at install time), PyMySQL otherwise."""
    raw = choice if choice is not None else os.environ.get(DRIVER_VARIABLE, "")
    name = raw.strip().lower() or "auto"
    if name == "auto":
        return "mysqldb" if importlib.util.find_spec("MySQLdb") is not None else "pymysql"
    if name not in _DRIVERS:
        raise ConfigError(f"{DRIVER_VARIABLE} must be auto, mysqlclient or pymysql, got {raw!r}")
    driver = _DRIVERS[name]
    if driver == "mysqldb" and importlib.util.find_spec("MySQLdb") is None:
        raise ConfigError(f"{DRIVER_VARIABLE}={raw} but mysqlclient (MySQLdb) is not installed")
    return driver


def mysql_url(url: str | URL, driver: str | None = None) -> URL:
    """`url` with the MySQL driver of this process (`mysql_driver()`); other databases as given.

    `mysql+pymysql://...`, `mysql+mysqldb://...`, `mysql://...` (and `mariadb+...`) name the
    same database: only the driver part changes."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("mysql", "mariadb") or parsed.get_driver_name() not in ("mysqldb", "pymysql"):
        return parsed
    return parsed.set(drivername=f"{backend}+{driver or mysql_driver()}")


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    lock_wait_timeout_seconds: int = 10,
    pool_timeout_seconds: float = DEFAULT_POOL_TIMEOUT_SECONDS,
    connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
    read_timeout_seconds: float | None = None,
    echo: bool = False,
) -> Engine:
    """The engine of one process. Bounded waits by design: while the database is away, a request
    waits at most `pool_timeout_seconds` for a pooled connection, `connect_timeout_seconds` for a
    new one, and `read_timeout_seconds` (default: the lock wait plus READ_TIMEOUT_MARGIN_SECONDS)
    for an answer, then gets its 503; it never hangs behind a dead server."""
    url = mysql_url(url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(
            url, echo=echo, hide_parameters=True, connect_args={"timeout": 30, "check_same_thread": False}
        )
        _make_sqlite_transactions_immediate(engine)
        return engine
    if read_timeout_seconds is None:
        read_timeout_seconds = int(lock_wait_timeout_seconds) + READ_TIMEOUT_MARGIN_SECONDS
    if url.get_driver_name() == "mysqldb":
        # mysqlclient takes whole seconds (at least 1); PyMySQL takes fractions.
        connect_timeout_seconds = max(1, math.ceil(connect_timeout_seconds))
        read_timeout_seconds = max(1, math.ceil(read_timeout_seconds))
    engine = create_engine(
        url,
        echo=echo,
        # A failed statement's message never carries its values (password hashes, emails...).
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout_seconds,
        pool_recycle=1800,
        # No ping per checkout (a round trip on every request): a connection found dead is
        # invalidated with its whole pool generation, and `transaction()` runs again (see above).
        pool_pre_ping=False,
        pool_reset_on_return=None,  # `_reset_unless_idle` below does it, only when needed
        isolation_level="READ COMMITTED",
        connect_args={
            "charset": "utf8mb4",
            "connect_timeout": connect_timeout_seconds,
            "read_timeout": read_timeout_seconds,
            "write_timeout": read_timeout_seconds,
            "init_command": f"SET SESSION innodb_lock_wait_timeout = {int(lock_wait_timeout_seconds)}, "
            "SESSION time_zone = '+00:00'",
        },
    )
    event.listen(engine, "reset", _reset_unless_idle)
    _send_queued_writes_with_commit(engine)
    if url.get_driver_name() == "mysqldb":
        _track_transaction_ends(engine)
        if gevent_patched():
            _connect_cooperatively(engine, read_timeout_seconds)
    return engine


def gevent_patched() -> bool:
    """True in a process whose sockets gevent has patched (gunicorn's gevent worker)."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


def _connect_cooperatively(engine: Engine, read_timeout_seconds: float) -> None:
    """mysqlclient under gevent: a statement is sent, then its greenlet waits on gevent's hub for
    the answer (the worker serves other requests meanwhile), then reads it, in C. COMMIT and
    ROLLBACK go the same way. A wait longer than the read timeout is a lost connection (2013),
    as in the driver itself. Opening a connection still blocks the worker, for at most the
    connect timeout, only when the pool opens one."""
    import MySQLdb
    import MySQLdb.connections
    from gevent import get_hub
    from gevent.timeout import Timeout

    timed_out = (2013, "Lost connection to server during query (read timeout while waiting for the answer)")

    class CooperativeConnection(MySQLdb.connections.Connection):
        # The socket's read watcher and the answer's timer, made once per connection and reused
        # for every statement (gevent's own sockets keep their watchers the same way), instead
        # of both made and freed per statement by `gevent.socket.wait_read`.
        _answer_ready = None
        _answer_overdue = None

        def query(self, query):
            if isinstance(query, bytearray):
                query = bytes(query)
            self.send_query(query)
            self._wait_for_answer()
            self.read_query_result()

        def _wait_for_answer(self) -> None:
            hub = get_hub()
            ready = self._answer_ready
            if ready is None or ready.fd != self.fileno() or ready.loop is not hub.loop:
                self._close_waits()
                ready = self._answer_ready = hub.loop.io(self.fileno(), 1)
                self._answer_overdue = Timeout(read_timeout_seconds, MySQLdb.OperationalError(*timed_out))
            overdue = self._answer_overdue
            overdue.start()
            try:
                hub.wait(ready)
            finally:
                overdue.cancel()

        def _close_waits(self) -> None:
            if self._answer_ready is not None:
                self._answer_ready.close()
                self._answer_overdue.close()
                self._answer_ready = self._answer_overdue = None

        def close(self):
            try:
                super().close()
            finally:
                self._close_waits()

        def commit(self):
            self.query(b"COMMIT")

        def rollback(self):
            self.query(b"ROLLBACK")

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect, _record, cargs, cparams):
        return CooperativeConnection(*cargs, **cparams)


# The writes `send_with_commit` queued on a DBAPI connection for its next COMMIT (a list of
# statements with their values bound), reset whenever a transaction begins or ends.
_AT_COMMIT = "servicekit_at_commit"
_CLIENT_MULTI_STATEMENTS = 1 << 16  # MySQL protocol capability flag (both drivers' CLIENT constant)
_FAILED_IN_BATCH = "servicekit_failed_in_commit_batch"


def send_with_commit(
    unit: Session | Connection, sql: str, params: Mapping[str, Any] | None = None, *, may_wait: bool = False
) -> None:
    """Queue a write (`%(name)s` parameters) to reach the server with this transaction's COMMIT,
    in the same round trip, instead of on its own now (MySQL engines from `make_engine` only).

    For a statement whose answer nobody reads (no row count, no insert id): a condition it must
    meet is a constraint that fails it. Only the first write queued may wait for a row lock as
    long as any statement would (`may_wait`: a contended row), because a gevent worker waits for
    the batch's first answer on the hub and reads the others in C; the writes after it may only
    wait briefly (a row this transaction has locked already, or one that only other commit
    batches hold). The server stops at the first statement that fails; its error is raised by
    the unit's `commit()` and nothing is committed. Queued writes run after every statement sent
    before the commit, in the order queued."""
    dbapi_connection = connection_of(unit).connection.dbapi_connection
    queued = getattr(dbapi_connection, _AT_COMMIT, None)
    if queued is None:
        raise RuntimeError("send_with_commit needs a MySQL engine made by servicekit.db.make_engine")
    if may_wait and queued:
        raise RuntimeError("a write that may wait for a lock must be the first sent with the commit")
    cursor = dbapi_connection.cursor()
    try:
        queued.append(cursor.mogrify(sql, params))  # escaped by the driver, as `execute` would
    finally:
        cursor.close()


def failed_in_commit_batch(exc: BaseException) -> bool:
    """The error came from the writes sent with a COMMIT (`send_with_commit`), or that COMMIT."""
    return bool(getattr(getattr(exc, "orig", None), _FAILED_IN_BATCH, False))


def queued_with_commit(dbapi_connection) -> list[str]:
    """What `send_with_commit` queued on this DBAPI connection so far (for tests and tracing)."""
    return list(getattr(dbapi_connection, _AT_COMMIT, None) or ())


def _send_queued_writes_with_commit(engine: Engine) -> None:
    """COMMIT (MySQL) sends the writes queued by `send_with_commit` first, in one round trip
    (`CLIENT_MULTI_STATEMENTS`; every other statement stays a single one, with bound values).

    The server answers every statement of the batch; MariaDB holds those answers until the last
    unless a statement waits for a lock. mysqlclient waits for the first answer on gevent's hub
    (`_connect_cooperatively`), and reads the others in C: `send_with_commit`'s rule (only the
    first write may wait for a lock for long) keeps that read short."""
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def take_queued(dbapi_connection) -> list[str]:
        dbapi_connection = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
        queued = getattr(dbapi_connection, _AT_COMMIT, None)
        setattr(dbapi_connection, _AT_COMMIT, [])
        return queued or []

    def commit(dbapi_connection) -> None:
        queued = take_queued(dbapi_connection)
        if not queued:
            do_commit(dbapi_connection)
            return
        cursor = dbapi_connection.cursor()
        try:
            # No parameters: the driver sends the text as is (the values are bound already).
            cursor.execute(";\n".join([*queued, "COMMIT"]))
            while cursor.nextset():  # each statement's answer, to the COMMIT's (or an error)
                pass
        except Exception as exc:
            setattr(exc, _FAILED_IN_BATCH, True)  # SQLAlchemy raises it wrapped, as `.orig`
            raise
        finally:
            cursor.close()

    def rollback(dbapi_connection) -> None:
        take_queued(dbapi_connection)
        do_rollback(dbapi_connection)

    dialect.do_commit = commit
    dialect.do_rollback = rollback

    @event.listens_for(engine, "do_connect")
    def _allow_batches(_dialect, _record, _cargs, cparams) -> None:
        # Added to the flags SQLAlchemy's dialect sets (FOUND_ROWS), not instead of them.
        cparams["client_flag"] = cparams.get("client_flag", 0) | _CLIENT_MULTI_STATEMENTS

    _set_at_checkout_and_begin(engine, _AT_COMMIT, list)


def _set_at_checkout_and_begin(engine: Engine, name: str, value: Callable[[], Any]) -> None:
    """Set `name` to a fresh `value()` on the DBAPI connection whenever it is checked out of the
    pool and whenever SQLAlchemy begins a transaction on it."""

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, _record, _proxy) -> None:
        setattr(dbapi_connection, name, value())

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        setattr(connection.connection.dbapi_connection, name, value())


_SERVER_STATUS_IN_TRANS = 1  # MySQL protocol status flag: a transaction is open
# Set on a DBAPI connection without `server_status` (mysqlclient): True once a COMMIT or ROLLBACK
# succeeded, False again when SQLAlchemy begins the next transaction on it.
_IDLE = "servicekit_idle"


def _track_transaction_ends(engine: Engine) -> None:
    """For a driver that does not expose the server's status (mysqlclient): remember, on the
    connection, that since it was checked out SQLAlchemy's last COMMIT or ROLLBACK on it
    succeeded and nothing began since, which is what the status flag would have said. A failed
    COMMIT, or a checkout with no COMMIT/ROLLBACK at all, leaves the mark unset: that connection
    is rolled back on return. (Statements sent on the raw driver connection after a COMMIT of the
    same checkout are not seen: nothing here does that.)"""
    dialect = engine.dialect
    do_commit, do_rollback = dialect.do_commit, dialect.do_rollback

    def mark_idle(dbapi_connection) -> None:
        # Some callers (the dialect's first connect) pass the pool's proxy, not the connection.
        setattr(getattr(dbapi_connection, "dbapi_connection", dbapi_connection), _IDLE, True)

    def commit_and_mark(dbapi_connection) -> None:
        do_commit(dbapi_connection)
        mark_idle(dbapi_connection)

    def rollback_and_mark(dbapi_connection) -> None:
        do_rollback(dbapi_connection)
        mark_idle(dbapi_connection)

    dialect.do_commit = commit_and_mark
    dialect.do_rollback = rollback_and_mark

    _set_at_checkout_and_begin(engine, _IDLE, bool)


def _reset_unless_idle(dbapi_connection, _record, reset_state) -> None:
    """Roll back a connection coming back to the pool, unless that is known to be a no-op.

    The pool's default rollback-on-return costs a round trip after every commit: SQLAlchemy
    cannot tell that a committed connection is clean. The server can: its answer to the COMMIT
    (or ROLLBACK) says whether a transaction is still open. A transaction SQLAlchemy started is
    always ended by SQLAlchemy before the connection returns (`Connection.close()` rolls it
    back, reported here as `transaction_was_reset`), so what is skipped is exactly the
    redundant ROLLBACK after a commit. mysqlclient does not expose that status: there the mark
    `_track_transaction_ends` keeps stands in for it. Anything else is rolled back as before.
    """
    if reset_state.transaction_was_reset:
        return
    status = getattr(dbapi_connection, "server_status", None)
    if isinstance(status, int) and not status & _SERVER_STATUS_IN_TRANS:
        return
    if status is None and getattr(dbapi_connection, _IDLE, False):
        return
    dbapi_connection.rollback()


def _make_sqlite_transactions_immediate(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # pragma: no cover - exercised via make run smoke
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below drive transactions
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


def mysql_error_code(exc: BaseException) -> int | None:
    orig = getattr(exc, "orig", None)
    args = getattr(orig, "args", None)
    if args and isinstance(args[0], int):
        return args[0]
    return None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError):
        code = mysql_error_code(exc)
        if code in RETRYABLE_MYSQL_ERRORS:
            return True
        return "database is locked" in str(exc)  # SQLite busy beyond busy_timeout
    return False


def is_lock_busy(exc: BaseException) -> bool:
    """A `FOR UPDATE NOWAIT` found its row locked (or a lock wait ran out)."""
    return isinstance(exc, OperationalError) and mysql_error_code(exc) in (MYSQL_LOCK_WAIT_TIMEOUT, MYSQL_LOCK_NOWAIT)


def is_duplicate_key(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if mysql_error_code(exc) == MYSQL_DUPLICATE_KEY:
        return True
    return "UNIQUE constraint failed" in str(exc)


def is_connection_lost(exc: BaseException) -> bool:
    """SQLAlchemy found the connection dead and invalidated it (with every pooled connection
    opened before it): a fresh connection may well work."""
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def is_database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached, refused us at connect, or dropped the connection.

    Decided by exception class and error number, never by message, so that a genuine bug (a
    syntax error, a missing table, an integrity error nobody handled) stays a 500."""
    if isinstance(exc, PoolTimeoutError | DisconnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    return is_connection_lost(exc) or mysql_error_code(exc) in MYSQL_UNAVAILABLE_ERRORS


def connection_of(unit: Session | Connection) -> Connection:
    """The Core Connection a unit of work runs its statements on, in its transaction (begun
    here if no statement has begun it yet, so a write queued for the COMMIT has one to go with)."""
    if isinstance(unit, Connection):
        if not unit.in_transaction():
            unit.begin()
        return unit
    return unit.connection()


@contextmanager
def unit_of_work(open_unit: Callable[[], Unit]) -> Iterator[Unit]:
    """One transaction: the caller commits explicitly; anything else is rolled back."""
    unit = open_unit()
    try:
        yield unit
    finally:
        try:
            unit.rollback()  # nothing is sent when the transaction has ended already
        except DBAPIError as exc:
            # The connection is gone, and the server drops its open transaction by itself;
            # raising here would hide what the unit of work raised or returned.
            if not is_connection_lost(exc):
                raise
        finally:
            unit.close()


def transaction(
    open_unit: Callable[[], Unit],
    work: Callable[[Unit], T],
    *,
    attempts: int = 4,
) -> T:
    """Run `work(unit)` on a unit `open_unit()` opens (a Session or a Connection) and commit once.

    `work` runs again from scratch (so it must have no effect outside the unit) when:
    - a deadlock or lock wait timeout rolled it back (up to `attempts` runs in all);
    - its connection was found dead before COMMIT was sent (one more run): the server never
      committed it, and the pool has dropped every connection as old as the dead one.
    A connection lost *during* COMMIT is raised as is (a 503): the outcome is unknown.
    """
    return _run(open_unit, work, commit=True, attempts=attempts)


def read(
    open_unit: Callable[[], Unit],
    work: Callable[[Unit], T],
    *,
    attempts: int = 4,
) -> T:
    """Run `work(unit)` in a transaction that is rolled back, never committed: for reads.

    Retried like `transaction()`; with no COMMIT, a lost connection is always safe to retry."""
    return _run(open_unit, work, commit=False, attempts=attempts)


def _run(open_unit: Callable[[], Unit], work: Callable[[Unit], T], *, commit: bool, attempts: int) -> T:
    runs = 0
    reconnected = False
    while True:
        runs += 1
        committing = False
        try:
            with unit_of_work(open_unit) as unit:
                result = work(unit)
                if commit:
                    if isinstance(unit, Session):
                        # Every statement but COMMIT goes out here, so a failure past this line
                        # is COMMIT's own (a Connection has sent its statements already).
                        unit.flush()
                    committing = True
                    unit.commit()
                return result
        except DBAPIError as exc:
            # A lock wait timeout in writes sent with COMMIT is not run again: the holder has kept
            # the row through a whole lock wait, and the caller decides (e.g. a 409 or a 503).
            lock_wait_in_batch = mysql_error_code(exc) == MYSQL_LOCK_WAIT_TIMEOUT and failed_in_commit_batch(exc)
            if is_retryable(exc) and runs < attempts and not lock_wait_in_batch:
                # InnoDB rolled the whole transaction back (also when reported at COMMIT).
                log_event(log, "transaction_retry", logging.WARNING, attempt=runs, mysql_error=mysql_error_code(exc))
                time.sleep(random.uniform(0.005, 0.03) * runs)
                continue
            if is_connection_lost(exc):
                if committing:
                    log_event(log, "commit_outcome_unknown", logging.WARNING, mysql_error=mysql_error_code(exc))
                elif not reconnected:
                    reconnected = True
                    log_event(log, "transaction_reconnect", logging.INFO, mysql_error=mysql_error_code(exc))
                    continue
            raise


def ping(engine: Engine) -> None:
    """`SELECT 1`; a pooled connection found dead is replaced once, as in `transaction()`."""
    for attempt in (1, 2):
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return
        except DBAPIError as exc:
            if attempt == 2 or not is_connection_lost(exc):
                raise
