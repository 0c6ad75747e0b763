"""Tables of orders_db as SQLAlchemy 2.0 declarative models.

The repository runs Core statements against the `*_table` objects below (no ORM unit of work
on the hot path); the Alembic history in migrations/ is what creates these tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# BIGINT ids everywhere; SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Naive UTC with microseconds (DATETIME(6) on MySQL/MariaDB).
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

MYSQL_TABLE_ARGS = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}

# Order status and payment status values (docs/order-lifecycle.md).
CREATED, CONFIRMED, PAID, CANCELED = "CREATED", "CONFIRMED", "PAID", "CANCELED"
ORDER_STATUSES = (CREATED, CONFIRMED, PAID, CANCELED)
NOT_REQUESTED, PENDING, PROCESSING = "NOT_REQUESTED", "PENDING", "PROCESSING"
SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
PAYMENT_STATUSES = (NOT_REQUESTED, PENDING, PROCESSING, SUCCEEDED, FAILED)


def new_order_state(now: datetime, *, confirmed: bool) -> dict[str, object]:
    """A new order's status fields: CREATED, or (a placement) CONFIRMED at once, payment PENDING."""
    if confirmed:
        return {"status": CONFIRMED, "payment_status": PENDING, "confirmed_at": now}
    return {"status": CREATED, "payment_status": NOT_REQUESTED, "confirmed_at": None}


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("sku", name="uq_products_sku"),
        CheckConstraint("stock >= 0", name="ck_products_stock_non_negative"),
        CheckConstraint("stock_received >= stock", name="ck_products_stock_received"),
        CheckConstraint("price_cents > 0", name="ck_products_price_positive"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(BigInteger)
    # Initial stock plus every restock: lets anyone check conservation (docs/order-lifecycle.md).
    stock_received: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Cart(Base):
    """One row per customer with a cart: the lock every cart change and checkout takes first."""

    __tablename__ = "carts"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class CartItem(Base):
    __tablename__ = "cart_items"
    __table_args__ = (
        Index("ix_cart_items_product_id", "product_id"),
        CheckConstraint("qty > 0", name="ck_cart_items_qty_positive"),
        MYSQL_TABLE_ARGS,
    )

    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("carts.customer_id", name="fk_cart_items_cart"), primary_key=True, autoincrement=False
    )
    product_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("products.id", name="fk_cart_items_product"), primary_key=True, autoincrement=False
    )
    qty: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_id_id", "customer_id", "id"),
        Index("ix_orders_status_created_at", "status", "created_at"),
        Index("ix_orders_status_payment_confirmed_at", "status", "payment_status", "confirmed_at"),
        CheckConstraint("total_cents >= 0", name="ck_orders_total_non_negative"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    payment_status: Mapped[str] = mapped_column(String(16))
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    confirmed_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    canceled_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payment_reference: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payment_failure_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The gateway idempotency key of this order's payment: made at the first claim, never
    # changed, so every retry of the payment is the same charge (docs/payments.md).
    payment_attempt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The latest claim; the sweeper re-publishes a PROCESSING order whose claim is this old.
    payment_claimed_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        Index("ix_order_items_product_id", "product_id"),
        CheckConstraint("qty > 0", name="ck_order_items_qty_positive"),
        MYSQL_TABLE_ARGS,
    )

    order_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("orders.id", name="fk_order_items_order"), primary_key=True, autoincrement=False
    )
    product_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("products.id", name="fk_order_items_product"), primary_key=True, autoincrement=False
    )
    # Copied from the product under the reservation lock: the order keeps what was sold.
    sku: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(Integer)
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("scope_hash", name="uq_idempotency_keys_scope_hash"),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
        MYSQL_TABLE_ARGS,
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # sha256(caller identity | method + route template | key): the unique claim twins block on.
    scope_hash: Mapped[str] = mapped_column(String(64))
    caller: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(LongText, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class DeletedCustomer(Base):
    """A customer soft-deleted in customers-service (its notification, docs/conventions.md): the create
    transaction refuses it even where the customer lookup is still cached."""

    __tablename__ = "deleted_customers"
    __table_args__ = (MYSQL_TABLE_ARGS,)

    customer_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    deleted_at: Mapped[datetime] = mapped_column(Timestamp)


products_table = Product.__table__
carts_table = Cart.__table__
cart_items_table = CartItem.__table__
orders_table = Order.__table__
order_items_table = OrderItem.__table__
idempotency_keys_table = IdempotencyKey.__table__
deleted_customers_table = DeletedCustomer.__table__
