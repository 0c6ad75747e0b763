"""Expiry of stale reservations (called by the sweeper) and the idempotency key purge."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from servicekit.db import transaction
from servicekit.timeutil import utcnow

from .. import repository as repo
from ..models import CREATED
from . import idempotency
from .context import ServiceContext
from .orders import CANCEL_REASON_RESERVATION_EXPIRED, release_reservation


def expire_reservations(ctx: ServiceContext, *, older_than_seconds: int | None, limit: int) -> dict[str, Any]:
    """Cancel orders still CREATED after the reservation TTL, each in its own transaction."""
    older_than = ctx.settings.reservation_ttl_seconds if older_than_seconds is None else older_than_seconds
    created_before = utcnow() - timedelta(seconds=older_than)
    candidates = transaction(
        ctx.connect,
        lambda conn: repo.stale_reservation_ids(conn, created_before=created_before, limit=limit),
    )
    expired = [
        order_id
        for order_id in candidates
        if transaction(ctx.connect, lambda conn, oid=order_id: _expire(conn, oid, created_before))
    ]
    return {"expired_order_ids": expired, "count": len(expired)}


def _expire(conn: Connection, order_id: int, created_before: datetime) -> bool:
    # Re-checked under the lock: it may have been confirmed or canceled since it was listed.
    order = repo.lock_order(conn, order_id)
    if order is None or order.status != CREATED or order.created_at >= created_before:
        return False
    release_reservation(conn, order, CANCEL_REASON_RESERVATION_EXPIRED, utcnow())
    return True


def purge_idempotency_keys(ctx: ServiceContext) -> dict[str, int]:
    return {"purged": idempotency.purge_expired(ctx.connect)}
