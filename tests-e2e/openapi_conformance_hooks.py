"""schemathesis hooks for test_openapi_conformance.py (loaded through SCHEMATHESIS_HOOKS).

The documents state every rule JSON Schema can state. Three rules it cannot, each documented in
prose on its operation and each answered with a 400 problem: a cursor is opaque (only a
`next_cursor` the API handed out is valid), an admin must name the customer (`customer_id`) that
a customer user may leave out, and an order lists each product once. A *positive* case (one
schemathesis expects to be accepted) that breaks one of them is brought in line here, so the run
checks everything else; negative cases are left as generated. Real cursors reach the list
operations through the stateful phase's links.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.modes import GenerationMode

from servicekit.pagination import decode_cursor
from servicekit.problems import Problem

# Set for the runs with an admin token: the customer the admin acts for.
ADMIN_CUSTOMER_ENV = "CONFORMANCE_ADMIN_CUSTOMER_ID"
# Operations where an admin names the customer, by where it goes.
_CUSTOMER_IN_QUERY = {"/cart", "/cart/items/{product_id}"}
_CUSTOMER_IN_BODY = {"/orders", "/checkout", "/orchestrator/create-and-confirm-order"}


def _positive_at(case: Any, location: ParameterLocation) -> bool:
    meta = case.meta
    if meta is None:
        return True
    if meta.generation.mode is not GenerationMode.POSITIVE:
        return False
    return not meta.is_negative_at(location)


def _valid_cursor(value: Any) -> bool:
    try:
        decode_cursor(str(value))
    except Problem:
        return False
    return True


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    path, method = case.operation.path, case.operation.method.upper()
    query = case.query if isinstance(case.query, dict) else {}
    if _positive_at(case, ParameterLocation.QUERY) and "cursor" in query and not _valid_cursor(query["cursor"]):
        del case.query["cursor"]
    admin_customer = os.environ.get(ADMIN_CUSTOMER_ENV)
    if admin_customer:
        if path in _CUSTOMER_IN_QUERY and _positive_at(case, ParameterLocation.QUERY):
            case.query = dict(case.query or {})
            case.query.setdefault("customer_id", int(admin_customer))
        if method == "POST" and path in _CUSTOMER_IN_BODY and _positive_at(case, ParameterLocation.BODY):
            if not isinstance(case.body, dict):  # no body at all (POST /checkout may have none)
                case.body = {}
            if case.body.get("customer_id") is None:
                case.body["customer_id"] = int(admin_customer)
    if _positive_at(case, ParameterLocation.BODY) and isinstance(case.body, dict):
        items = case.body.get("items")
        if isinstance(items, list) and all(isinstance(item, dict) for item in items):
            seen: set[Any] = set()
            unique = []
            for item in items:
                if item.get("product_id") not in seen:
                    seen.add(item.get("product_id"))
                    unique.append(item)
            case.body["items"] = unique
    return case
