"""What the service functions need from the running app, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from .customers import CustomerDirectory
from .idempotency import ReplayCache


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    customers: CustomerDirectory
    replays: ReplayCache = field(default_factory=ReplayCache)
