"""BFF during a service's database outage: the service's 503 reaches the client as sent (status,
body, Retry-After); a service that cannot be reached is a 503 with Retry-After; never a 500
(docs/database-outages.md)."""

from __future__ import annotations

import pytest

from servicekit.http_client import keep_alive_pool
from servicekit.testing import free_port

from .stubs import problem

PLACE = "/orchestrator/create-and-confirm-order"
OUTAGE = problem(503, "database_unavailable", request_id="theirs")


def place(bff, token):
    body = {"customer_id": 1, "items": [{"product_id": 1, "qty": 1}]}
    return bff("POST", PLACE, token=token, body=body, headers={"Idempotency-Key": "outage-1"})


def assert_relayed_outage(answer, retry_after: str = "1") -> None:
    assert answer.status == 503
    assert answer.header("Content-Type") == "application/problem+json"
    assert answer.header("Retry-After") == retry_after
    assert answer.body == {**OUTAGE, "request_id": answer.header("X-Request-Id")}


@pytest.fixture
def live_customer(customers):
    customers.on("GET", r"/internal/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1]), "name": "Acme"}))


def test_an_orders_database_outage_is_relayed_on_reads_and_on_the_order_path(bff, tokens, orders, live_customer):
    orders.on("GET", "/products", (503, OUTAGE, {"Retry-After": "1"}))
    orders.on("POST", "/internal/placements", (503, OUTAGE, {"Retry-After": "1"}))
    assert_relayed_outage(bff("GET", "/products", token=tokens.admin()))
    assert_relayed_outage(place(bff, tokens.admin()))
    assert orders.calls("POST", r"/orders/\d+/confirm") == []


def test_a_customers_database_outage_is_relayed_on_login_and_the_customer_check(bff, tokens, customers, orders):
    customers.on("POST", "/internal/login", (503, OUTAGE, {"Retry-After": "1"}))
    customers.on("GET", r"/internal/customers/\d+", (503, OUTAGE, {"Retry-After": "1"}))
    login = bff("POST", "/auth/login", body={"username": "user", "password": "secret-password"})
    assert_relayed_outage(login)
    assert_relayed_outage(place(bff, tokens.admin()))
    assert orders.calls("POST", "/internal/placements") == []


def test_a_503_without_retry_after_gets_one(bff, tokens, orders):
    orders.on("GET", "/products", (503, OUTAGE))
    answer = bff("GET", "/products", token=tokens.admin())
    assert answer.status == 503 and answer.body["code"] == "database_unavailable"
    assert int(answer.header("Retry-After")) >= 1


def test_an_unreachable_service_is_a_503_with_retry_after(bff_deps, bff, tokens, monkeypatch):
    monkeypatch.setattr(bff_deps.orders, "pool", keep_alive_pool(f"http://127.0.0.1:{free_port()}", 1))
    answer = bff("GET", "/products", token=tokens.admin())
    assert answer.status == 503 and answer.body["code"] == "dependency_unavailable"
    assert answer.header("Content-Type") == "application/problem+json"
    assert int(answer.header("Retry-After")) >= 1
