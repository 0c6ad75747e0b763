"""What the service functions need from the running app, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from .customers import CustomerDirectory


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    session_factory: sessionmaker[Session]
    customers: CustomerDirectory
