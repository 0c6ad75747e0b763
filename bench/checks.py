"""Correctness under load: no product below zero, stock conserved, exactly the stock sold."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Engine

# Per product: stock, stock received, and the quantity held by orders that are not CANCELED.
_STOCK_LEDGER = (
    "SELECT p.id, p.stock, p.stock_received, COALESCE(h.held, 0) AS held FROM products p "
    "LEFT JOIN (SELECT oi.product_id, SUM(oi.qty) AS held FROM order_items oi "
    "JOIN orders o ON o.id = oi.order_id WHERE o.status <> 'CANCELED' GROUP BY oi.product_id) h "
    "ON h.product_id = p.id"
)
ALL_PRODUCTS = text(_STOCK_LEDGER)
SOME_PRODUCTS = text(_STOCK_LEDGER + " WHERE p.id IN :ids").bindparams(bindparam("ids", expanding=True))


def stock_checks(engine: Engine, product_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """No negative stock; stock_received = stock + qty held by non-CANCELED orders (the stock
    conservation of docs/order-lifecycle.md)."""
    with engine.connect() as conn:
        if product_ids:
            rows = list(conn.execute(SOME_PRODUCTS, {"ids": list(product_ids)}))
        else:
            rows = list(conn.execute(ALL_PRODUCTS))
    negative = [{"product_id": r.id, "stock": int(r.stock)} for r in rows if r.stock < 0]
    broken = [
        {"product_id": r.id, "stock_received": int(r.stock_received), "stock": int(r.stock), "held": int(r.held)}
        for r in rows
        if int(r.stock_received) != int(r.stock) + int(r.held)
    ]
    return {
        "oversell": {"ok": not negative, "products_below_zero": negative[:10]},
        "conservation": {"ok": not broken, "products_checked": len(rows), "violations": broken[:10]},
    }


def sold_out(engine: Engine, product_ids: Sequence[int]) -> dict[str, Any]:
    """Every one of these products has stock 0 (a hot-SKU round sells all of it)."""
    with engine.connect() as conn:
        rows = list(conn.execute(SOME_PRODUCTS, {"ids": list(product_ids)}))
    wrong = [{"product_id": r.id, "stock": int(r.stock)} for r in rows if r.stock != 0]
    return {"ok": not wrong and len(rows) == len(product_ids), "not_sold_out": wrong[:5]}


def hot_sku_round_check(statuses: Counter, stock: int, buyers: int) -> dict[str, Any]:
    sold = statuses.get("201", 0)
    refused = statuses.get("409", 0)
    fives = sum(n for s, n in statuses.items() if s.startswith("5"))
    expected_sold = min(stock, buyers)
    return {
        "ok": sold == expected_sold and refused == buyers - expected_sold and fives == 0,
        "sold": sold,
        "refused_409": refused,
        "expected_sold": expected_sold,
        "errors_5xx": fives,
    }
