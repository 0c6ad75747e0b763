"""Small queries over customers_db. They take a Session and never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, and_, bindparam, delete, or_, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from servicekit.db import connection_of

from .models import Customer, LoginThrottle, User


def lock_live_customer(session: Session, customer_id: int) -> Customer | None:
    """A live customer to change, its row locked until the unit of work ends."""
    query = select(Customer).where(Customer.id == customer_id, Customer.tombstone == 0).with_for_update()
    return session.scalars(query).one_or_none()


_CUSTOMERS = Customer.__table__
# Built once: SQLAlchemy compiles it once and caches that, and it runs on the session's
# connection, without the ORM's per-query compilation and object loading.
_LIVE_CUSTOMER_ROW = select(_CUSTOMERS).where(_CUSTOMERS.c.id == bindparam("customer_id"), _CUSTOMERS.c.tombstone == 0)


def read_live_customer(unit: Session | Connection, customer_id: int) -> Row | None:
    """A live customer's row, to show or to check that it exists (`lock_live_customer` to change it).
    On a Session's connection inside a unit of work that changes things, or on a Connection of
    its own for the lookups other services make on every request (docs/adr/0014)."""
    return connection_of(unit).execute(_LIVE_CUSTOMER_ROW, {"customer_id": customer_id}).one_or_none()


def get_live_customer_by_email(session: Session, email: str) -> Customer | None:
    return session.scalars(select(Customer).where(Customer.email == email, Customer.tombstone == 0)).first()


def live_email_taken(session: Session, email: str, *, excluding_id: int | None = None) -> bool:
    query = select(Customer.id).where(Customer.email == email, Customer.tombstone == 0)
    if excluding_id is not None:
        query = query.where(Customer.id != excluding_id)
    return session.scalars(query.limit(1)).first() is not None


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_live_customers(session: Session, *, search: str | None, after_id: int | None, limit: int) -> list[Customer]:
    query = select(Customer).where(Customer.tombstone == 0)
    if search:
        pattern = f"%{_escape_like(search)}%"
        query = query.where(or_(Customer.name.like(pattern, escape="\\"), Customer.email.like(pattern, escape="\\")))
    if after_id is not None:
        query = query.where(Customer.id > after_id)
    return list(session.scalars(query.order_by(Customer.id).limit(limit)))


def get_user_by_username(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def username_taken(session: Session, username: str) -> bool:
    return session.scalars(select(User.id).where(User.username == username).limit(1)).first() is not None


def get_user_for_update(session: Session, user_id: int) -> User | None:
    return session.scalars(select(User).where(User.id == user_id).with_for_update()).one_or_none()


# --- login throttles ----------------------------------------------------------------------------


def lock_login_throttles(session: Session, keys: Sequence[str], now: datetime) -> list[LoginThrottle]:
    """The throttle rows of `keys`, created if missing, locked until the end of the transaction.

    Always in key order (inserts, then one SELECT ... FOR UPDATE), so two logins never wait for
    each other in a cycle."""
    keys = sorted(set(keys))
    table = LoginThrottle.__table__
    for key in keys:
        values = {"throttle_key": key, "failures": 0, "last_failure_at": now}
        if session.get_bind().dialect.name == "sqlite":
            stmt = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=["throttle_key"])
        else:
            stmt = mysql_insert(table).values(**values)
            stmt = stmt.on_duplicate_key_update(throttle_key=stmt.inserted.throttle_key)  # a no-op: keep the row
        session.execute(stmt)
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.throttle_key.in_(keys))
        .order_by(LoginThrottle.throttle_key)
        .with_for_update()
    )
    return list(session.scalars(query))


def delete_login_throttle(session: Session, key: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.throttle_key == key))


def _stale(before: datetime, now: datetime):
    return and_(
        LoginThrottle.last_failure_at < before,
        or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
    )


def delete_stale_login_throttles(session: Session, *, before: datetime, now: datetime, limit: int) -> int:
    """Delete up to `limit` rows whose window has passed and that block nothing (two statements:
    neither MySQL nor SQLite takes a LIMIT in a DELETE's subquery)."""
    query = select(LoginThrottle.throttle_key).where(_stale(before, now)).order_by(LoginThrottle.last_failure_at)
    keys = list(session.scalars(query.limit(limit)))
    if keys:
        session.execute(delete(LoginThrottle).where(LoginThrottle.throttle_key.in_(keys), _stale(before, now)))
    return len(keys)
