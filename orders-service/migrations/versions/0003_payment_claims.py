"""Payment claims: the order's payment attempt id (the gateway idempotency key) and the time of
its latest claim (docs/payments.md).

Revision ID: 0003_payment_claims
Revises: 0002_deleted_customers
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003_payment_claims"
down_revision = "0002_deleted_customers"
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment_attempt_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("payment_claimed_at", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("payment_claimed_at")
        batch.drop_column("payment_attempt_id")
