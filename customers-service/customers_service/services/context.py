"""What the service functions need from the running app, passed explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from servicekit.http_client import ServiceClient

from ..config import Settings


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    # Units of work that add or change ORM objects open a Session; the lookups other services
    # make on every request (one Core statement) run on a Connection, which costs less
    # (docs/adr/0014-core-connection-units-of-work.md).
    session_factory: sessionmaker[Session]
    connect: Callable[[], Connection]
    orders: ServiceClient  # deletion reports (services/customers.py)
