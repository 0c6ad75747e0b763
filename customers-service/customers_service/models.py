"""Tables of customers_db."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from servicekit.dbtypes import BigId as Id
from servicekit.dbtypes import UtcDateTime as Timestamp
from servicekit.timeutil import utcnow


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        # `tombstone` is 0 while the customer is live and its own id once soft-deleted, so a
        # deleted customer's email can be used again while live emails stay unique.
        UniqueConstraint("email", "tombstone", name="uq_customers_email_tombstone"),
        Index("ix_customers_tombstone_id", "tombstone", "id"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    tombstone: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("username", name="uq_users_username"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("customers.id", name="fk_users_customer"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=utcnow)


class LoginThrottle(Base):
    """Failed logins of one username (`u:<username>`) or one client address (`a:<address>`),
    shared by every worker (services/throttle.py). A row past its window is as good as none."""

    __tablename__ = "login_throttles"
    __table_args__ = (
        Index("ix_login_throttles_last_failure_at", "last_failure_at"),
        {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"},
    )

    throttle_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_failure_at: Mapped[datetime] = mapped_column(Timestamp)
    blocked_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
