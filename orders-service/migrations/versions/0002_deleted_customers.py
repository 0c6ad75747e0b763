"""Tombstones of customers deleted in customers-service.

Revision ID: 0002_deleted_customers
Revises: 0001_initial
Create Date: 2026-12-01 10:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002_deleted_customers"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

MYSQL = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_unicode_ci"}


def upgrade() -> None:
    op.create_table(
        "deleted_customers",
        sa.Column("customer_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("deleted_at", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb"), nullable=False),
        **MYSQL,
    )


def downgrade() -> None:
    op.drop_table("deleted_customers")
