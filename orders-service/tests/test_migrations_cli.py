"""One Alembic history that matches the models; the CLI; the SQLite default end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from orders_testkit import auth
from sqlalchemy import create_engine, inspect

from orders_service.app import create_app
from orders_service.cli import SERVICE_DIR
from orders_service.config import Settings
from orders_service.models import Base


def test_migrated_schema_matches_the_models(database):
    engine = create_engine(database.url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            inspector = inspect(conn)
            options = inspector.get_table_options("orders")
            indexes = {index["name"] for index in inspector.get_indexes("orders")}
            unique = {c["name"] for c in inspector.get_unique_constraints("idempotency_keys")}
    finally:
        engine.dispose()
    assert diff == []
    assert options["mysql_engine"] == "InnoDB" and options["mysql_default charset"] == "utf8mb4"
    assert {
        "ix_orders_customer_id_id",
        "ix_orders_status_created_at",
        "ix_orders_status_payment_confirmed_at",
    } <= indexes
    assert unique == {"uq_idempotency_keys_scope_hash"}


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orders_service.cli", *args],
        env={**os.environ, **env},
        cwd=SERVICE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_cli_migrates_and_seeds_idempotently_and_the_app_runs_on_sqlite(tmp_path, tokens, key_ring_values):
    url = f"sqlite:///{tmp_path / 'var' / 'orders.db'}"
    env = {"DATABASE_URL": url}
    run_cli("migrate", env=env)
    run_cli("migrate", env=env)  # already at head: a no-op
    assert "seeded 5 demo product(s)" in run_cli("seed-demo", env=env).stdout
    assert "seeded 0 demo product(s)" in run_cli("seed-demo", env=env).stdout

    app = create_app(Settings.from_env({**key_ring_values, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"}))
    client = app.test_client()
    admin = auth(tokens.admin())
    customer_id = 42
    app.extensions["orders_service.context"].customers._remember(customer_id)  # no customers-service here
    try:
        assert client.get("/ready").status_code == 200
        products = client.get("/products", headers=admin).get_json()["data"]
        assert len(products) == 5
        product = client.post(
            "/products",
            json={"sku": uuid.uuid4().hex[:20], "name": "Lite", "price_cents": 10, "stock": 3},
            headers=admin,
        ).get_json()
        body = {"customer_id": customer_id, "items": [{"product_id": product["id"], "qty": 2}]}
        created = client.post("/orders", json=body, headers={**admin, "Idempotency-Key": "k1"})
        assert created.status_code == 201
        replay = client.post("/orders", json=body, headers={**admin, "Idempotency-Key": "k1"})
        assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == created.get_json()
        order_id = created.get_json()["id"]
        assert client.post(f"/orders/{order_id}/confirm", headers={**admin, "Idempotency-Key": "c1"}).status_code == 200
        assert client.post(f"/orders/{order_id}/cancel", headers=admin).get_json()["status"] == "CANCELED"
        cart_path = f"/cart/items/{product['id']}?customer_id={customer_id}"
        assert client.put(cart_path, json={"qty": 3}, headers=admin).status_code == 200
        assert client.put(cart_path, json={"qty": 1}, headers=admin).get_json()["items"][0]["qty"] == 1
        checkout = client.post("/orders", json={"customer_id": customer_id, "from_cart": True}, headers=admin)
        assert checkout.status_code == 201
        assert client.get(f"/products/{product['id']}", headers=admin).get_json()["stock"] == 2
        listed = client.get(f"/orders?customer_id={customer_id}&from=2000-01-01", headers=admin).get_json()["data"]
        assert len(listed) == 2
        expire = client.post(
            "/internal/reservations/expire",
            json={"older_than_seconds": 0},
            headers=auth(tokens.service("sweeper", "orders-service")),
        )
        assert expire.get_json()["count"] == 1
        assert client.get(f"/products/{product['id']}", headers=admin).get_json()["stock"] == 3
    finally:
        app.extensions["orders_service.engine"].dispose()
