"""The JSON shapes the API returns (docs/api.md), built from rows and in-memory values."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from servicekit.timeutil import iso_utc

from ..models import new_order_state


def _fields(row: Any) -> Mapping[str, Any]:
    return row._mapping if hasattr(row, "_mapping") else row


def product_view(row: Any) -> dict[str, Any]:
    p = _fields(row)
    return {
        "id": p["id"],
        "sku": p["sku"],
        "name": p["name"],
        "price_cents": p["price_cents"],
        "stock": p["stock"],
        "created_at": iso_utc(p["created_at"]),
        "updated_at": iso_utc(p["updated_at"]),
    }


def order_item_view(item: Any) -> dict[str, Any]:
    i = _fields(item)
    return {
        "product_id": i["product_id"],
        "sku": i["sku"],
        "qty": i["qty"],
        "unit_price_cents": i["unit_price_cents"],
        "subtotal_cents": i["qty"] * i["unit_price_cents"],
    }


def order_view(order: Any, items: Iterable[Any], **changes: Any) -> dict[str, Any]:
    """An order row (as read, possibly under lock) plus the changes just written to it."""
    o = {**_fields(order), **changes}
    return {
        "id": o["id"],
        "customer_id": o["customer_id"],
        "status": o["status"],
        "payment_status": o["payment_status"],
        "total_cents": o["total_cents"],
        "items": [order_item_view(item) for item in items],
        "created_at": iso_utc(o["created_at"]),
        "confirmed_at": iso_utc(o["confirmed_at"]),
        "paid_at": iso_utc(o["paid_at"]),
        "canceled_at": iso_utc(o["canceled_at"]),
        "cancel_reason": o["cancel_reason"],
        "updated_at": iso_utc(o["updated_at"]),
    }


def new_order_view(
    order_id: int, customer_id: int, total_cents: int, items: Iterable[Any], now: datetime, *, confirmed: bool
) -> dict[str, Any]:
    """What `repository.insert_order` just wrote, with the lines."""
    return order_view(
        {
            "id": order_id,
            "customer_id": customer_id,
            **new_order_state(now, confirmed=confirmed),
            "total_cents": total_cents,
            "created_at": now,
            "paid_at": None,
            "canceled_at": None,
            "cancel_reason": None,
            "updated_at": now,
        },
        items,
    )


def cart_view(customer_id: int, lines: Iterable[Any]) -> dict[str, Any]:
    items = []
    for line in lines:
        item = _fields(line)
        items.append(
            {
                "product_id": item["product_id"],
                "sku": item["sku"],
                "name": item["name"],
                "qty": item["qty"],
                "unit_price_cents": item["price_cents"],
                "subtotal_cents": item["qty"] * item["price_cents"],
            }
        )
    return {"customer_id": customer_id, "items": items, "total_cents": sum(i["subtotal_cents"] for i in items)}


def overdue_payment_view(row: Any) -> dict[str, Any]:
    return {
        "order_id": row.id,
        "customer_id": row.customer_id,
        "amount_cents": row.total_cents,
        "payment_status": row.payment_status,
        "confirmed_at": iso_utc(row.confirmed_at),
    }
