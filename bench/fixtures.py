"""What the scenarios need before they start: tokens, customers and products (made through the
APIs), and CREATED orders to confirm (written straight into orders_db, thousands at a time)."""

from __future__ import annotations

import argparse
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Engine

from orders_service.models import CREATED, NOT_REQUESTED, order_items_table, orders_table, products_table
from servicekit.auth import mint_service_token, mint_user_token

from .target import Target

ORDERS_PER_INSERT = 2000


@dataclass
class Fixtures:
    run_id: str
    admin_token: str
    orders_token: str  # service token of the orchestrator, for orders-service
    customers: list[int]
    products: list[int]
    confirm_orders: tuple[int, int] = (0, -1)  # first and last id of CREATED orders to confirm
    replay_orders: tuple[int, int] = (0, -1)  # first and last id of orders confirmed with a known key


def expect(response: requests.Response, status: int, what: str) -> dict[str, Any]:
    """The response's JSON, or an error saying what could not be set up."""
    if response.status_code != status:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json()


def seed(target: Target, args: argparse.Namespace, session: requests.Session) -> Fixtures:
    run_id = f"b{int(time.time())}{secrets.token_hex(2)}"
    # As long as tokens may live (an hour): longer than any bench run.
    admin = mint_user_token(target.user_ring, user_id=900001, role="admin", customer_id=None, ttl_seconds=3600)
    service = mint_service_token(target.bff_keys, caller="orchestrator", audience="orders-service", ttl_seconds=3600)
    admin_headers = {"Authorization": f"Bearer {admin}"}
    customers = []
    for i in range(args.customers):
        body = {"name": f"Bench Buyer {run_id} {i}", "email": f"buyer{i}.{run_id}@bench.example"}
        created = expect(
            session.post(target.url("customers") + "/customers", json=body, headers=admin_headers), 201, "customer"
        )
        customers.append(created["id"])
    products = []
    for i in range(args.products):
        body = {"sku": f"BENCH-{run_id}-{i}", "name": f"Bench item {i}", "price_cents": 100 + i, "stock": 10**9}
        created = expect(
            session.post(target.url("orders") + "/products", json=body, headers=admin_headers), 201, "product"
        )
        products.append(created["id"])
    return Fixtures(run_id, admin, service, customers, products)


def insert_created_orders(engine: Engine, fixtures: Fixtures, count: int) -> tuple[int, int]:
    """`count` CREATED orders of one item each, stock taken in the same transaction (so
    conservation holds), with consecutive ids; returns (first id, last id)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random(count)
    lines = [(rng.choice(fixtures.customers), rng.choice(fixtures.products)) for _ in range(count)]
    products = products_table
    with engine.begin() as conn:
        prices = {
            row.id: (row.sku, row.price_cents)
            for row in conn.execute(
                select(products.c.id, products.c.sku, products.c.price_cents).where(
                    products.c.id.in_(fixtures.products)
                )
            )
        }
        first = None
        for start in range(0, count, ORDERS_PER_INSERT):
            chunk = lines[start : start + ORDERS_PER_INSERT]
            orders = [
                {
                    "customer_id": customer,
                    "status": CREATED,
                    "payment_status": NOT_REQUESTED,
                    "total_cents": prices[product][1],
                    "created_at": now,
                    "updated_at": now,
                }
                for customer, product in chunk
            ]
            # One multi-row INSERT: MySQL's lastrowid is the id of its first row.
            chunk_first = conn.execute(insert(orders_table).values(orders)).lastrowid
            if first is None:
                first = chunk_first
            elif chunk_first != first + start:
                raise RuntimeError("seeded order ids are not consecutive")
            items = [
                {
                    "order_id": chunk_first + offset,
                    "product_id": product,
                    "sku": prices[product][0],
                    "qty": 1,
                    "unit_price_cents": prices[product][1],
                }
                for offset, (_, product) in enumerate(chunk)
            ]
            conn.execute(insert(order_items_table).values(items))
        taken = Counter(product for _, product in lines)
        conn.execute(
            update(products)
            .where(products.c.id == bindparam("product_id"))
            .values(stock=products.c.stock - bindparam("taken")),
            [{"product_id": product, "taken": qty} for product, qty in taken.items()],
        )
    assert first is not None
    return first, first + count - 1
