"""Customer accounts: create, read, search, replace, patch, soft delete."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from servicekit.db import is_duplicate_key
from servicekit.pagination import decode_cursor, page
from servicekit.problems import Problem, conflict, not_found
from servicekit.timeutil import iso_utc, utcnow

from .. import repository
from ..models import Customer


def customer_to_dict(customer: Customer) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "created_at": iso_utc(customer.created_at),
        "updated_at": iso_utc(customer.updated_at),
    }


def _duplicate_email(email: str) -> Problem:
    return conflict("duplicate_email", f"A customer with email {email} already exists")


def _normalise(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(fields)
    if "email" in cleaned:
        cleaned["email"] = cleaned["email"].strip().lower()
    if "name" in cleaned:
        cleaned["name"] = cleaned["name"].strip()
    return cleaned


def create_customer(session: Session, *, name: str, email: str, phone: str | None = None) -> dict[str, Any]:
    fields = _normalise({"name": name, "email": email, "phone": phone})
    if repository.live_email_taken(session, fields["email"]):
        raise _duplicate_email(fields["email"])
    now = utcnow()
    customer = Customer(**fields, created_at=now, updated_at=now)
    session.add(customer)
    _flush_or_duplicate(session, fields["email"])
    return customer_to_dict(customer)


def get_customer(session: Session, customer_id: int) -> dict[str, Any]:
    customer = repository.get_live_customer(session, customer_id)
    if customer is None:
        raise not_found("Customer", customer_id)
    return customer_to_dict(customer)


def search_customers(session: Session, *, search: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    after_id = decode_cursor(cursor)["id"] if cursor else None
    rows = repository.list_live_customers(session, search=search or None, after_id=after_id, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    return page(
        [customer_to_dict(c) for c in rows],
        limit=limit,
        next_position={"id": rows[-1].id} if has_more else None,
    )


def update_customer(session: Session, customer_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """PUT passes every field (phone None when omitted); PATCH only the given ones."""
    customer = repository.get_live_customer(session, customer_id, for_update=True)
    if customer is None:
        raise not_found("Customer", customer_id)
    changes = _normalise(changes)
    new_email = changes.get("email")
    if (
        new_email
        and new_email != customer.email
        and repository.live_email_taken(session, new_email, excluding_id=customer_id)
    ):
        raise _duplicate_email(new_email)
    for field, value in changes.items():
        setattr(customer, field, value)
    customer.updated_at = utcnow()
    _flush_or_duplicate(session, new_email or customer.email)
    return customer_to_dict(customer)


def delete_customer(session: Session, customer_id: int) -> None:
    customer = repository.get_live_customer(session, customer_id, for_update=True)
    if customer is None:
        raise not_found("Customer", customer_id)
    now = utcnow()
    customer.deleted_at = now
    customer.updated_at = now
    customer.tombstone = customer.id


def _flush_or_duplicate(session: Session, email: str) -> None:
    # The pre-check gives the friendly answer; the unique index is what actually guarantees
    # it when two requests race with the same email.
    try:
        session.flush()
    except IntegrityError as exc:
        if is_duplicate_key(exc):
            raise _duplicate_email(email) from None
        raise
