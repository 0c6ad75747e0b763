"""Helpers shared by the tests: auth headers, problem assertions, setup calls, DB checks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from servicekit.testing import TokenFactory

TABLES = ("products", "carts", "cart_items", "orders", "order_items", "idempotency_keys")


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def status_of(response) -> int:
    return getattr(response, "status_code", None)


def json_of(response) -> Any:
    return response.get_json(force=True) if hasattr(response, "get_json") else response.json()


def assert_problem(response, status: int, code: str | None = None) -> dict[str, Any]:
    """A problem+json answer with the given status and code (Flask or requests response)."""
    text_body = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, text_body
    assert response.headers["Content-Type"].startswith("application/problem+json"), text_body
    body = json_of(response)
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(body)
    assert body["request_id"] == response.headers["X-Request-Id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def unique_sku(prefix: str = "SKU") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class OrdersApi:
    """The calls tests make over and over, through the Flask test client."""

    def __init__(self, client, tokens: TokenFactory, customers) -> None:
        self.client = client
        self.tokens = tokens
        self.customers = customers
        self.admin = auth(tokens.admin())
        self.orchestrator = auth(tokens.service("orchestrator", "orders-service"))
        self.payments = auth(tokens.service("payments", "orders-service"))
        self.sweeper = auth(tokens.service("sweeper", "orders-service"))

    def customer_headers(self, customer_id: int) -> dict[str, str]:
        return auth(self.tokens.customer(customer_id, user_id=1000 + customer_id))

    def new_customer(self) -> int:
        return self.customers.create()

    def new_product(self, *, stock: int = 100, price_cents: int = 1000, sku: str | None = None) -> dict[str, Any]:
        body = {"sku": sku or unique_sku(), "name": "Test product", "price_cents": price_cents, "stock": stock}
        response = self.client.post("/products", json=body, headers=self.admin)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def create_order(self, customer_id: int, items: list[tuple[int, int]], *, key: str | None = None, headers=None):
        body = {"customer_id": customer_id, "items": [{"product_id": p, "qty": q} for p, q in items]}
        extra = {"Idempotency-Key": key} if key else {}
        return self.client.post("/orders", json=body, headers={**(headers or self.admin), **extra})

    def new_order(self, customer_id: int, items: list[tuple[int, int]]) -> dict[str, Any]:
        response = self.create_order(customer_id, items)
        assert response.status_code == 201, response.get_data(as_text=True)
        return response.get_json()

    def confirm(self, order_id: int, *, key: str | None = None, headers=None):
        return self.client.post(
            f"/orders/{order_id}/confirm",
            headers={**(headers or self.admin), "Idempotency-Key": key or uuid.uuid4().hex},
        )

    def cancel(self, order_id: int, *, headers=None):
        return self.client.post(f"/orders/{order_id}/cancel", headers=headers or self.admin)

    def claim(self, order_id: int):
        return self.client.post(f"/internal/orders/{order_id}/payment-claim", headers=self.payments)

    def payment_outcome(self, order_id: int, outcome: str, *, attempt_id: str, **extra: Any):
        body = {"outcome": outcome, "payment_attempt_id": attempt_id, **extra}
        return self.client.post(f"/internal/orders/{order_id}/payment-outcome", json=body, headers=self.payments)

    def settle(self, order_id: int, outcome: str, **extra: Any):
        """What the payments Lambda does: claim, then (the charge, then) record the outcome."""
        claim = self.claim(order_id)
        assert claim.status_code == 200, claim.get_data(as_text=True)
        assert claim.get_json()["claimed"] is True, claim.get_json()
        return self.payment_outcome(order_id, outcome, attempt_id=claim.get_json()["payment"]["attempt_id"], **extra)

    def get_order(self, order_id: int) -> dict[str, Any]:
        response = self.client.get(f"/orders/{order_id}", headers=self.admin)
        assert response.status_code == 200
        return response.get_json()


# --- Database checks --------------------------------------------------------------------------


def snapshot(db: Engine, tables: tuple[str, ...] = TABLES) -> dict[str, list[tuple]]:
    """Every row of the given tables, for "the database is unchanged" assertions."""
    with db.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))]
            for table in tables
        }


def stock_of(db: Engine, product_id: int) -> int:
    with db.connect() as conn:
        return conn.execute(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}).scalar_one()


def stock_ledger(db: Engine, product_ids: list[int]) -> dict[int, dict[str, int]]:
    """stock, stock_received and the quantity held by non-canceled orders, per product."""
    id_list = ", ".join(str(int(product_id)) for product_id in product_ids)
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT p.id, p.stock, p.stock_received, "
                "COALESCE((SELECT SUM(i.qty) FROM order_items i JOIN orders o ON o.id = i.order_id "
                "WHERE i.product_id = p.id AND o.status <> 'CANCELED'), 0) AS held "
                f"FROM products p WHERE p.id IN ({id_list})"
            )
        )
        return {
            row.id: {"stock": row.stock, "stock_received": row.stock_received, "held": int(row.held)} for row in rows
        }


def assert_stock_conserved(db: Engine, product_ids: list[int]) -> dict[int, dict[str, int]]:
    ledger = stock_ledger(db, product_ids)
    assert set(ledger) == set(product_ids)
    for product_id, entry in ledger.items():
        assert entry["stock"] >= 0, (product_id, entry)
        assert entry["stock_received"] == entry["stock"] + entry["held"], (product_id, entry)
    return ledger


def order_status(db: Engine, order_id: int) -> tuple[str, str]:
    with db.connect() as conn:
        row = conn.execute(text("SELECT status, payment_status FROM orders WHERE id = :id"), {"id": order_id}).one()
        return row.status, row.payment_status


def execute(db: Engine, sql: str, **params: Any) -> None:
    with db.begin() as conn:
        conn.execute(text(sql), params)
