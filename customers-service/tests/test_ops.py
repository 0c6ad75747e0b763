"""Running for real: gunicorn, concurrency, logs, readiness, OpenAPI, demo seeding."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from customers_service.app import create_app
from customers_service.cli import seed_demo
from servicekit.testing import ServerProcess


@pytest.fixture(scope="module")
def server(database, key_ring_values, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("logs") / "customers.log"
    process = ServerProcess(
        "customers_service.wsgi:app",
        env={"DATABASE_URL": database.url, "APP_ENV": "test", **key_ring_values},
        workers=2,
        threads=8,
        log_path=log_path,
    )
    yield process
    process.stop()


def test_concurrent_creates_with_one_email_make_exactly_one_customer(server, tokens):
    headers = {"Authorization": f"Bearer {tokens.admin()}"}

    def create(index):
        return requests.post(
            f"{server.base_url}/customers",
            json={"name": f"Racer {index}", "email": "race@acme.test"},
            headers=headers,
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(create, range(10)))
    assert sorted(statuses) == [201] + [409] * 9
    listing = requests.get(f"{server.base_url}/customers?search=race@acme.test", headers=headers, timeout=10).json()
    assert len(listing["data"]) == 1


def test_logs_are_json_lines_with_request_id_and_no_secrets(server, tokens, client, admin_headers, make_customer):
    customer = make_customer()
    client.post(
        "/users",
        json={"username": "logcheck", "password": "super-secret-pw", "role": "customer", "customer_id": customer["id"]},
        headers=admin_headers,
    )
    response = requests.post(
        f"{server.base_url}/auth/login",
        json={"username": "logcheck", "password": "super-secret-pw"},
        headers={"X-Request-Id": "trace-login-1"},
        timeout=10,
    )
    assert response.status_code == 200 and response.headers["X-Request-Id"] == "trace-login-1"
    token = response.json()["access_token"]
    server.stop()  # flush and close the log before reading it
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    login_lines = [line for line in lines if line.get("request_id") == "trace-login-1"]
    assert any(
        line["event"] == "http_request"
        and line["path"] == "/auth/login"
        and line["status"] == 200
        and line["method"] == "POST"
        and "duration_ms" in line
        and line["customer_id"] == customer["id"]
        for line in login_lines
    )
    raw = server.log_path.read_text()
    assert "super-secret-pw" not in raw and token not in raw and "$argon2" not in raw


def test_ready_is_503_when_database_is_unreachable(settings):
    from dataclasses import replace

    dead = create_app(replace(settings, database_url="mysql+pymysql://nobody:x@127.0.0.1:1/none"))
    response = dead.test_client().get("/ready")
    assert response.status_code == 503 and response.get_json(force=True)["code"] == "not_ready"
    assert response.headers["Retry-After"]
    assert dead.test_client().get("/health").status_code == 200


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").get_json()
    assert set(spec["paths"]) >= {
        "/customers",
        "/customers/{customer_id}",
        "/users",
        "/auth/login",
        "/internal/customers/{customer_id}",
        "/health",
        "/ready",
    }
    assert spec["paths"]["/customers"]["post"]["security"] == [{"bearerAuth": []}]
    assert client.get("/docs").status_code == 200


def test_seed_demo_is_idempotent_and_refuses_production(database, client, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-admin-pass")
    monkeypatch.setenv("DEMO_USER_PASSWORD", "demo-user-pass")
    first = seed_demo(database.url)
    assert seed_demo(database.url) == first
    login = client.post("/auth/login", json={"username": "user", "password": "demo-user-pass"}).get_json()
    assert login["user"]["customer_id"] == first["customer_id"] and login["user"]["role"] == "customer"
    assert client.post("/auth/login", json={"username": "admin", "password": "demo-admin-pass"}).status_code == 200
    # New passwords in .env (make env --force) over an existing database: the logins follow them.
    monkeypatch.setenv("DEMO_USER_PASSWORD", "demo-user-pass-2")
    assert seed_demo(database.url) == first
    assert client.post("/auth/login", json={"username": "user", "password": "demo-user-pass"}).status_code == 401
    assert client.post("/auth/login", json={"username": "user", "password": "demo-user-pass-2"}).status_code == 200
    monkeypatch.setenv("APP_ENV", "production")
    from servicekit.config import ConfigError

    with pytest.raises(ConfigError):
        seed_demo(database.url)
    assert os.environ["APP_ENV"] == "production"
