"""Application factory of customers-service."""

from __future__ import annotations

from flask import Flask

from servicekit.auth import ServiceTokenMinter, TokenVerifier
from servicekit.db import make_engine, make_session_factory, ping
from servicekit.http_client import ServiceClient
from servicekit.logging import configure_logging
from servicekit.web import create_service_app

from . import SERVICE_NAME
from .api import customers as customers_api
from .api import internal, users
from .api.common import CONTEXT_KEY
from .config import (
    CALLERS,
    ORDERS_NOTIFY_BACKOFF_SECONDS,
    ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS,
    ORDERS_NOTIFY_RETRIES,
    ORDERS_NOTIFY_TIMEOUT_SECONDS,
    ORDERS_SERVICE_NAME,
    Settings,
)
from .services import customers
from .services.context import ServiceContext


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(SERVICE_NAME, settings.log_level)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
        lock_wait_timeout_seconds=settings.db_lock_wait_timeout_seconds,
    )
    session_factory = make_session_factory(engine)
    verifier = TokenVerifier(
        service_name=SERVICE_NAME,
        user_ring=settings.user_jwt_keys,
        service_keys=settings.service_jwt_public_keys,
        callers=CALLERS,
        # A deleted customer's user tokens are refused from the moment of the delete (docs/auth.md).
        customer_gone=lambda customer_id: customers.customer_gone(engine.connect, customer_id),
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
        # Its own identity; each token reused until a minute before it expires.
        minter=ServiceTokenMinter(settings.service_jwt_private_keys, SERVICE_NAME),
        connect_timeout=ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS,
        read_timeout=ORDERS_NOTIFY_TIMEOUT_SECONDS,
        retries=ORDERS_NOTIFY_RETRIES,
        backoff_seconds=ORDERS_NOTIFY_BACKOFF_SECONDS,
        pool_size=4,
    )
    app.extensions[CONTEXT_KEY] = ServiceContext(
        settings=settings, session_factory=session_factory, connect=engine.connect, orders=orders
    )
    app.extensions["customers_service.engine"] = engine
    for blueprint in (customers_api.blp, users.blp, internal.blp):
        api.register_blueprint(blueprint)
    return app
