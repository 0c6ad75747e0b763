"""The per-process objects a request needs: settings, engine, session factory, orders-service client."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from servicekit.http_client import ServiceClient

from .config import Settings

EXTENSION_KEY = "customers_service"


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    orders: ServiceClient  # deletion reports (services/customers.py)


def runtime() -> Runtime:
    return current_app.extensions[EXTENSION_KEY]
