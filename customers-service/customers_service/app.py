"""Application factory of customers-service."""

from __future__ import annotations

from flask import Flask

from servicekit.auth import ServiceTokenMinter, TokenVerifier
from servicekit.db import make_engine, make_session_factory, ping
from servicekit.http_client import ServiceClient
from servicekit.logging import configure_logging
from servicekit.web import create_service_app

from . import SERVICE_NAME
from .api import customers, internal, users
from .api.common import CONTEXT_KEY
from .config import (
    ORDERS_NOTIFY_BACKOFF_SECONDS,
    ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS,
    ORDERS_NOTIFY_RETRIES,
    ORDERS_NOTIFY_TIMEOUT_SECONDS,
    ORDERS_SERVICE_NAME,
    TRUSTED_CALLERS,
    Settings,
)
from .services.context import ServiceContext


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(SERVICE_NAME, settings.log_level)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
    )
    verifier = TokenVerifier(
        service_name=SERVICE_NAME,
        user_ring=settings.user_jwt_keys,
        service_ring=settings.service_jwt_keys,
        trusted_callers=TRUSTED_CALLERS,
    )
    app, api = create_service_app(
        SERVICE_NAME,
        title="customers-service",
        version="1.0.0",
        description="B2B customers, the users who log in for them, login (JWT), and the internal "
        "customer lookup other services call with a service token.",
        verifier=verifier,
        readiness_check=lambda: ping(engine),
    )
    orders = ServiceClient(
        settings.orders_api_url,
        audience=ORDERS_SERVICE_NAME,
        minter=ServiceTokenMinter(settings.service_jwt_keys, SERVICE_NAME),  # reused until a minute before expiry
        connect_timeout=ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS,
        read_timeout=ORDERS_NOTIFY_TIMEOUT_SECONDS,
        retries=ORDERS_NOTIFY_RETRIES,
        backoff_seconds=ORDERS_NOTIFY_BACKOFF_SECONDS,
        pool_size=4,
    )
    app.extensions[CONTEXT_KEY] = ServiceContext(
        settings=settings, session_factory=make_session_factory(engine), orders=orders
    )
    app.extensions["customers_service.engine"] = engine
    for blueprint in (customers.blp, users.blp, internal.blp):
        api.register_blueprint(blueprint)
    return app
