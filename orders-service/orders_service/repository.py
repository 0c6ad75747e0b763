"""Small query functions over orders_db. Each takes the request's Connection and never commits.

Two kinds of statement, each written once:
- the hot paths' (create, confirm, cancel, the payment claim and outcome, idempotency keys) are
  SQL in the dialect MariaDB/MySQL and SQLite share, run on the driver (`sql.py` says why, and
  holds the few things that differ between the two databases);
- everything else is SQLAlchemy Core, built per call: rarer requests, often with optional
  filters, where the CPU of building a statement does not matter.
The hot paths are a fixed handful of round trips, and multi-row changes are single statements
(one UPDATE with CASE, one multi-row INSERT). `FOR UPDATE` has no effect on SQLite, where BEGIN
IMMEDIATE already serialises writers.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, and_, delete, insert, literal, or_, select, tuple_, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from servicekit.db import mysql_error_code

from .models import (
    CONFIRMED,
    CREATED,
    PENDING,
    PROCESSING,
    cart_items_table,
    carts_table,
    deleted_customers_table,
    idempotency_keys_table,
    new_order_state,
    order_items_table,
    orders_table,
    products_table,
)
from .sql import Statement, run, run_with_commit

products = products_table
carts = carts_table
cart_items = cart_items_table
orders = orders_table
order_items = order_items_table
idempotency_keys = idempotency_keys_table
deleted_customers = deleted_customers_table

PRODUCT_COLUMNS = (
    products.c.id,
    products.c.sku,
    products.c.name,
    products.c.price_cents,
    products.c.stock,
    products.c.created_at,
    products.c.updated_at,
)
ORDER_COLUMNS = (
    orders.c.id,
    orders.c.customer_id,
    orders.c.status,
    orders.c.payment_status,
    orders.c.total_cents,
    orders.c.created_at,
    orders.c.confirmed_at,
    orders.c.paid_at,
    orders.c.canceled_at,
    orders.c.cancel_reason,
    orders.c.updated_at,
    orders.c.payment_attempt_id,
)


ORDER_FIELDS = ", ".join(f"orders.{column.name}" for column in ORDER_COLUMNS)

# --- the statements of the hot paths ------------------------------------------------------------

# `customer_deleted` is 1 when the customer has a tombstone (customers-service reported it
# deleted), else NULL: a column of the statement that locks the products, so the create
# transaction refuses a deleted customer without a round trip of its own (a plain read: it takes
# no lock, and under READ COMMITTED it sees every tombstone committed before the statement started).
LOCK_PRODUCTS = Statement(
    "SELECT id, sku, price_cents, stock, "
    "(SELECT 1 FROM deleted_customers WHERE customer_id = :customer_id) AS customer_deleted "
    "FROM products WHERE id IN :ids ORDER BY id",
    for_update=True,
)
# The same read without the lock: create reads first, takes its locks with TAKE_ONE_STOCK /
# `_take_stocks_statement`, sent with its last statements (`take_stock_with_commit`).
READ_PRODUCTS = Statement(
    "SELECT id, sku, price_cents, stock, "
    "(SELECT 1 FROM deleted_customers WHERE customer_id = :customer_id) AS customer_deleted "
    "FROM products WHERE id IN :ids ORDER BY id"
)
# Takes the row lock, and the stock only if there is enough and the price is still the one read.
# A row without the stock, or whose price is no longer the price read, is set to -1: the CHECK
# `stock >= 0` fails the statement (and the COMMIT sent with it). See `take_stock_with_commit`.
TAKE_ONE_STOCK = Statement(
    "UPDATE products SET stock = CASE WHEN price_cents = :price_cents THEN stock - :qty ELSE -1 END, "
    "updated_at = :now WHERE id = :product_id"
)
ADD_TO_ONE_STOCK = Statement("UPDATE products SET stock = stock + :delta, updated_at = :now WHERE id = :product_id")
INSERT_ORDER = Statement(
    "INSERT INTO orders (customer_id, status, payment_status, total_cents, created_at, confirmed_at, updated_at) "
    "VALUES (:customer_id, :status, :payment_status, :total_cents, :now, :confirmed_at, :now)"
)
INSERT_ORDER_ITEM = Statement(
    "INSERT INTO order_items (order_id, product_id, sku, qty, unit_price_cents) "
    "VALUES (:order_id, :product_id, :sku, :qty, :unit_price_cents)"
)
LOCK_ORDER = Statement(f"SELECT {ORDER_FIELDS} FROM orders WHERE orders.id = :order_id", for_update=True)
# No ORDER BY: it would make MariaDB build a temporary table for every confirm (sorted in Python).
_ORDER_WITH_ITEMS = (
    f"SELECT {ORDER_FIELDS}, order_items.product_id, order_items.sku, order_items.qty, "
    "order_items.unit_price_cents FROM orders LEFT OUTER JOIN order_items ON order_items.order_id = orders.id "
    "WHERE orders.id = :order_id"
)
LOCK_ORDER_WITH_ITEMS = Statement(_ORDER_WITH_ITEMS, for_update=True)
LOCK_ORDER_WITH_ITEMS_NOWAIT = Statement(_ORDER_WITH_ITEMS, for_update=True, nowait=True)
ITEMS_OF_ORDERS = Statement(
    "SELECT order_id, product_id, sku, qty, unit_price_cents FROM order_items "
    "WHERE order_id IN :order_ids ORDER BY order_id, product_id"
)
FIND_IDEMPOTENCY_KEY = Statement(
    "SELECT id, request_fingerprint, response_status, response_body, expires_at "
    "FROM idempotency_keys WHERE scope_hash = :scope_hash"
)
INSERT_IDEMPOTENCY_KEY = Statement(
    "INSERT INTO idempotency_keys (scope_hash, caller, route, idempotency_key, request_fingerprint, "
    "created_at, expires_at) VALUES (:scope_hash, :caller, :route, :idempotency_key, :request_fingerprint, "
    ":created_at, :expires_at)"
)
# The claim and the stored response in one statement: for a unit of work that stores its key last.
INSERT_COMPLETED_IDEMPOTENCY_KEY = Statement(
    "INSERT INTO idempotency_keys (scope_hash, caller, route, idempotency_key, request_fingerprint, "
    "response_status, response_body, created_at, expires_at) VALUES (:scope_hash, :caller, :route, "
    ":idempotency_key, :request_fingerprint, :response_status, :response_body, :created_at, :expires_at)"
)
STORE_IDEMPOTENT_RESPONSE = Statement(
    "UPDATE idempotency_keys SET response_status = :status, response_body = :body WHERE id = :key_id"
)
DELETE_IDEMPOTENCY_KEY = Statement("DELETE FROM idempotency_keys WHERE id = :key_id")


@functools.cache
def _set_order_fields_statement(names: tuple[str, ...]) -> Statement:
    """`UPDATE orders SET <names>, updated_at WHERE id`: one per set of fields (a handful exist);
    the names come from our own code and must be columns of orders."""
    assignments = ", ".join(f"{orders.c[name].name} = :{name}" for name in (*names, "updated_at"))
    return Statement(f"UPDATE orders SET {assignments} WHERE id = :order_id")


@functools.cache
def _change_stocks_statement(count: int) -> Statement:
    """One UPDATE adding a delta to each of `count` products (`:id_<i>`, `:delta_<i>`)."""
    whens = " ".join(f"WHEN :id_{i} THEN :delta_{i}" for i in range(count))
    return Statement(f"UPDATE products SET stock = stock + CASE id {whens} END, updated_at = :now WHERE id IN :ids")


@functools.cache
def _take_stocks_statement(count: int) -> Statement:
    """TAKE_ONE_STOCK for `count` products in one UPDATE (`:id_<i>`, `:qty_<i>`, `:price_<i>`)."""
    stock = (
        "CASE id "
        + " ".join(
            f"WHEN :id_{i} THEN CASE WHEN price_cents = :price_{i} THEN stock - :qty_{i} ELSE -1 END"
            for i in range(count)
        )
        + " END"
    )
    return Statement(f"UPDATE products SET stock = {stock}, updated_at = :now WHERE id IN :ids")


def _upsert(conn: Connection, table, values: Mapping[str, Any], key: Sequence[str], update_columns: Sequence[str]):
    """INSERT, or UPDATE `update_columns` when the key exists (MySQL/MariaDB or SQLite)."""
    if conn.dialect.name == "sqlite":
        stmt = sqlite_insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: getattr(stmt.excluded, c) for c in update_columns}
        )
    else:
        stmt = mysql_insert(table).values(**values)
        stmt = stmt.on_duplicate_key_update({c: getattr(stmt.inserted, c) for c in update_columns})
    conn.execute(stmt)


# --- Products ---------------------------------------------------------------------------------


def insert_product(conn: Connection, *, sku: str, name: str, price_cents: int, stock: int, now: datetime) -> int:
    result = conn.execute(
        insert(products).values(
            sku=sku,
            name=name,
            price_cents=price_cents,
            stock=stock,
            stock_received=stock,
            created_at=now,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def get_product(conn: Connection, product_id: int) -> Row | None:
    return conn.execute(select(*PRODUCT_COLUMNS).where(products.c.id == product_id)).first()


def product_exists(conn: Connection, product_id: int) -> bool:
    return conn.execute(select(products.c.id).where(products.c.id == product_id)).first() is not None


def product_exists_and_customer_deleted(conn: Connection, product_id: int, customer_id: int) -> tuple[bool, bool]:
    """(the product exists, the customer has a tombstone), in one round trip."""
    row = conn.execute(
        select(
            select(products.c.id).where(products.c.id == product_id).scalar_subquery().label("product_id"),
            select(literal(1))
            .where(deleted_customers.c.customer_id == customer_id)
            .scalar_subquery()
            .label("customer_deleted"),
        )
    ).one()
    return row.product_id is not None, row.customer_deleted is not None


def list_products(conn: Connection, *, after_id: int | None, limit: int) -> list[Row]:
    stmt = select(*PRODUCT_COLUMNS).order_by(products.c.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(products.c.id > after_id)
    return list(conn.execute(stmt))


def existing_skus(conn: Connection, skus: Iterable[str]) -> set[str]:
    return set(conn.execute(select(products.c.sku).where(products.c.sku.in_(list(skus)))).scalars())


def update_product(conn: Connection, product_id: int, changes: Mapping[str, Any], now: datetime) -> bool:
    result = conn.execute(update(products).where(products.c.id == product_id).values(**changes, updated_at=now))
    return result.rowcount > 0


def add_stock(conn: Connection, product_id: int, qty: int, now: datetime) -> bool:
    """Restock: one atomic UPDATE, and the delivery is counted in stock_received."""
    result = conn.execute(
        update(products)
        .where(products.c.id == product_id)
        .values(
            stock=products.c.stock + qty,
            stock_received=products.c.stock_received + qty,
            updated_at=now,
        )
    )
    return result.rowcount > 0


def lock_products(conn: Connection, product_ids: Iterable[int], *, customer_id: int) -> list[Row]:
    """Lock the products of one reservation in id order (one fixed order: no lock cycles).

    Every row also carries `customer_deleted` (1 if the customer ordering has a tombstone, else
    None); when no product exists there is no row to carry it: ask `customer_deleted()`."""
    ids = sorted(product_ids)
    if not ids:
        return []
    return list(run(conn, LOCK_PRODUCTS, {"ids": ids, "customer_id": customer_id}))


def read_products(conn: Connection, product_ids: Iterable[int], *, customer_id: int) -> list[Row]:
    """`lock_products` without the locks: a plain read of the last committed rows."""
    ids = sorted(product_ids)
    if not ids:
        return []
    return list(run(conn, READ_PRODUCTS, {"ids": ids, "customer_id": customer_id}))


def take_stock_with_commit(conn: Connection, taken: Mapping[int, tuple[int, int]], now: datetime) -> None:
    """Take `qty` from each product `{product_id: (qty, price_cents)}` in one UPDATE sent with the
    COMMIT (`run_with_commit`, the write that may wait: it locks the rows, in primary key order
    like `lock_products`), so a hot product's row is held for no round trip of ours at all.

    A row that no longer has `qty` in stock, or no longer costs `price_cents`, fails the CHECK on
    `stock`, and with it the COMMIT: nothing is committed, and `missed_stock_condition` tells that
    failure from others. So the prices of an order are the prices under the lock. (Products are
    never deleted, so every row read is still there.)"""
    if len(taken) == 1:
        ((product_id, (qty, price_cents)),) = taken.items()
        params: dict[str, Any] = {"product_id": product_id, "qty": qty, "price_cents": price_cents, "now": now}
        run_with_commit(conn, TAKE_ONE_STOCK, params, may_wait=True)
        return
    ids = sorted(taken)
    params = {"ids": ids, "now": now}
    for i, product_id in enumerate(ids):
        params[f"id_{i}"] = product_id
        params[f"qty_{i}"], params[f"price_{i}"] = taken[product_id]
    run_with_commit(conn, _take_stocks_statement(len(ids)), params, may_wait=True)


STOCK_CHECK = "ck_products_stock_non_negative"  # models.Product; the migrations create it too
_CHECK_FAILED = frozenset({4025, 3819})  # MariaDB's and MySQL's "CHECK constraint failed"


def missed_stock_condition(exc: BaseException) -> bool:
    """`exc` is `take_stock_with_commit` finding a row changed since it was read (the CHECK on
    `stock` failed: MariaDB, MySQL or SQLite)."""
    if not isinstance(exc, DBAPIError):
        return False
    if mysql_error_code(exc) in _CHECK_FAILED or "CHECK constraint failed" in str(exc.orig):
        return STOCK_CHECK in str(exc.orig)
    return False


def change_stock(conn: Connection, delta_by_product: Mapping[int, int], now: datetime) -> None:
    """Add a (possibly negative) delta to several products' stock in one UPDATE.

    The rows are updated in primary key order, so a release takes its locks in the same
    order a reservation does.
    """
    if not delta_by_product:
        return
    if len(delta_by_product) == 1:
        ((product_id, delta_qty),) = delta_by_product.items()
        run(conn, ADD_TO_ONE_STOCK, {"product_id": product_id, "delta": delta_qty, "now": now})
        return
    ids = sorted(delta_by_product)
    params: dict[str, Any] = {"ids": ids, "now": now}
    for i, product_id in enumerate(ids):
        params[f"id_{i}"] = product_id
        params[f"delta_{i}"] = delta_by_product[product_id]
    run(conn, _change_stocks_statement(len(ids)), params)


# --- Deleted customers ------------------------------------------------------------------------


def record_deleted_customer(conn: Connection, customer_id: int, now: datetime) -> datetime:
    """Insert the customer's tombstone unless it exists (idempotent); its `deleted_at`, which is
    when the first report of the deletion was recorded."""
    if conn.dialect.name == "sqlite":
        stmt = sqlite_insert(deleted_customers).values(customer_id=customer_id, deleted_at=now)
        stmt = stmt.on_conflict_do_nothing(index_elements=["customer_id"])
    else:
        stmt = mysql_insert(deleted_customers).values(customer_id=customer_id, deleted_at=now)
        stmt = stmt.on_duplicate_key_update(customer_id=stmt.inserted.customer_id)  # a no-op: keep the first
    conn.execute(stmt)
    stmt = select(deleted_customers.c.deleted_at).where(deleted_customers.c.customer_id == customer_id)
    return conn.execute(stmt).scalar_one()


def customer_deleted(conn: Connection, customer_id: int) -> bool:
    stmt = select(deleted_customers.c.customer_id).where(deleted_customers.c.customer_id == customer_id)
    return conn.execute(stmt).first() is not None


# --- Carts ------------------------------------------------------------------------------------


def lock_or_create_cart(conn: Connection, customer_id: int, now: datetime) -> None:
    """Create the customer's cart row if needed and hold its lock until commit."""
    _upsert(
        conn,
        carts,
        {"customer_id": customer_id, "created_at": now, "updated_at": now},
        key=("customer_id",),
        update_columns=("updated_at",),
    )


def lock_cart(conn: Connection, customer_id: int) -> bool:
    """Lock the customer's cart row; False when the customer never had a cart."""
    stmt = select(carts.c.customer_id).where(carts.c.customer_id == customer_id).with_for_update()
    return conn.execute(stmt).first() is not None


def cart_lines(conn: Connection, customer_id: int) -> list[Row]:
    stmt = (
        select(
            cart_items.c.product_id,
            cart_items.c.qty,
            products.c.sku,
            products.c.name,
            products.c.price_cents,
        )
        .join(products, products.c.id == cart_items.c.product_id)
        .where(cart_items.c.customer_id == customer_id)
        .order_by(cart_items.c.product_id)
    )
    return list(conn.execute(stmt))


def cart_quantities(conn: Connection, customer_id: int) -> dict[int, int]:
    stmt = select(cart_items.c.product_id, cart_items.c.qty).where(cart_items.c.customer_id == customer_id)
    return {row.product_id: row.qty for row in conn.execute(stmt)}


def cart_product_ids(conn: Connection, customer_id: int) -> set[int]:
    stmt = select(cart_items.c.product_id).where(cart_items.c.customer_id == customer_id)
    return set(conn.execute(stmt).scalars())


def put_cart_item(conn: Connection, customer_id: int, product_id: int, qty: int, now: datetime) -> None:
    _upsert(
        conn,
        cart_items,
        {"customer_id": customer_id, "product_id": product_id, "qty": qty, "created_at": now, "updated_at": now},
        key=("customer_id", "product_id"),
        update_columns=("qty", "updated_at"),
    )


def delete_cart_items(conn: Connection, customer_id: int, product_ids: Iterable[int]) -> None:
    ids = sorted(product_ids)
    if ids:
        conn.execute(
            delete(cart_items).where(cart_items.c.customer_id == customer_id, cart_items.c.product_id.in_(ids))
        )


# --- Orders -----------------------------------------------------------------------------------


def insert_order(conn: Connection, *, customer_id: int, total_cents: int, now: datetime, confirmed: bool) -> int:
    """A new order, CREATED; or, `confirmed`, CONFIRMED at once with its payment PENDING (a placement)."""
    params = {
        "customer_id": customer_id,
        "total_cents": total_cents,
        "now": now,
        **new_order_state(now, confirmed=confirmed),
    }
    return int(run(conn, INSERT_ORDER, params).lastrowid)


def insert_order_items(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """The lines, sent with the COMMIT (`run_with_commit`): the caller holds the locks of their
    products, and of their order (its own new row), so they wait for nobody."""
    run_with_commit(conn, INSERT_ORDER_ITEM, list(rows))


def get_order(conn: Connection, order_id: int) -> Row | None:
    return conn.execute(select(*ORDER_COLUMNS).where(orders.c.id == order_id)).first()


def lock_order(conn: Connection, order_id: int) -> Row | None:
    """The order's row lock: every transition of one order is serialised on it."""
    return run(conn, LOCK_ORDER, {"order_id": order_id}).first()


def lock_order_with_items(conn: Connection, order_id: int, *, nowait: bool = False) -> tuple[Row | None, list[Row]]:
    """`lock_order` and the order's lines in one round trip (the lines' locks are harmless: they
    never change, and every transition of the order is serialised on the order row anyway)."""
    rows = list(run(conn, LOCK_ORDER_WITH_ITEMS_NOWAIT if nowait else LOCK_ORDER_WITH_ITEMS, {"order_id": order_id}))
    if not rows:
        return None, []
    return rows[0], sorted((row for row in rows if row.product_id is not None), key=lambda row: row.product_id)


def items_by_order(conn: Connection, order_ids: Sequence[int]) -> dict[int, list[Row]]:
    """The lines of many orders in one query (no N+1 on lists)."""
    grouped: dict[int, list[Row]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return grouped
    for row in run(conn, ITEMS_OF_ORDERS, {"order_ids": list(order_ids)}):
        grouped[row.order_id].append(row)
    return grouped


def set_order_fields(conn: Connection, order_id: int, now: datetime, **fields: Any) -> None:
    """Sent with the COMMIT (`run_with_commit`): every caller holds the order's row lock already
    (`lock_order`), and none reads the order again in the same transaction."""
    statement = _set_order_fields_statement(tuple(sorted(fields)))
    run_with_commit(conn, statement, {**fields, "order_id": order_id, "updated_at": now})


@dataclass(frozen=True)
class OrderFilter:
    customer_id: int | None = None
    status: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


def list_orders(conn: Connection, where: OrderFilter, *, before_id: int | None, limit: int) -> list[Row]:
    """Newest first by id; keyset pagination on id."""
    stmt = select(*ORDER_COLUMNS).order_by(orders.c.id.desc()).limit(limit)
    if where.customer_id is not None:
        stmt = stmt.where(orders.c.customer_id == where.customer_id)
    if where.status is not None:
        stmt = stmt.where(orders.c.status == where.status)
    if where.created_from is not None:
        stmt = stmt.where(orders.c.created_at >= where.created_from)
    if where.created_to is not None:
        stmt = stmt.where(orders.c.created_at < where.created_to)
    if before_id is not None:
        stmt = stmt.where(orders.c.id < before_id)
    return list(conn.execute(stmt))


def overdue_payments(
    conn: Connection,
    *,
    confirmed_before: datetime,
    claimed_before: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[Row]:
    """CONFIRMED orders still waiting for payment, oldest confirmation first: PENDING ones
    confirmed before `confirmed_before`, and PROCESSING ones whose latest claim is older than
    `claimed_before` (their consumer died or gave up mid-payment)."""
    stmt = (
        select(
            orders.c.id,
            orders.c.customer_id,
            orders.c.total_cents,
            orders.c.confirmed_at,
            orders.c.payment_status,
        )
        .where(
            orders.c.status == CONFIRMED,
            or_(
                and_(orders.c.payment_status == PENDING, orders.c.confirmed_at < confirmed_before),
                and_(orders.c.payment_status == PROCESSING, orders.c.payment_claimed_at < claimed_before),
            ),
        )
        .order_by(orders.c.confirmed_at, orders.c.id)
        .limit(limit)
    )
    if after is not None:
        stmt = stmt.where(tuple_(orders.c.confirmed_at, orders.c.id) > tuple_(*after))
    return list(conn.execute(stmt))


def stale_reservation_ids(conn: Connection, *, created_before: datetime, limit: int) -> list[int]:
    stmt = (
        select(orders.c.id)
        .where(orders.c.status == CREATED, orders.c.created_at < created_before)
        .order_by(orders.c.created_at, orders.c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


# --- Idempotency keys -------------------------------------------------------------------------


def find_idempotency_key(conn: Connection, scope_hash: str) -> Row | None:
    return run(conn, FIND_IDEMPOTENCY_KEY, {"scope_hash": scope_hash}).first()


def insert_idempotency_key(
    conn: Connection, key: KeyRow, *, now: datetime, expires_at: datetime, response: tuple[int, str] | None = None
) -> int:
    """The key's row: a claim (no response yet), or with `response` (status, body) a completed one."""
    params = _idempotency_key_params(key, now, expires_at, response)
    return int(
        run(conn, INSERT_IDEMPOTENCY_KEY if response is None else INSERT_COMPLETED_IDEMPOTENCY_KEY, params).lastrowid
    )


def insert_completed_idempotency_key_with_commit(
    conn: Connection, key: KeyRow, *, now: datetime, expires_at: datetime, response: tuple[int, str]
) -> None:
    """The key's row with its response (status, body), sent with the COMMIT: a twin's row with
    the same scope makes the COMMIT fail with a duplicate key (or, while the twin's transaction
    is still open, a lock wait timeout), and nothing is committed."""
    run_with_commit(conn, INSERT_COMPLETED_IDEMPOTENCY_KEY, _idempotency_key_params(key, now, expires_at, response))


class KeyRow(Protocol):
    """What a key's row is made of (servicekit.idempotency.IdempotentRequest has it)."""

    scope_hash: str
    caller: str
    route: str
    key: str
    fingerprint: str


def _idempotency_key_params(
    key: KeyRow, now: datetime, expires_at: datetime, response: tuple[int, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "scope_hash": key.scope_hash,
        "caller": key.caller,
        "route": key.route,
        "idempotency_key": key.key,
        "request_fingerprint": key.fingerprint,
        "created_at": now,
        "expires_at": expires_at,
    }
    if response is not None:
        params["response_status"], params["response_body"] = response
    return params


def store_idempotent_response(conn: Connection, key_id: int, status: int, body: str) -> None:
    """Sent with the COMMIT: the key's row is this transaction's own claim."""
    run_with_commit(conn, STORE_IDEMPOTENT_RESPONSE, {"key_id": key_id, "status": status, "body": body})


def delete_idempotency_key(conn: Connection, key_id: int, *, with_commit: bool = False) -> None:
    """Now, or sent with the COMMIT (`with_commit`, for this transaction's own claim)."""
    (run_with_commit if with_commit else run)(conn, DELETE_IDEMPOTENCY_KEY, {"key_id": key_id})


def expired_idempotency_key_ids(conn: Connection, now: datetime, limit: int) -> list[int]:
    stmt = (
        select(idempotency_keys.c.id)
        .where(idempotency_keys.c.expires_at <= now)
        .order_by(idempotency_keys.c.expires_at)
        .limit(limit)
    )
    return list(conn.execute(stmt).scalars())


def delete_idempotency_keys(conn: Connection, key_ids: Sequence[int]) -> int:
    if not key_ids:
        return 0
    return conn.execute(delete(idempotency_keys).where(idempotency_keys.c.id.in_(list(key_ids)))).rowcount
