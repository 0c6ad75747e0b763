"""The idempotent routes whose retries servicekit.replay answers before Flask (docs/idempotency.md).

Each entry says how its view fingerprints a request (the same route template, path parameters and
validated body the service layer passes to `IdempotentRequest`), so a retry the middleware
answers is exactly one the view would have replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from servicekit.replay import ReplayRoute, id_path
from servicekit.web import BIGINT_MAX

from ..services.orders import CANCEL_ROUTE, CONFIRM_ROUTE, CREATE_ROUTE
from ..services.products import RESTOCK_ROUTE
from .orders import ORDER_CREATE_SCHEMA, OrderCancel, OrderConfirm, Orders
from .products import RESTOCK_SCHEMA, ProductRestock


def _rule(template: str) -> str:
    """Flask's URL rule for a route template (the `route` field of the log line)."""
    return template.split(" ", 1)[1].replace("{", f"<int(max={BIGINT_MAX}):").replace("}", ">")


def _order_ids(order: Mapping[str, Any]) -> dict[str, Any]:
    return {"order_id": order.get("id"), "customer_id": order.get("customer_id")}


def _product_ids(product: Mapping[str, Any]) -> dict[str, Any]:
    return {"product_id": product.get("id")}


def _route(template: str, view, **kwargs: Any) -> ReplayRoute:
    method, path = template.split(" ", 1)
    return ReplayRoute(method=method, path=id_path(path), route=template, rule=_rule(template), view=view, **kwargs)


REPLAY_ROUTES = (
    _route(CREATE_ROUTE, Orders.post, load_body=ORDER_CREATE_SCHEMA.load, log_ids=_order_ids),
    _route(CONFIRM_ROUTE, OrderConfirm.post, log_ids=_order_ids),
    _route(CANCEL_ROUTE, OrderCancel.post, log_ids=_order_ids),
    _route(RESTOCK_ROUTE, ProductRestock.post, load_body=RESTOCK_SCHEMA.load, log_ids=_product_ids),
)
