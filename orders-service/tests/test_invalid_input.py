"""Bad input on every write endpoint (and the list queries): a 4xx problem that lists what is
wrong, never a 5xx or HTML, and the database exactly as it was."""

from __future__ import annotations

import uuid

import pytest
from orders_testkit import assert_problem, snapshot

TOO_BIG = 2**63
JSON_HEADERS = {"Content-Type": "application/json"}


def lines(n: int, product_id: str = "{product}") -> list[dict]:
    return [{"product_id": product_id, "qty": 1} for _ in range(n)]


# (method, path, body (dict/list/str = JSON, bytes = raw), status, code, fields expected in `errors`)
CASES = [
    # POST /products
    ("POST", "/products", b"{not json", 400, "malformed_json", {"body"}),
    ("POST", "/products", b"\xff\xfe", 400, "malformed_json", {"body"}),
    ("POST", "/products", [], 400, "validation_error", set()),
    ("POST", "/products", {}, 400, "validation_error", {"sku", "name", "price_cents", "stock"}),
    (
        "POST",
        "/products",
        {"sku": 5, "name": [], "price_cents": "100", "stock": 1.5},
        400,
        "validation_error",
        {"sku", "name", "price_cents", "stock"},
    ),
    (
        "POST",
        "/products",
        {"sku": "x" * 65, "name": "n" * 201, "price_cents": 0, "stock": -1},
        400,
        "validation_error",
        {"sku", "name", "price_cents", "stock"},
    ),
    (
        "POST",
        "/products",
        {"sku": "   ", "name": "ok", "price_cents": 10**10 + 1, "stock": 10**9 + 1},
        400,
        "validation_error",
        {"sku", "price_cents", "stock"},
    ),
    (
        "POST",
        "/products",
        {"sku": "a\x00b", "name": "ok", "price_cents": True, "stock": 1, "extra": 1},
        400,
        "validation_error",
        {"sku", "price_cents", "extra"},
    ),
    # PATCH /products/{id}
    ("PATCH", "/products/{product}", {}, 400, "validation_error", {"body"}),
    ("PATCH", "/products/{product}", {"name": "", "price_cents": -5}, 400, "validation_error", {"name", "price_cents"}),
    ("PATCH", "/products/{product}", {"sku": "NEW", "stock": 5}, 400, "validation_error", {"sku", "stock"}),
    ("PATCH", "/products/{product}", None, 400, "validation_error", {"body"}),
    ("PATCH", "/products/987654321", {"name": "x"}, 404, "not_found", set()),
    # POST /products/{id}/restock
    ("POST", "/products/{product}/restock", {}, 400, "validation_error", {"qty"}),
    ("POST", "/products/{product}/restock", {"qty": 0}, 400, "validation_error", {"qty"}),
    ("POST", "/products/{product}/restock", {"qty": -5}, 400, "validation_error", {"qty"}),
    ("POST", "/products/{product}/restock", {"qty": 1_000_001}, 400, "validation_error", {"qty"}),
    ("POST", "/products/{product}/restock", {"qty": "5"}, 400, "validation_error", {"qty"}),
    ("POST", "/products/{product}/restock", b"qty=5", 400, "malformed_json", {"body"}),
    ("POST", "/products/987654321/restock", {"qty": 1}, 404, "not_found", set()),
    ("POST", f"/products/{TOO_BIG}/restock", {"qty": 1}, 404, "not_found", set()),
    # PUT/DELETE /cart/items/{product_id}
    ("PUT", "/cart/items/{product}?customer_id={customer}", {"qty": 0}, 400, "validation_error", {"qty"}),
    ("PUT", "/cart/items/{product}?customer_id={customer}", {"qty": 10001}, 400, "validation_error", {"qty"}),
    ("PUT", "/cart/items/{product}?customer_id={customer}", {"qty": "1"}, 400, "validation_error", {"qty"}),
    ("PUT", "/cart/items/{product}?customer_id={customer}", {}, 400, "validation_error", {"qty"}),
    ("PUT", "/cart/items/{product}?customer_id=abc", {"qty": 1}, 400, "validation_error", {"customer_id"}),
    ("PUT", "/cart/items/{product}", {"qty": 1}, 400, "validation_error", {"customer_id"}),
    ("PUT", "/cart/items/987654321?customer_id={customer}", {"qty": 1}, 404, "not_found", set()),
    ("PUT", "/cart/items/{product}?customer_id=987654321", {"qty": 1}, 404, "not_found", set()),
    ("DELETE", "/cart/items/987654321?customer_id={customer}", None, 404, "not_found", set()),
    ("DELETE", "/cart/items/{product}?customer_id=-3", None, 400, "validation_error", {"customer_id"}),
    # POST /orders
    ("POST", "/orders", b'{"customer_id": 1, "items": [', 400, "malformed_json", {"body"}),
    ("POST", "/orders", "just a string", 400, "validation_error", set()),
    ("POST", "/orders", {}, 400, "validation_error", {"items"}),
    ("POST", "/orders", {"customer_id": "{customer}", "items": []}, 400, "validation_error", {"items"}),
    ("POST", "/orders", {"customer_id": "{customer}", "items": lines(101)}, 400, "validation_error", {"items"}),
    (
        "POST",
        "/orders",
        {
            "customer_id": "1",
            "items": [
                {"product_id": 0, "qty": 0},
                {"product_id": "x", "qty": -1},
                {"product_id": TOO_BIG, "qty": 10001},
                {"qty": 10**12},
            ],
        },
        400,
        "validation_error",
        {
            "customer_id",
            "items.0.product_id",
            "items.0.qty",
            "items.1.product_id",
            "items.1.qty",
            "items.2.product_id",
            "items.2.qty",
            "items.3.product_id",
            "items.3.qty",
        },
    ),
    ("POST", "/orders", {"customer_id": "{customer}", "items": lines(2)}, 400, "validation_error", {"items"}),
    (
        "POST",
        "/orders",
        {"customer_id": "{customer}", "items": lines(1), "from_cart": True},
        400,
        "validation_error",
        {"items"},
    ),
    ("POST", "/orders", {"customer_id": "{customer}", "from_cart": "yes"}, 400, "validation_error", {"from_cart"}),
    ("POST", "/orders", {"customer_id": "{customer}", "from_cart": False}, 400, "validation_error", {"items"}),
    (
        "POST",
        "/orders",
        {"customer_id": "{customer}", "items": [{"product_id": 987654321, "qty": 1}]},
        404,
        "not_found",
        set(),
    ),
    ("POST", "/orders", {"customer_id": 987654321, "items": lines(1)}, 404, "not_found", set()),
    # confirm / cancel
    ("POST", "/orders/{order}/confirm", None, 400, "idempotency_key_required", {"Idempotency-Key"}),
    ("POST", "/orders/987654321/confirm", "KEY", 404, "not_found", set()),
    ("POST", f"/orders/{TOO_BIG}/confirm", "KEY", 404, "not_found", set()),
    ("POST", "/orders/987654321/cancel", None, 404, "not_found", set()),
    ("POST", "/orders/abc/cancel", None, 404, "not_found", set()),
    # internal
    (
        "POST",
        "/internal/placements",
        {"customer_id": "{customer}", "items": lines(1)},
        400,
        "idempotency_key_required",
        {"Idempotency-Key"},
    ),
    ("POST", "/internal/placements", {"items": lines(1)}, 400, "validation_error", {"customer_id"}),
    ("POST", "/internal/placements", {"customer_id": "{customer}", "items": []}, 400, "validation_error", {"items"}),
    ("POST", "/internal/placements", b"{not json", 400, "malformed_json", {"body"}),
    (
        "POST",
        "/internal/placements",
        {"customer_id": "{customer}", "items": [{"product_id": 987654321, "qty": 1}]},
        404,
        "not_found",
        set(),
    ),
    (
        "POST",
        "/internal/placements",
        {"customer_id": "{customer}", "items": [{"product_id": "{product}", "qty": 6}]},
        409,
        "insufficient_stock",
        set(),
    ),
    (
        "POST",
        "/internal/orders/{order}/payment-outcome",
        {},
        400,
        "validation_error",
        {"outcome", "payment_attempt_id"},
    ),
    (
        "POST",
        "/internal/orders/{order}/payment-outcome",
        {"outcome": "maybe", "payment_attempt_id": "p" * 65, "payment_reference": "r" * 129, "reason": 5},
        400,
        "validation_error",
        {"outcome", "payment_attempt_id", "payment_reference", "reason"},
    ),
    (
        "POST",
        "/internal/orders/987654321/payment-outcome",
        {"outcome": "failed", "payment_attempt_id": "pay_1"},
        404,
        "not_found",
        set(),
    ),
    ("POST", "/internal/orders/987654321/payment-claim", None, 404, "not_found", set()),
    ("POST", "/internal/orders/{order}/payment-claim", None, 409, "invalid_state_transition", set()),
    ("GET", "/internal/stored-responses/never-stored", None, 404, "not_found", set()),
    (
        "PUT",
        "/internal/stored-responses/bad-input",
        {"fingerprint": "", "status": 500, "body": None},
        400,
        "validation_error",
        {"fingerprint", "status", "body"},
    ),
    ("PUT", "/internal/stored-responses/bad-input", b"{not json", 400, "malformed_json", {"body"}),
    (
        "GET",
        "/internal/payments/overdue?processing_older_than_seconds=x",
        None,
        400,
        "validation_error",
        {"processing_older_than_seconds"},
    ),
    (
        "POST",
        "/internal/reservations/expire",
        {"older_than_seconds": -1, "limit": 0},
        400,
        "validation_error",
        {"older_than_seconds", "limit"},
    ),
    (
        "POST",
        "/internal/reservations/expire",
        {"older_than_seconds": "x", "limit": 1001},
        400,
        "validation_error",
        {"older_than_seconds", "limit"},
    ),
    ("POST", "/internal/reservations/expire", b"[", 400, "malformed_json", {"body"}),
    # list queries
    ("GET", "/products?limit=0", None, 400, "validation_error", {"limit"}),
    ("GET", "/products?limit=abc", None, 400, "validation_error", {"limit"}),
    ("GET", "/products?cursor=garbage!", None, 400, "invalid_cursor", {"cursor"}),
    ("GET", "/products?cursor=" + "a" * 600, None, 400, "validation_error", {"cursor"}),
    ("GET", "/orders?limit=101&status=LOST", None, 400, "validation_error", {"limit", "status"}),
    ("GET", "/orders?from=yesterday&to=2024-13-01", None, 400, "validation_error", {"from", "to"}),
    ("GET", "/orders?cursor=eyJpZCI6IC0xfQ", None, 400, "invalid_cursor", {"cursor"}),
    ("GET", "/internal/payments/overdue?older_than_seconds=-1", None, 400, "validation_error", {"older_than_seconds"}),
    ("GET", "/internal/payments/overdue?cursor=eyJpZCI6IDF9", None, 400, "invalid_cursor", {"cursor"}),
]


@pytest.fixture(scope="module")
def existing(app, tokens, customers):
    """A product, a customer and a CREATED order the cases refer to."""
    from orders_testkit import OrdersApi

    api = OrdersApi(app.test_client(), tokens, customers)
    customer = api.new_customer()
    product = api.new_product(stock=5)
    order = api.new_order(customer, [(product["id"], 1)])
    return {"product": product["id"], "customer": customer, "order": order["id"]}


def fill(value, ids):
    if isinstance(value, str):
        filled = value.format(**ids) if "{" in value else value
        return int(filled) if filled.isdigit() and value.startswith("{") else filled
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "fields"),
    CASES,
    ids=[f"{c[0]} {c[1]} {str(c[2])[:40]}" for c in CASES],
)
def test_bad_input_is_a_4xx_problem_and_changes_nothing(api, db, existing, method, path, body, status, code, fields):
    if "/payment-" in path:
        headers = dict(api.payments)
    elif "/stored-responses/" in path or path == "/internal/placements":
        headers = dict(api.orchestrator)
    else:
        headers = dict(api.sweeper if path.startswith("/internal/") else api.admin)
    kwargs = {}
    if path == "/internal/placements" and code != "idempotency_key_required":
        headers["Idempotency-Key"] = f"bad-input-{uuid.uuid4().hex}"
    if path.endswith("/confirm"):
        if body == "KEY":
            headers["Idempotency-Key"] = "bad-input-key"
    elif isinstance(body, bytes):
        kwargs = {"data": body, "headers": {**headers, **JSON_HEADERS}}
    elif body is not None:
        kwargs = {"json": fill(body, existing)}
    kwargs.setdefault("headers", headers)
    before = snapshot(db)
    response = api.client.open(fill(path, existing), method=method, **kwargs)
    problem = assert_problem(response, status, code)
    assert fields <= set(problem.get("errors") or {}), problem
    assert snapshot(db) == before


def test_an_admin_missing_customer_id_is_listed_with_every_other_error(api):
    body = assert_problem(api.client.post("/orders", json={}, headers=api.admin), 400, "validation_error")
    assert set(body["errors"]) == {"items", "customer_id"}
    bad_line = {"items": [{"product_id": 1, "qty": 0}]}
    body = assert_problem(api.client.post("/orders", json=bad_line, headers=api.admin), 400, "validation_error")
    assert set(body["errors"]) == {"items.0.qty", "customer_id"}


def test_unknown_routes_and_methods_are_problems(client, tokens):
    assert_problem(client.get("/nope"), 404, "not_found")
    response = client.delete("/orders", headers={"Authorization": f"Bearer {tokens.admin()}"})
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
