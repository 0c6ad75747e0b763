"""Database engine and the unit of work every request runs in.

- MySQL/MariaDB (tests, compose, production) through PyMySQL, READ COMMITTED (no gap locks,
  so fewer deadlocks between concurrent reservations), utf8mb4, a short lock wait so a stuck
  lock becomes a clear error instead of a hung request.
- SQLite (the `make run` default when no database is configured): every transaction starts
  with `BEGIN IMMEDIATE`, which takes the write lock up front, so read-check-write sequences
  are serialised the way row locks serialise them on MySQL.
- `transaction()` retries a unit of work that hit a deadlock or lock wait timeout: locking
  in a fixed order makes these rare, and a retry makes them invisible to clients.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .logging import log_event

log = logging.getLogger(__name__)

T = TypeVar("T")

# MySQL error numbers worth retrying the whole transaction for.
MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT_TIMEOUT = 1205
RETRYABLE_MYSQL_ERRORS = frozenset({MYSQL_DEADLOCK, MYSQL_LOCK_WAIT_TIMEOUT})
MYSQL_DUPLICATE_KEY = 1062


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    lock_wait_timeout_seconds: int = 10,
    echo: bool = False,
) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})
        _make_sqlite_transactions_immediate(engine)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        pool_pre_ping=False,  # recycling covers idle drops without a ping per checkout
        pool_reset_on_return=None,  # `_reset_unless_idle` below does it, only when needed
        isolation_level="READ COMMITTED",
        connect_args={
            "charset": "utf8mb4",
            "connect_timeout": 5,
            "init_command": f"SET SESSION innodb_lock_wait_timeout = {int(lock_wait_timeout_seconds)}, "
            "SESSION time_zone = '+00:00'",
        },
    )
    event.listen(engine, "reset", _reset_unless_idle)
    return engine


_SERVER_STATUS_IN_TRANS = 1  # MySQL protocol status flag: a transaction is open


def _reset_unless_idle(dbapi_connection, _record, reset_state) -> None:
    """Roll back a connection coming back to the pool, unless that is known to be a no-op.

    The pool's default rollback-on-return costs a round trip after every commit: SQLAlchemy
    cannot tell that a committed connection is clean. The server can: its answer to the COMMIT
    (or ROLLBACK) says whether a transaction is still open. A transaction SQLAlchemy started is
    always ended by SQLAlchemy before the connection returns (`Connection.close()` rolls it
    back, reported here as `transaction_was_reset`), so what is skipped is exactly the
    redundant ROLLBACK after a commit. Anything else, or a driver without that status, is
    rolled back as before.
    """
    if reset_state.transaction_was_reset:
        return
    status = getattr(dbapi_connection, "server_status", None)
    if isinstance(status, int) and not status & _SERVER_STATUS_IN_TRANS:
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


def is_duplicate_key(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if mysql_error_code(exc) == MYSQL_DUPLICATE_KEY:
        return True
    return "UNIQUE constraint failed" in str(exc)


@contextmanager
def unit_of_work(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: the caller commits explicitly; anything else is rolled back."""
    session = session_factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def transaction(
    session_factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = 4,
) -> T:
    """Run `work(session)` and commit; retry from scratch on deadlock / lock wait timeout."""
    for attempt in range(1, attempts + 1):
        with unit_of_work(session_factory) as session:
            try:
                result = work(session)
                session.commit()
                return result
            except OperationalError as exc:
                if attempt == attempts or not is_retryable(exc):
                    raise
                log_event(
                    log,
                    "transaction_retry",
                    logging.WARNING,
                    attempt=attempt,
                    mysql_error=mysql_error_code(exc),
                )
        time.sleep(random.uniform(0.005, 0.03) * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
