"""customers-service tests run against a throwaway MariaDB database migrated with Alembic."""

from __future__ import annotations

import pytest
from orders_stub import OrdersStub
from sqlalchemy import create_engine, text

from customers_service.app import create_app
from customers_service.cli import migrate
from customers_service.config import Settings
from servicekit.auth import KeyRing
from servicekit.testing import ServiceKeySet, ThrowawayDatabase, TokenFactory, random_key_ring_value


@pytest.fixture(scope="session")
def database():
    db = ThrowawayDatabase("customers", dml_only=True)  # the service runs with DML only
    migrate(db.migrate_url)
    yield db
    db.drop()


@pytest.fixture(scope="session")
def service_keys():
    """A key pair per service identity, as `make env` makes them."""
    return ServiceKeySet.generate()


@pytest.fixture(scope="session")
def key_ring_values(service_keys):
    """What customers-service gets: the user ring, its own private key, everyone's public keys."""
    return {"USER_JWT_KEYS": random_key_ring_value("u1"), **service_keys.env_for("customers-service")}


@pytest.fixture(scope="session")
def orders(service_keys):
    """orders-service as customers-service sees it: a stub that records deletion reports."""
    stub = OrdersStub(service_keys.public_keys())
    yield stub
    stub.stop()


@pytest.fixture(autouse=True)
def fresh_orders(orders):
    orders.reset()
    return orders


@pytest.fixture(scope="session")
def settings(database, key_ring_values, service_keys, orders):
    return Settings(
        app_env="test",
        database_url=database.url,
        db_pool_size=5,
        user_jwt_keys=KeyRing.parse(key_ring_values["USER_JWT_KEYS"]),
        service_jwt_private_keys=service_keys.signing("customers-service"),
        service_jwt_public_keys=service_keys.public_keys(),
        user_token_ttl_seconds=900,
        log_level="INFO",
        orders_api_url=orders.base_url,
    )


@pytest.fixture(scope="session")
def app(settings):
    return create_app(settings)


@pytest.fixture(scope="session")
def db_engine(database):
    engine = create_engine(database.url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def empty_tables(db_engine):
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM users"))
        conn.execute(text("DELETE FROM customers"))
        conn.execute(text("DELETE FROM login_throttles"))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def tokens(settings, service_keys):
    return TokenFactory(user_ring=settings.user_jwt_keys, service_keys=service_keys)


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def admin_headers(tokens):
    return bearer(tokens.admin())


@pytest.fixture
def make_customer(client, admin_headers):
    counter = {"n": 0}

    def _make(name: str | None = None, email: str | None = None, phone: str | None = None) -> dict:
        counter["n"] += 1
        body = {"name": name or f"Acme {counter['n']}", "email": email or f"buyer{counter['n']}@acme.test"}
        if phone:
            body["phone"] = phone
        response = client.post("/customers", json=body, headers=admin_headers)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    return _make


def assert_problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json", response.mimetype
    body = response.get_json(force=True)
    assert body["status"] == status
    assert {"type", "title", "detail", "code", "request_id"} <= set(body)
    if code:
        assert body["code"] == code, body
    return body
