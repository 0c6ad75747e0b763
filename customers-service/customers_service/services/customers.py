"""Customer accounts: create, read, search, replace, patch, soft delete.

A function taking the ServiceContext is one request's work: it decides what the caller may
see and runs one unit of work (`servicekit.db.transaction` / `read`) over the repository; one
taking a Session runs inside its caller's unit of work (`add_customer`: also demo seeding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from servicekit.auth import Principal
from servicekit.db import is_duplicate_key, read, transaction
from servicekit.http_client import ServiceClient
from servicekit.logging import log_event
from servicekit.pagination import decode_cursor, page
from servicekit.problems import not_found
from servicekit.timeutil import iso_utc, utcnow

from .. import repository
from ..models import Customer
from .context import ServiceContext
from .problems import duplicate_email

log = logging.getLogger(__name__)


def customer_to_dict(customer: Customer | Row) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "created_at": iso_utc(customer.created_at),
        "updated_at": iso_utc(customer.updated_at),
    }


def _normalise(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(fields)
    if "email" in cleaned:
        cleaned["email"] = cleaned["email"].strip().lower()
    if "name" in cleaned:
        cleaned["name"] = cleaned["name"].strip()
    return cleaned


def create_customer(ctx: ServiceContext, fields: dict[str, Any]) -> dict[str, Any]:
    return transaction(ctx.session_factory, lambda session: add_customer(session, **fields))


def add_customer(session: Session, *, name: str, email: str, phone: str | None = None) -> dict[str, Any]:
    """Insert a customer in the caller's unit of work (also what demo seeding uses)."""
    fields = _normalise({"name": name, "email": email, "phone": phone})
    if repository.live_email_taken(session, fields["email"]):
        raise duplicate_email(fields["email"])
    now = utcnow()
    customer = Customer(**fields, created_at=now, updated_at=now)
    session.add(customer)
    _flush_or_duplicate(session, fields["email"])
    return customer_to_dict(customer)


def get_customer(ctx: ServiceContext, principal: Principal, customer_id: int) -> dict[str, Any]:
    """A live customer: admins and services see any, a customer user only its own record."""
    if not principal.can_act_for(customer_id):
        raise not_found("Customer", customer_id)  # not 403: do not reveal that it exists

    def work(conn: Connection) -> dict[str, Any]:
        customer = repository.read_live_customer(conn, customer_id)
        if customer is None:
            raise not_found("Customer", customer_id)
        return customer_to_dict(customer)

    return read(ctx.connect, work)


def customer_gone(connect: Callable[[], Connection], customer_id: int) -> bool:
    """Whether a customer user's token names a customer that is no longer live (soft-deleted;
    tokens are only ever minted for customers that existed)."""
    return read(connect, lambda conn: repository.read_live_customer(conn, customer_id) is None)


def search_customers(ctx: ServiceContext, *, search: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    after_id = decode_cursor(cursor)["id"] if cursor else None

    def work(session: Session) -> dict[str, Any]:
        rows = repository.list_live_customers(session, search=search or None, after_id=after_id, limit=limit + 1)
        shown = rows[:limit]
        next_position = {"id": shown[-1].id} if len(rows) > limit else None
        return page([customer_to_dict(c) for c in shown], limit=limit, next_position=next_position)

    return read(ctx.session_factory, work)


def replace_customer(ctx: ServiceContext, customer_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """PUT: every field; an omitted phone is cleared."""
    changes = {"name": fields["name"], "email": fields["email"], "phone": fields.get("phone")}
    return update_customer(ctx, customer_id, changes)


def update_customer(ctx: ServiceContext, customer_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """PATCH: only the given fields."""
    return transaction(ctx.session_factory, lambda session: _update_customer(session, customer_id, changes))


def _update_customer(session: Session, customer_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    customer = repository.lock_live_customer(session, customer_id)
    if customer is None:
        raise not_found("Customer", customer_id)
    changes = _normalise(changes)
    new_email = changes.get("email")
    if (
        new_email
        and new_email != customer.email
        and repository.live_email_taken(session, new_email, excluding_id=customer_id)
    ):
        raise duplicate_email(new_email)
    for field, value in changes.items():
        setattr(customer, field, value)
    customer.updated_at = utcnow()
    _flush_or_duplicate(session, new_email or customer.email)
    return customer_to_dict(customer)


def delete_customer(ctx: ServiceContext, customer_id: int) -> None:
    """Soft-delete the customer, then tell orders-service, which holds customers in a lookup cache.

    The report follows the commit (never a remote call inside the transaction) and cannot undo
    it: if orders-service cannot be told, the delete stands, the failure is logged, and that
    cache's TTL bounds how long orders-service may still accept orders for the customer.
    """
    transaction(ctx.session_factory, lambda session: _soft_delete(session, customer_id))
    report_deletion(ctx.orders, customer_id)


def report_deletion(orders: ServiceClient, customer_id: int) -> bool:
    """`POST /internal/customers/{id}/deleted` on orders-service; True once it has the tombstone.

    Idempotent on their side, so it is retried (bounded, short timeouts: config.py) on a refused
    connection, a timeout or a 502/503/504. Never raises: the delete has already committed.
    """
    path = f"/internal/customers/{customer_id}/deleted"
    try:
        response = orders.request("POST", path, retry=True)
    except Exception as exc:  # DependencyUnavailable after the retries, or anything unexpected
        failure = {"error": getattr(exc, "detail", None) or type(exc).__name__}
    else:
        if response.status_code == 200:
            return True
        failure = {"status": response.status_code}  # 401/403: keys or trust lists disagree
    log_event(
        log,
        "customer_delete_notification_failed",
        logging.ERROR,
        customer_id=customer_id,
        dependency=orders.audience,
        **failure,
    )
    return False


def _soft_delete(session: Session, customer_id: int) -> None:
    customer = repository.lock_live_customer(session, customer_id)
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
            raise duplicate_email(email) from None
        raise
