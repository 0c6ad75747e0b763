"""Products: the catalogue and its stock counters."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from servicekit.auth import Principal
from servicekit.db import is_duplicate_key, transaction
from servicekit.limits import RESTOCK_QTY_MAX
from servicekit.pagination import decode_cursor, page
from servicekit.problems import not_found
from servicekit.timeutil import utcnow

from .. import repository as repo
from . import idempotency
from .context import ServiceContext
from .idempotency import IdempotentRequest, Outcome
from .problems import duplicate_sku
from .shapes import product_view

RESTOCK_ROUTE = "POST /products/{product_id}/restock"

# One restock is one delivery; larger numbers are almost certainly a typo (docs/errors-and-limits.md).
MAX_RESTOCK_QTY = RESTOCK_QTY_MAX


def create_product(ctx: ServiceContext, fields: dict[str, Any]) -> dict[str, Any]:
    def work(conn):
        now = utcnow()
        try:
            product_id = repo.insert_product(conn, now=now, **fields)
        except IntegrityError as exc:
            if is_duplicate_key(exc):
                raise duplicate_sku(fields["sku"]) from None
            raise
        return product_view({"id": product_id, **fields, "created_at": now, "updated_at": now})

    return transaction(ctx.connect, work)


def get_product(ctx: ServiceContext, product_id: int) -> dict[str, Any]:
    def work(conn):
        row = repo.get_product(conn, product_id)
        if row is None:
            raise not_found("product", product_id)
        return product_view(row)

    return transaction(ctx.connect, work)


def list_products(ctx: ServiceContext, *, limit: int, cursor: str | None) -> dict[str, Any]:
    after_id = decode_cursor(cursor)["id"] if cursor else None

    def work(conn):
        rows = repo.list_products(conn, after_id=after_id, limit=limit + 1)
        shown = rows[:limit]
        next_position = {"id": shown[-1].id} if len(rows) > limit else None
        return page([product_view(row) for row in shown], limit=limit, next_position=next_position)

    return transaction(ctx.connect, work)


def update_product(ctx: ServiceContext, product_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    def work(conn):
        if not repo.update_product(conn, product_id, changes, utcnow()):
            raise not_found("product", product_id)
        return product_view(repo.get_product(conn, product_id))

    return transaction(ctx.connect, work)


def restock_product(
    ctx: ServiceContext, principal: Principal, product_id: int, qty: int, idempotency_key: str | None = None
) -> Outcome:
    """Add `qty` to the stock in one atomic UPDATE. With a key, a retried restock replays the first
    answer instead of adding the stock again."""
    request = IdempotentRequest.for_key(
        idempotency_key,
        caller=principal.identity,
        route=RESTOCK_ROUTE,
        path_params={"product_id": product_id},
        body={"qty": qty},
    )

    def work(conn) -> Outcome:
        if not repo.add_stock(conn, product_id, qty, utcnow()):
            raise not_found("product", product_id)
        return Outcome(200, product_view(repo.get_product(conn, product_id)))

    return idempotency.run_once(
        ctx.connect, request, work, ttl_seconds=ctx.settings.idempotency_ttl_seconds, cache=ctx.replays
    )
