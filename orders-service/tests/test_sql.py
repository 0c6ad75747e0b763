"""The hot statements (orders_service/sql.py) read and write what Core does, on MariaDB and on
SQLite (the `make run` default): the same values, datetimes to the microsecond, `IN` lists."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from orders_service import repository as repo
from orders_service.models import Base, idempotency_keys_table
from orders_service.sql import Statement
from servicekit.db import make_engine, read, transaction


@pytest.fixture(params=["mariadb", "sqlite"])
def connect(request, database, tmp_path):
    if request.param == "mariadb":
        engine = make_engine(database.url, pool_size=1, max_overflow=0)
    else:
        engine = make_engine(f"sqlite:///{tmp_path / 'orders.db'}")
        Base.metadata.create_all(engine)
    yield engine.connect
    engine.dispose()


def test_a_statement_is_written_once_for_every_database():
    statement = Statement("SELECT id FROM products WHERE id IN :ids AND sku LIKE 'A%'", for_update=True)
    assert statement.sql == "SELECT id FROM products WHERE id IN :ids AND sku LIKE 'A%'"
    assert statement._pyformat == "SELECT id FROM products WHERE id IN %(ids)s AND sku LIKE 'A%%' FOR UPDATE"


@pytest.mark.parametrize("microsecond", [0, 123456])
def test_datetimes_and_in_lists_round_trip_like_core(connect, microsecond):
    now = datetime(2026, 11, 23, 15, 53, 0, microsecond)
    skus = [f"SQL-{microsecond}-{n}-{now.timestamp()}" for n in range(3)]

    def write(conn):
        product_ids = [repo.insert_product(conn, sku=s, name="n", price_cents=1, stock=5, now=now) for s in skus]
        key = SimpleNamespace(scope_hash=skus[0][-64:], caller="test", route="r", key="k", fingerprint="f")
        key_id = repo.insert_idempotency_key(conn, key, now=now, expires_at=now + timedelta(hours=1))
        return product_ids, key_id

    product_ids, key_id = transaction(connect, write)

    def read(conn):
        locked = repo.lock_products(conn, reversed(product_ids), customer_id=1)
        found = repo.find_idempotency_key(conn, skus[0][-64:])
        by_core = conn.execute(
            select(idempotency_keys_table.c.expires_at).where(idempotency_keys_table.c.id == key_id)
        ).scalar_one()
        # As stored (text on SQLite): what Core wrote for the product, the statement for the key.
        stored = [
            conn.execute(text(f"SELECT created_at FROM {table} WHERE id = :id"), {"id": row_id}).scalar_one()
            for table, row_id in (("products", product_ids[0]), ("idempotency_keys", key_id))
        ]
        return locked, found, by_core, stored

    locked, found, by_core, stored = transaction(connect, read)
    assert stored[0] == stored[1]
    assert [row.id for row in locked] == sorted(product_ids)  # the lock order
    assert [row.customer_deleted for row in locked] == [None, None, None]
    assert found.id == key_id and found.expires_at == by_core == now + timedelta(hours=1)
    # What the statement wrote, Core reads the same (and the other way round).
    assert transaction(connect, lambda conn: repo.get_product(conn, product_ids[0])).created_at == now


def test_stock_is_taken_with_the_commit_only_at_the_price_read_and_while_it_lasts(connect):
    """`take_stock_with_commit` on both databases: MariaDB sends it with the COMMIT, SQLite runs
    it at once. A row short of stock, or at another price than the one read, fails the stock
    CHECK; `missed_stock_condition` tells that failure (create then runs again locking first)."""
    now = datetime(2026, 12, 3, 8, 0, 0)
    sku = f"TAKE-{now.timestamp()}-{id(connect)}"
    product_id = transaction(
        connect, lambda s: repo.insert_product(s, sku=sku, name="n", price_cents=100, stock=5, now=now)
    )

    def stock() -> int:
        sql = text("SELECT stock FROM products WHERE id = :i")
        return read(connect, lambda s: s.execute(sql, {"i": product_id}).scalar_one())

    transaction(connect, lambda s: repo.take_stock_with_commit(s, {product_id: (2, 100)}, now))
    assert stock() == 3
    for taken in ({product_id: (4, 100)}, {product_id: (1, 150)}):  # short of stock; another price
        with pytest.raises(Exception) as info:
            transaction(connect, lambda s, taken=taken: repo.take_stock_with_commit(s, taken, now))
        assert repo.missed_stock_condition(info.value), info.value
        assert stock() == 3
    assert not repo.missed_stock_condition(ValueError("not a database error"))
