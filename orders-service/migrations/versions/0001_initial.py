"""Initial schema: products, carts, cart_items, orders, order_items, idempotency_keys.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23 16:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def _id():
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _ts():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("stock_received", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.UniqueConstraint("sku", name="uq_products_sku"),
        sa.CheckConstraint("stock >= 0", name="ck_products_stock_non_negative"),
        sa.CheckConstraint("stock_received >= stock", name="ck_products_stock_received"),
        sa.CheckConstraint("price_cents > 0", name="ck_products_price_positive"),
        **MYSQL,
    )
    op.create_table(
        "carts",
        sa.Column("customer_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        **MYSQL,
    )
    op.create_table(
        "cart_items",
        sa.Column("customer_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("product_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["carts.customer_id"], name="fk_cart_items_cart"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name="fk_cart_items_product"),
        sa.CheckConstraint("qty > 0", name="ck_cart_items_qty_positive"),
        **MYSQL,
    )
    op.create_index("ix_cart_items_product_id", "cart_items", ["product_id"])
    op.create_table(
        "orders",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("total_cents", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("confirmed_at", _ts(), nullable=True),
        sa.Column("paid_at", _ts(), nullable=True),
        sa.Column("canceled_at", _ts(), nullable=True),
        sa.Column("cancel_reason", sa.String(32), nullable=True),
        sa.Column("payment_reference", sa.String(128), nullable=True),
        sa.Column("payment_failure_reason", sa.String(200), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint("total_cents >= 0", name="ck_orders_total_non_negative"),
        **MYSQL,
    )
    # Customer lists (newest first), the sweeper's stale reservations, overdue payments.
    op.create_index("ix_orders_customer_id_id", "orders", ["customer_id", "id"])
    op.create_index("ix_orders_status_created_at", "orders", ["status", "created_at"])
    op.create_index("ix_orders_status_payment_confirmed_at", "orders", ["status", "payment_status", "confirmed_at"])
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("product_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_price_cents", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_items_order"),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name="fk_order_items_product"),
        sa.CheckConstraint("qty > 0", name="ck_order_items_qty_positive"),
        **MYSQL,
    )
    op.create_index("ix_order_items_product_id", "order_items", ["product_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("scope_hash", sa.String(64), nullable=False),
        sa.Column("caller", sa.String(200), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.UniqueConstraint("scope_hash", name="uq_idempotency_keys_scope_hash"),
        **MYSQL,
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("order_items")
    op.drop_table("orders")
    op.drop_table("cart_items")
    op.drop_table("carts")
    op.drop_table("products")
