"""What every view module shares: the service context."""

from __future__ import annotations

from flask import current_app

from ..services.context import ServiceContext

CONTEXT_KEY = "customers_service.context"


def service_context() -> ServiceContext:
    return current_app.extensions[CONTEXT_KEY]
