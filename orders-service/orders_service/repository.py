"""Small query functions over orders_db. Each takes the request's Session and never commits.

Core statements throughout: the hot paths (reserve, confirm, cancel) are a handful of round
trips, and multi-row changes are single statements (one UPDATE with CASE, one multi-row INSERT).
`FOR UPDATE` is dropped by SQLite's dialect, where BEGIN IMMEDIATE already serialises writers.

The statements of the hot paths (create, confirm, idempotency keys) are built once, with bind
parameters, at import: building a statement and its cache key costs more CPU than the database
round trip it describes (about 90 µs against 30 µs, measured on the bench box). On MySQL/MariaDB
through PyMySQL they go further and run as plain SQL on the session's own DBAPI connection (same
transaction, same error handling, same cursor events), skipping SQLAlchemy's per-execution work,
which profiling showed to be a fifth of a request's CPU (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, delete, insert, literal, or_, select, tuple_, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .models import (
    CONFIRMED,
    CREATED,
    NOT_REQUESTED,
    PENDING,
    PROCESSING,
    cart_items_table,
    carts_table,
    deleted_customers_table,
    idempotency_keys_table,
    order_items_table,
    orders_table,
    products_table,
)

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


# --- statements of the hot paths, built once ---------------------------------------------------

# 1 when the customer has a tombstone (customers-service reported it deleted), else NULL: a
# column of the statement that locks the products, so the create transaction refuses a deleted
# customer without a round trip of its own (a plain read: it takes no lock, and under READ
# COMMITTED it sees every tombstone committed before the statement started).
_CUSTOMER_DELETED = (
    select(literal(1))
    .where(deleted_customers.c.customer_id == bindparam("customer_id"))
    .scalar_subquery()
    .label("customer_deleted")
)
_LOCK_PRODUCTS = (
    select(products.c.id, products.c.sku, products.c.price_cents, products.c.stock, _CUSTOMER_DELETED)
    .where(products.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(products.c.id)
    .with_for_update()
)
_ADD_TO_ONE_STOCK = (
    update(products)
    .where(products.c.id == bindparam("product_id"))
    .values(stock=products.c.stock + bindparam("delta"), updated_at=bindparam("now"))
)
_INSERT_ORDER = insert(orders).values(
    customer_id=bindparam("customer_id"),
    status=CREATED,
    payment_status=NOT_REQUESTED,
    total_cents=bindparam("total_cents"),
    created_at=bindparam("now"),
    updated_at=bindparam("now"),
)
_INSERT_ORDER_ITEMS = insert(order_items)
_LOCK_ORDER_WITH_ITEMS = (
    select(
        *ORDER_COLUMNS,
        order_items.c.product_id,
        order_items.c.sku,
        order_items.c.qty,
        order_items.c.unit_price_cents,
    )
    .select_from(orders.outerjoin(order_items, order_items.c.order_id == orders.c.id))
    .where(orders.c.id == bindparam("order_id"))
    .with_for_update()
)
_FIND_IDEMPOTENCY_KEY = select(
    idempotency_keys.c.id,
    idempotency_keys.c.request_fingerprint,
    idempotency_keys.c.response_status,
    idempotency_keys.c.response_body,
    idempotency_keys.c.expires_at,
).where(idempotency_keys.c.scope_hash == bindparam("scope_hash"))
_INSERT_IDEMPOTENCY_KEY = insert(idempotency_keys)
_STORE_IDEMPOTENT_RESPONSE = (
    update(idempotency_keys)
    .where(idempotency_keys.c.id == bindparam("key_id"))
    .values(response_status=bindparam("status"), response_body=bindparam("body"))
)
_DELETE_IDEMPOTENCY_KEY = delete(idempotency_keys).where(idempotency_keys.c.id == bindparam("key_id"))
# --- MySQL/MariaDB through PyMySQL: the hot statements straight on the driver ------------------

_ORDER_SELECT = ", ".join(f"orders.{column.name}" for column in ORDER_COLUMNS)
_RAW_INSERT_KEY = (
    "INSERT INTO idempotency_keys (scope_hash, caller, route, idempotency_key, request_fingerprint, "
    "created_at, expires_at) VALUES (%(scope_hash)s, %(caller)s, %(route)s, %(idempotency_key)s, "
    "%(request_fingerprint)s, %(created_at)s, %(expires_at)s)"
)
_RAW_LOCK_PRODUCTS = (
    "SELECT id, sku, price_cents, stock, "
    "(SELECT 1 FROM deleted_customers WHERE customer_id = %(customer_id)s) AS customer_deleted "
    "FROM products WHERE id IN %(ids)s ORDER BY id FOR UPDATE"
)
_RAW_ADD_TO_ONE_STOCK = "UPDATE products SET stock = stock + %(delta)s, updated_at = %(now)s WHERE id = %(product_id)s"
_RAW_INSERT_ORDER = (
    "INSERT INTO orders (customer_id, status, payment_status, total_cents, created_at, updated_at) "
    "VALUES (%(customer_id)s, %(status)s, %(payment_status)s, %(total_cents)s, %(now)s, %(now)s)"
)
_RAW_INSERT_ORDER_ITEMS = (
    "INSERT INTO order_items (order_id, product_id, sku, qty, unit_price_cents) "
    "VALUES (%(order_id)s, %(product_id)s, %(sku)s, %(qty)s, %(unit_price_cents)s)"
)
_RAW_LOCK_ORDER_WITH_ITEMS = (
    f"SELECT {_ORDER_SELECT}, order_items.product_id, order_items.sku, order_items.qty, "
    "order_items.unit_price_cents FROM orders LEFT OUTER JOIN order_items ON order_items.order_id = orders.id "
    "WHERE orders.id = %(order_id)s FOR UPDATE"
)
_RAW_STORE_IDEMPOTENT_RESPONSE = (
    "UPDATE idempotency_keys SET response_status = %(status)s, response_body = %(body)s WHERE id = %(key_id)s"
)


_DRIVER_KEY = "orders_service.driver_connection"


class RawRow(dict):
    """A row from the driver: by key (like `Row._mapping`) and by attribute (like `Row`)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _driver(session: Session) -> Any | None:
    """The session's Connection when it is MySQL/MariaDB through PyMySQL, else None (remembered
    for the session's current transaction: `Session.connection()` is not free)."""
    remembered = session.info.get(_DRIVER_KEY)
    if remembered is not None and remembered[0] is session.get_transaction():
        return remembered[1]
    connection = session.connection()
    dialect = connection.dialect
    if not (dialect.driver == "pymysql" and dialect.name in ("mysql", "mariadb")):
        connection = None
    session.info[_DRIVER_KEY] = (session.get_transaction(), connection)
    return connection


def _raw(connection: Any, sql: str, params: Any, *, many: bool = False) -> Any:
    """Run `sql` on the connection's DBAPI cursor, in its transaction. Cursor events fire as for
    any statement, and errors are SQLAlchemy's (wrapped, invalidating a dead connection)."""
    cursor = connection.connection.dbapi_connection.cursor()
    if connection.dispatch.before_cursor_execute:
        connection.dispatch.before_cursor_execute(connection, cursor, sql, params, None, many)
    try:
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params)
    except Exception as exc:
        cursor.close()
        connection._handle_dbapi_exception(exc, sql, params, cursor, None)
    return cursor


def _raw_rows(cursor: Any) -> list[RawRow]:
    names = [column[0] for column in cursor.description]
    rows = [RawRow(zip(names, row, strict=True)) for row in cursor.fetchall()]
    cursor.close()
    return rows


# set_order_fields: one statement per set of fields written (a handful of sets exist).
_SET_ORDER_FIELDS: dict[tuple[str, ...], Any] = {}
_RAW_SET_ORDER_FIELDS: dict[tuple[str, ...], str] = {}


def _upsert(session: Session, table, values: Mapping[str, Any], key: Sequence[str], update_columns: Sequence[str]):
    """INSERT, or UPDATE `update_columns` when the key exists (MySQL/MariaDB or SQLite)."""
    if session.get_bind().dialect.name == "sqlite":
        stmt = sqlite_insert(table).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: getattr(stmt.excluded, c) for c in update_columns}
        )
    else:
        stmt = mysql_insert(table).values(**values)
        stmt = stmt.on_duplicate_key_update({c: getattr(stmt.inserted, c) for c in update_columns})
    session.execute(stmt)


# --- Products ---------------------------------------------------------------------------------


def insert_product(session: Session, *, sku: str, name: str, price_cents: int, stock: int, now: datetime) -> int:
    result = session.execute(
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


def get_product(session: Session, product_id: int) -> Row | None:
    return session.execute(select(*PRODUCT_COLUMNS).where(products.c.id == product_id)).first()


def product_exists(session: Session, product_id: int) -> bool:
    return session.execute(select(products.c.id).where(products.c.id == product_id)).first() is not None


def product_exists_and_customer_deleted(session: Session, product_id: int, customer_id: int) -> tuple[bool, bool]:
    """(the product exists, the customer has a tombstone), in one round trip."""
    row = session.execute(
        select(
            select(products.c.id).where(products.c.id == product_id).scalar_subquery().label("product_id"),
            select(literal(1))
            .where(deleted_customers.c.customer_id == customer_id)
            .scalar_subquery()
            .label("customer_deleted"),
        )
    ).one()
    return row.product_id is not None, row.customer_deleted is not None


def list_products(session: Session, *, after_id: int | None, limit: int) -> list[Row]:
    stmt = select(*PRODUCT_COLUMNS).order_by(products.c.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(products.c.id > after_id)
    return list(session.execute(stmt))


def existing_skus(session: Session, skus: Iterable[str]) -> set[str]:
    return set(session.execute(select(products.c.sku).where(products.c.sku.in_(list(skus)))).scalars())


def update_product(session: Session, product_id: int, changes: Mapping[str, Any], now: datetime) -> bool:
    result = session.execute(update(products).where(products.c.id == product_id).values(**changes, updated_at=now))
    return result.rowcount > 0


def add_stock(session: Session, product_id: int, qty: int, now: datetime) -> bool:
    """Restock: one atomic UPDATE, and the delivery is counted in stock_received."""
    result = session.execute(
        update(products)
        .where(products.c.id == product_id)
        .values(
            stock=products.c.stock + qty,
            stock_received=products.c.stock_received + qty,
            updated_at=now,
        )
    )
    return result.rowcount > 0


def lock_products(session: Session, product_ids: Iterable[int], *, customer_id: int) -> list[Row]:
    """Lock the products of one reservation in id order (one fixed order: no lock cycles).

    Every row also carries `customer_deleted` (1 if the customer ordering has a tombstone, else
    None); when no product exists there is no row to carry it: ask `customer_deleted()`."""
    ids = sorted(product_ids)
    params = {"ids": ids, "customer_id": customer_id}
    connection = _driver(session)
    if connection is not None and ids:
        return _raw_rows(_raw(connection, _RAW_LOCK_PRODUCTS, params))
    return list(session.execute(_LOCK_PRODUCTS, params))


def change_stock(session: Session, delta_by_product: Mapping[int, int], now: datetime) -> None:
    """Add a (possibly negative) delta to several products' stock in one UPDATE.

    The rows are updated in primary key order, so a release takes its locks in the same
    order a reservation does.
    """
    if not delta_by_product:
        return
    if len(delta_by_product) == 1:
        ((product_id, delta_qty),) = delta_by_product.items()
        params = {"product_id": product_id, "delta": delta_qty, "now": now}
        connection = _driver(session)
        if connection is not None:
            _raw(connection, _RAW_ADD_TO_ONE_STOCK, params).close()
        else:
            session.execute(_ADD_TO_ONE_STOCK, params)
        return
    delta = case(dict(delta_by_product), value=products.c.id)
    session.execute(
        update(products)
        .where(products.c.id.in_(sorted(delta_by_product)))
        .values(stock=products.c.stock + delta, updated_at=now)
    )


# --- Deleted customers ------------------------------------------------------------------------


def record_deleted_customer(session: Session, customer_id: int, now: datetime) -> datetime:
    """Insert the customer's tombstone unless it exists (idempotent); its `deleted_at`, which is
    when the first report of the deletion was recorded."""
    if session.get_bind().dialect.name == "sqlite":
        stmt = sqlite_insert(deleted_customers).values(customer_id=customer_id, deleted_at=now)
        stmt = stmt.on_conflict_do_nothing(index_elements=["customer_id"])
    else:
        stmt = mysql_insert(deleted_customers).values(customer_id=customer_id, deleted_at=now)
        stmt = stmt.on_duplicate_key_update(customer_id=stmt.inserted.customer_id)  # a no-op: keep the first
    session.execute(stmt)
    stmt = select(deleted_customers.c.deleted_at).where(deleted_customers.c.customer_id == customer_id)
    return session.execute(stmt).scalar_one()


def customer_deleted(session: Session, customer_id: int) -> bool:
    stmt = select(deleted_customers.c.customer_id).where(deleted_customers.c.customer_id == customer_id)
    return session.execute(stmt).first() is not None


# --- Carts ------------------------------------------------------------------------------------


def lock_or_create_cart(session: Session, customer_id: int, now: datetime) -> None:
    """Create the customer's cart row if needed and hold its lock until commit."""
    _upsert(
        session,
        carts,
        {"customer_id": customer_id, "created_at": now, "updated_at": now},
        key=("customer_id",),
        update_columns=("updated_at",),
    )


def lock_cart(session: Session, customer_id: int) -> bool:
    """Lock the customer's cart row; False when the customer never had a cart."""
    stmt = select(carts.c.customer_id).where(carts.c.customer_id == customer_id).with_for_update()
    return session.execute(stmt).first() is not None


def cart_lines(session: Session, customer_id: int) -> list[Row]:
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
    return list(session.execute(stmt))


def cart_quantities(session: Session, customer_id: int) -> dict[int, int]:
    stmt = select(cart_items.c.product_id, cart_items.c.qty).where(cart_items.c.customer_id == customer_id)
    return {row.product_id: row.qty for row in session.execute(stmt)}


def cart_product_ids(session: Session, customer_id: int) -> set[int]:
    stmt = select(cart_items.c.product_id).where(cart_items.c.customer_id == customer_id)
    return set(session.execute(stmt).scalars())


def put_cart_item(session: Session, customer_id: int, product_id: int, qty: int, now: datetime) -> None:
    _upsert(
        session,
        cart_items,
        {"customer_id": customer_id, "product_id": product_id, "qty": qty, "created_at": now, "updated_at": now},
        key=("customer_id", "product_id"),
        update_columns=("qty", "updated_at"),
    )


def delete_cart_items(session: Session, customer_id: int, product_ids: Iterable[int]) -> None:
    ids = sorted(product_ids)
    if ids:
        session.execute(
            delete(cart_items).where(cart_items.c.customer_id == customer_id, cart_items.c.product_id.in_(ids))
        )


# --- Orders -----------------------------------------------------------------------------------


def insert_order(session: Session, *, customer_id: int, total_cents: int, now: datetime) -> int:
    params = {"customer_id": customer_id, "total_cents": total_cents, "now": now}
    connection = _driver(session)
    if connection is not None:
        params.update(status=CREATED, payment_status=NOT_REQUESTED)
        cursor = _raw(connection, _RAW_INSERT_ORDER, params)
        cursor.close()
        return int(cursor.lastrowid)
    result = session.execute(_INSERT_ORDER, params)
    return int(result.inserted_primary_key[0])


def insert_order_items(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """All lines in one multi-row INSERT (executemany is batched by the driver)."""
    rows = list(rows)
    connection = _driver(session)
    if connection is not None:
        if len(rows) == 1:
            _raw(connection, _RAW_INSERT_ORDER_ITEMS, rows[0]).close()
        else:
            _raw(connection, _RAW_INSERT_ORDER_ITEMS, rows, many=True).close()
        return
    session.execute(_INSERT_ORDER_ITEMS, rows[0] if len(rows) == 1 else rows)


def get_order(session: Session, order_id: int) -> Row | None:
    return session.execute(select(*ORDER_COLUMNS).where(orders.c.id == order_id)).first()


def lock_order(session: Session, order_id: int) -> Row | None:
    """The order's row lock: every transition of one order is serialised on it."""
    return session.execute(select(*ORDER_COLUMNS).where(orders.c.id == order_id).with_for_update()).first()


def lock_order_with_items(session: Session, order_id: int) -> tuple[Row | None, list[Row]]:
    """`lock_order` and the order's lines in one round trip (the lines' locks are harmless: they
    never change, and every transition of the order is serialised on the order row anyway)."""
    connection = _driver(session)
    if connection is not None:
        rows: list[Any] = _raw_rows(_raw(connection, _RAW_LOCK_ORDER_WITH_ITEMS, {"order_id": order_id}))
    else:
        rows = list(session.execute(_LOCK_ORDER_WITH_ITEMS, {"order_id": order_id}))
    if not rows:
        return None, []
    # Sorted here: an ORDER BY would make MariaDB build a temporary table for every confirm.
    return rows[0], sorted((row for row in rows if row.product_id is not None), key=lambda row: row.product_id)


def items_by_order(session: Session, order_ids: Sequence[int]) -> dict[int, list[Row]]:
    """The lines of many orders in one query (no N+1 on lists)."""
    grouped: dict[int, list[Row]] = {order_id: [] for order_id in order_ids}
    if not order_ids:
        return grouped
    stmt = (
        select(
            order_items.c.order_id,
            order_items.c.product_id,
            order_items.c.sku,
            order_items.c.qty,
            order_items.c.unit_price_cents,
        )
        .where(order_items.c.order_id.in_(list(order_ids)))
        .order_by(order_items.c.order_id, order_items.c.product_id)
    )
    for row in session.execute(stmt):
        grouped[row.order_id].append(row)
    return grouped


def set_order_fields(session: Session, order_id: int, now: datetime, **fields: Any) -> None:
    names = tuple(sorted(fields))
    stmt = _SET_ORDER_FIELDS.get(names)
    if stmt is None:
        stmt = (
            update(orders)
            .where(orders.c.id == bindparam("b_order_id"))
            .values({name: bindparam(f"b_{name}") for name in (*names, "updated_at")})
        )
        if len(_SET_ORDER_FIELDS) < 64:
            _SET_ORDER_FIELDS[names] = stmt
    params = {f"b_{name}": value for name, value in fields.items()}
    params["b_order_id"] = order_id
    params["b_updated_at"] = now
    connection = _driver(session)
    if connection is not None:
        raw_sql = _RAW_SET_ORDER_FIELDS.get(names)
        if raw_sql is None:  # column names from our own code (the keyword arguments), never input
            assignments = ", ".join(f"{orders.c[name].name} = %(b_{name})s" for name in (*names, "updated_at"))
            raw_sql = f"UPDATE orders SET {assignments} WHERE id = %(b_order_id)s"
            if len(_RAW_SET_ORDER_FIELDS) < 64:
                _RAW_SET_ORDER_FIELDS[names] = raw_sql
        _raw(connection, raw_sql, params).close()
        return
    session.execute(stmt, params)


@dataclass(frozen=True)
class OrderFilter:
    customer_id: int | None = None
    status: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


def list_orders(session: Session, where: OrderFilter, *, before_id: int | None, limit: int) -> list[Row]:
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
    return list(session.execute(stmt))


def overdue_payments(
    session: Session,
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
    return list(session.execute(stmt))


def stale_reservation_ids(session: Session, *, created_before: datetime, limit: int) -> list[int]:
    stmt = (
        select(orders.c.id)
        .where(orders.c.status == CREATED, orders.c.created_at < created_before)
        .order_by(orders.c.created_at, orders.c.id)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


# --- Idempotency keys -------------------------------------------------------------------------


def find_idempotency_key(session: Session, scope_hash: str) -> Row | None:
    return session.execute(_FIND_IDEMPOTENCY_KEY, {"scope_hash": scope_hash}).first()


def insert_idempotency_key(
    session: Session,
    *,
    scope_hash: str,
    caller: str,
    route: str,
    key: str,
    fingerprint: str,
    now: datetime,
    expires_at: datetime,
) -> int:
    params = {
        "scope_hash": scope_hash,
        "caller": caller,
        "route": route,
        "idempotency_key": key,
        "request_fingerprint": fingerprint,
        "created_at": now,
        "expires_at": expires_at,
    }
    connection = _driver(session)
    if connection is not None:
        cursor = _raw(connection, _RAW_INSERT_KEY, params)
        cursor.close()
        return int(cursor.lastrowid)
    result = session.execute(_INSERT_IDEMPOTENCY_KEY, params)
    return int(result.inserted_primary_key[0])


def store_idempotent_response(session: Session, key_id: int, status: int, body: str) -> None:
    params = {"key_id": key_id, "status": status, "body": body}
    connection = _driver(session)
    if connection is not None:
        _raw(connection, _RAW_STORE_IDEMPOTENT_RESPONSE, params).close()
    else:
        session.execute(_STORE_IDEMPOTENT_RESPONSE, params)


def delete_idempotency_key(session: Session, key_id: int) -> None:
    session.execute(_DELETE_IDEMPOTENCY_KEY, {"key_id": key_id})


def expired_idempotency_key_ids(session: Session, now: datetime, limit: int) -> list[int]:
    stmt = (
        select(idempotency_keys.c.id)
        .where(idempotency_keys.c.expires_at <= now)
        .order_by(idempotency_keys.c.expires_at)
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def delete_idempotency_keys(session: Session, key_ids: Sequence[int]) -> int:
    if not key_ids:
        return 0
    return session.execute(delete(idempotency_keys).where(idempotency_keys.c.id.in_(list(key_ids)))).rowcount
