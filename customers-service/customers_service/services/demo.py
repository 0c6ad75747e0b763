"""The demo accounts of local runs (`python -m customers_service.cli seed-demo`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from servicekit.db import transaction

from .. import repository
from .customers import add_customer, customer_to_dict
from .users import ensure_user

DEMO_CUSTOMER_EMAIL = "demo-buyer@example.com"


def seed_demo(session_factory: sessionmaker[Session], *, admin_password: str, user_password: str) -> dict[str, Any]:
    """An `admin` user, the demo customer and its `user` login, in one unit of work; idempotent
    (an existing login gets the given password)."""

    def work(session: Session) -> dict[str, Any]:
        existing = repository.get_live_customer_by_email(session, DEMO_CUSTOMER_EMAIL)
        customer = (
            customer_to_dict(existing)
            if existing
            else add_customer(session, name="Demo Buyer Co", email=DEMO_CUSTOMER_EMAIL, phone=None)
        )
        ensure_user(session, username="admin", password=admin_password, role="admin", customer_id=None)
        ensure_user(session, username="user", password=user_password, role="customer", customer_id=customer["id"])
        return {"customer_id": customer["id"], "admin_username": "admin", "user_username": "user"}

    return transaction(session_factory, work)
