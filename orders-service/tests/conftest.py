"""Fixtures: a throwaway MariaDB database migrated with our Alembic history, key rings and
tokens, the customers-service stand-in, the app (Flask test client) and a real gunicorn server.

Tests share one database and never depend on its being empty: each creates its own products
and customers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from customers_real import RealCustomersService, customers_service_dir
from orders_testkit import OrdersApi
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from orders_service.app import create_app
from orders_service.cli import migrate
from orders_service.config import Settings
from servicekit.auth import KeyRing
from servicekit.testing import (
    ServerProcess,
    ServiceKeySet,
    ThrowawayDatabase,
    TokenFactory,
    free_port,
    random_key_ring_value,
)


@pytest.fixture(scope="session")
def service_keys() -> ServiceKeySet:
    """A key pair per service identity, as `make env` makes them."""
    return ServiceKeySet.generate()


@pytest.fixture(scope="session")
def user_ring_value() -> str:
    return random_key_ring_value("u1")


@pytest.fixture(scope="session")
def key_ring_values(user_ring_value, service_keys) -> dict[str, str]:
    """What orders-service gets: the user ring, its own private key, everyone's public keys."""
    return {"USER_JWT_KEYS": user_ring_value, **service_keys.env_for("orders-service")}


@pytest.fixture(scope="session")
def tokens(user_ring_value, service_keys) -> TokenFactory:
    return TokenFactory(user_ring=KeyRing.parse(user_ring_value), service_keys=service_keys)


@pytest.fixture(scope="session")
def database() -> Iterator[ThrowawayDatabase]:
    db = ThrowawayDatabase("orders", dml_only=True)  # the service runs with DML only
    try:
        migrate(db.migrate_url, configure_logging=False)
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="session")
def db(database) -> Iterator[Engine]:
    """A plain engine for reading (and bending) the database from tests."""
    engine = create_engine(database.url, isolation_level="READ COMMITTED")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def orders_port() -> int:
    """Where `server` (the gunicorn orders-service) listens, known before either service starts:
    customers-service reports deletes there, and it needs customers-service's URL."""
    return free_port()


@pytest.fixture(scope="session")
def customers(user_ring_value, service_keys, tokens, tmp_path_factory, orders_port) -> Iterator[RealCustomersService]:
    """customers-service as orders-service sees it: `.base_url`, `.create()`, `.delete(id)`.

    The real service under gunicorn, reporting deletes to `server` (they reach this database;
    while `server` is not running a report fails, is logged, and the delete still stands). To
    run without it, yield `CustomersStub(service_keys.public_keys())` (tests/customers_stub.py) instead:
    it offers the same three things, and reports nothing.
    """
    directory = customers_service_dir()
    assert directory is not None, "customers-service (wsgi app + migrations) is needed; or use CustomersStub"
    log_path = Path(tmp_path_factory.mktemp("customers-service")) / "customers-service.log"
    service = RealCustomersService(
        directory,
        key_ring_values={"USER_JWT_KEYS": user_ring_value, **service_keys.env_for("customers-service")},
        tokens=tokens,
        log_path=log_path,
        orders_api_url=f"http://127.0.0.1:{orders_port}",
    )
    yield service
    service.stop()


@pytest.fixture(scope="session")
def service_env(database, key_ring_values, customers) -> dict[str, str]:
    return {
        "APP_ENV": "test",
        "DATABASE_URL": database.url,
        **key_ring_values,
        "CUSTOMERS_API_URL": customers.base_url,
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "10",
    }


@pytest.fixture(scope="session")
def app_factory(service_env):
    """Build another app on the same database with some settings changed (env var names)."""
    built = []

    def build(**overrides: str):
        app = create_app(Settings.from_env({**service_env, **overrides}))
        built.append(app)
        return app

    yield build
    for app in built:
        app.extensions["orders_service.engine"].dispose()


@pytest.fixture(scope="session")
def app(app_factory):
    return app_factory()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client, tokens, customers) -> OrdersApi:
    return OrdersApi(client, tokens, customers)


@pytest.fixture(scope="session")
def server(service_env, orders_port, tmp_path_factory) -> Iterator[ServerProcess]:
    """orders-service under gunicorn (3 workers x 8 threads) for true concurrency; the one
    customers-service reports deletes to."""
    log_path = Path(tmp_path_factory.mktemp("gunicorn")) / "orders-service.log"
    process = ServerProcess(
        "orders_service.wsgi:app",
        env={**service_env, "SERVICE_NAME": "orders-service"},
        port=orders_port,
        workers=3,
        threads=8,
        log_path=log_path,
    )
    yield process
    process.stop()
