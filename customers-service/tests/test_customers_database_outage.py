"""A database outage under the real server: every request is a 503 with Retry-After, nothing is
half-applied, and the first request after the database returns succeeds (docs/database-outages.md).

The outage is this module's own database user cut off (`ThrowawayDatabase.cut()`: account
locked, every connection killed), never the shared server.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from customers_server import customers_server
from sqlalchemy import create_engine, text

from customers_service.cli import migrate
from servicekit.testing import ADMIN_URL, ThrowawayDatabase

PASSWORD = "outage-password-1"


@pytest.fixture(scope="module")
def outage_database():
    db = ThrowawayDatabase("cust_outage", dml_only=True)
    migrate(db.migrate_url)
    yield db
    db.drop()


@pytest.fixture(scope="module")
def server(outage_database, key_ring_values, orders, tmp_path_factory):
    process = customers_server(
        outage_database.url, key_ring_values, orders.base_url, tmp_path_factory.mktemp("outage-logs") / "customers.log"
    )
    yield process
    process.stop()


@pytest.fixture(scope="module")
def as_root(outage_database):
    """Reads the data as root: the service's own user is locked out during the outage."""
    engine = create_engine(ADMIN_URL + outage_database.name)
    yield engine
    engine.dispose()


def snapshot(engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {
            table: [tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))]
            for table in ("customers", "users")
        }


def assert_database_unavailable(response: requests.Response, code: str = "database_unavailable") -> None:
    assert response.status_code == 503, (response.request.method, response.request.url, response.text)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["code"] == code


def test_an_outage_is_503_everywhere_then_the_first_request_succeeds(server, outage_database, as_root, tokens, orders):
    url = server.base_url
    admin = {"Authorization": f"Bearer {tokens.admin()}"}
    bff = {"Authorization": f"Bearer {tokens.service('orchestrator', 'customers-service')}"}

    def call(method: str, path: str, headers=None, **kwargs) -> requests.Response:
        return requests.request(method, url + path, headers=headers or admin, timeout=30, **kwargs)

    customer = call("POST", "/customers", json={"name": "Outage Co", "email": f"{uuid.uuid4().hex}@a.test"}).json()
    username = f"outage-{uuid.uuid4().hex[:8]}"
    body = {"username": username, "password": PASSWORD, "role": "customer", "customer_id": customer["id"]}
    assert call("POST", "/users", json=body).status_code == 201
    # Both workers hold pooled connections when the database goes away.
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: call("GET", "/customers").status_code, range(16))) == {200}
    before = snapshot(as_root)
    cid = customer["id"]
    login = {"username": username, "password": PASSWORD}

    with outage_database.outage():
        for _ in range(2):  # each worker meets its killed connections, then the locked account
            assert_database_unavailable(call("GET", f"/customers/{cid}"))
        assert_database_unavailable(call("GET", "/customers"))
        assert_database_unavailable(call("GET", f"/internal/customers/{cid}", headers=bff))
        assert_database_unavailable(call("POST", "/auth/login", json=login))
        assert_database_unavailable(call("POST", "/customers", json={"name": "New", "email": "new@a.test"}))
        assert_database_unavailable(call("PATCH", f"/customers/{cid}", json={"name": "Renamed"}))
        assert_database_unavailable(call("PUT", f"/customers/{cid}", json={"name": "R", "email": "r@a.test"}))
        assert_database_unavailable(call("DELETE", f"/customers/{cid}"))
        body = {"username": "another", "password": PASSWORD, "role": "admin"}
        assert_database_unavailable(call("POST", "/users", json=body))
        assert_database_unavailable(call("GET", "/ready"), "not_ready")
        assert call("GET", "/health").status_code == 200
        assert snapshot(as_root) == before  # nothing half-applied
    assert orders.reports_for(cid) == []  # the delete never happened, so it was never reported

    # The first requests after the database returns succeed, on both workers.
    assert call("POST", "/auth/login", json=login).status_code == 200
    for _ in range(4):
        assert call("GET", f"/customers/{cid}").status_code == 200
    assert call("GET", "/ready").status_code == 200
    assert call("PATCH", f"/customers/{cid}", json={"name": "Renamed"}).json()["name"] == "Renamed"


def test_connections_killed_while_idle_cost_no_request(server, outage_database, tokens):
    """Every pooled connection of both workers dies unnoticed (a database restart at night): the
    first request of each worker meets a dead one, and runs again on a fresh connection."""
    admin = {"Authorization": f"Bearer {tokens.admin()}"}

    def get(path: str) -> int:
        return requests.get(server.base_url + path, headers=admin, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: get("/customers"), range(16))) == {200}
        assert outage_database.kill_connections() >= 2
        assert list(pool.map(lambda _: get("/customers"), range(16))) == [200] * 16
        assert get("/ready") == 200
