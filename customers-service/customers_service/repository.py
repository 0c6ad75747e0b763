"""Small queries over customers_db. They take a Session and never commit."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .models import Customer, User


def get_live_customer(session: Session, customer_id: int, *, for_update: bool = False) -> Customer | None:
    query = select(Customer).where(Customer.id == customer_id, Customer.tombstone == 0)
    if for_update:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


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
