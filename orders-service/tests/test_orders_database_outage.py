"""A database outage under the real server (gunicorn, gevent workers): every request is a 503
with Retry-After, nothing is half-applied, and the first request after the database returns
succeeds (docs/database-outages.md).

The outage is this module's own database user cut off (`ThrowawayDatabase.cut()`: account
locked, every connection killed), never the shared server. customers-service is the stub: the
outage is orders-service's own.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from customers_stub import CustomersStub
from orders_testkit import TABLES, assert_stock_conserved, auth, snapshot
from sqlalchemy import create_engine

from orders_service.cli import migrate
from servicekit.testing import ADMIN_URL, ServerProcess, ThrowawayDatabase


@pytest.fixture(scope="module")
def outage_database():
    db = ThrowawayDatabase("orders_outage", dml_only=True)
    try:
        migrate(db.migrate_url, configure_logging=False)
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="module")
def stub_customers(tokens):
    stub = CustomersStub(tokens.service_keys.public_keys())
    yield stub
    stub.stop()


@pytest.fixture(scope="module")
def server(outage_database, service_env, stub_customers, tmp_path_factory):
    env = {
        **service_env,
        "DATABASE_URL": outage_database.url,
        "CUSTOMERS_API_URL": stub_customers.base_url,
        "SERVICE_NAME": "orders-service",
    }
    process = ServerProcess(
        "orders_service.wsgi:app",
        env=env,
        workers=2,
        log_path=tmp_path_factory.mktemp("outage-logs") / "orders-service.log",
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def as_root(outage_database):
    """Reads the data as root: the service's own user is locked out during the outage."""
    engine = create_engine(ADMIN_URL + outage_database.name, isolation_level="READ COMMITTED")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def call(server, tokens):
    admin = auth(tokens.admin())

    def call(method: str, path: str, headers=None, **kwargs) -> requests.Response:
        return requests.request(method, server.base_url + path, headers=headers or admin, timeout=30, **kwargs)

    return call


def keyed(key: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": key or uuid.uuid4().hex}


def assert_database_unavailable(response: requests.Response, code: str = "database_unavailable") -> None:
    assert response.status_code == 503, (response.request.method, response.request.url, response.text)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == code


def test_an_outage_is_503_everywhere_then_the_first_request_succeeds(
    call, outage_database, as_root, stub_customers, tokens
):
    admin = auth(tokens.admin())
    customer = stub_customers.create()
    product = call(
        "POST", "/products", json={"sku": f"OUT-{uuid.uuid4().hex[:10]}", "name": "p", "price_cents": 100, "stock": 50}
    ).json()
    pid = product["id"]
    items = {"customer_id": customer, "items": [{"product_id": pid, "qty": 2}]}
    created = call("POST", "/orders", json=items).json()
    confirmed = call("POST", "/orders", json=items).json()
    assert call("POST", f"/orders/{confirmed['id']}/confirm", headers={**admin, **keyed()}).status_code == 200
    assert call("PUT", f"/cart/items/{pid}?customer_id={customer}", json={"qty": 1}).status_code == 200
    # Both workers hold pooled connections when the database goes away.
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: call("GET", "/products").status_code, range(16))) == {200}
    before = snapshot(as_root, TABLES)
    create_key = uuid.uuid4().hex
    payments = auth(tokens.service("payments", "orders-service"))

    with outage_database.outage():
        for _ in range(2):  # each worker meets its killed connections, then the locked account
            assert_database_unavailable(call("GET", f"/products/{pid}"))
        assert_database_unavailable(call("GET", "/products"))
        assert_database_unavailable(call("GET", "/orders"))
        assert_database_unavailable(call("GET", f"/orders/{created['id']}"))
        assert_database_unavailable(call("GET", f"/cart?customer_id={customer}"))
        assert_database_unavailable(call("POST", "/orders", json=items, headers={**admin, **keyed(create_key)}))
        assert_database_unavailable(call("POST", "/orders", json=items))
        body = {"customer_id": customer, "from_cart": True}
        assert_database_unavailable(call("POST", "/orders", json=body, headers={**admin, **keyed()}))
        assert_database_unavailable(call("POST", f"/orders/{created['id']}/confirm", headers={**admin, **keyed()}))
        assert_database_unavailable(call("POST", f"/orders/{confirmed['id']}/cancel", headers={**admin, **keyed()}))
        assert_database_unavailable(call("POST", f"/internal/orders/{confirmed['id']}/payment-claim", headers=payments))
        outcome = {"outcome": "succeeded", "payment_attempt_id": "pay_1", "payment_reference": "ref-1"}
        assert_database_unavailable(
            call("POST", f"/internal/orders/{confirmed['id']}/payment-outcome", json=outcome, headers=payments)
        )
        assert_database_unavailable(call("PUT", f"/cart/items/{pid}?customer_id={customer}", json={"qty": 3}))
        assert_database_unavailable(
            call("POST", "/products", json={"sku": "X-1", "name": "x", "price_cents": 1, "stock": 1})
        )
        assert_database_unavailable(call("PATCH", f"/products/{pid}", json={"name": "renamed"}))
        assert_database_unavailable(call("POST", f"/products/{pid}/restock", json={"qty": 5}))
        assert_database_unavailable(call("GET", "/ready"), "not_ready")
        assert call("GET", "/health").status_code == 200
        assert snapshot(as_root, TABLES) == before  # nothing half-applied

    # The first request after the database returns succeeds: the order the client retries
    # under its key is created now (nothing of it was stored during the outage).
    retried = call("POST", "/orders", json=items, headers={**admin, **keyed(create_key)})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers
    for _ in range(4):
        assert call("GET", f"/products/{pid}").status_code == 200
    assert call("GET", "/ready").status_code == 200
    assert call("POST", f"/orders/{created['id']}/confirm", headers={**admin, **keyed()}).status_code == 200
    assert_stock_conserved(as_root, [pid])


def test_connections_killed_while_idle_cost_no_request(call, outage_database, stub_customers):
    """Every pooled connection of both workers dies unnoticed (a database restart at night): the
    first request of each worker meets a dead one, and runs again on a fresh connection."""
    customer = stub_customers.create()
    product = call(
        "POST", "/products", json={"sku": f"OUT-{uuid.uuid4().hex[:10]}", "name": "p", "price_cents": 100, "stock": 50}
    ).json()
    items = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: call("GET", "/products").status_code, range(16))) == {200}
        assert outage_database.kill_connections() >= 2
        statuses = list(pool.map(lambda _: call("POST", "/orders", json=items, headers=None).status_code, range(16)))
    assert statuses == [201] * 16
    assert call("GET", "/ready").status_code == 200
