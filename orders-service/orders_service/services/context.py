"""What the service functions need from the running app, passed explicitly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection

from ..config import Settings
from .customers import CustomerDirectory
from .idempotency import ReplayCache


@dataclass(frozen=True)
class ServiceContext:
    settings: Settings
    connect: Callable[[], Connection]
    customers: CustomerDirectory
    replays: ReplayCache = field(default_factory=ReplayCache)
