"""What the service functions need from the running app, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from servicekit.http_client import ServiceClient

from ..config import Settings


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    orders: ServiceClient  # deletion reports (services/customers.py)
