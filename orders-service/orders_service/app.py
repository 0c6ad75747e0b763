"""The Flask application: servicekit's base plus this service's blueprints and dependencies."""

from __future__ import annotations

from flask import Flask

from servicekit.auth import ServiceTokenMinter, TokenVerifier
from servicekit.db import make_engine, ping
from servicekit.http_client import ServiceClient
from servicekit.logging import configure_logging
from servicekit.replay import ReplayMiddleware
from servicekit.web import create_service_app

from .api import carts, internal, orders, products
from .api.common import CONTEXT_KEY
from .api.replays import REPLAY_ROUTES
from .config import CALLERS, CUSTOMERS_SERVICE_NAME, SERVICE_NAME, Settings, ensure_sqlite_directory
from .services.context import ServiceContext
from .services.customers import CustomerDirectory, customer_gone

API_VERSION = "1.0.0"
DESCRIPTION = """Products, carts, orders with stock reservations, and payment outcomes.

Errors are RFC 9457 problems (`application/problem+json`) with a stable `code`.
`POST /orders` and `POST /orders/{order_id}/confirm` take an `Idempotency-Key`.
"""


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(SERVICE_NAME, settings.log_level)

    ensure_sqlite_directory(settings.database_url)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        lock_wait_timeout_seconds=settings.db_lock_wait_timeout_seconds,
        pool_timeout_seconds=settings.db_pool_timeout_seconds,
        connect_timeout_seconds=settings.db_connect_timeout_seconds,
    )
    minter = ServiceTokenMinter(
        settings.service_jwt_private_keys,
        SERVICE_NAME,
        ttl_seconds=settings.service_token_ttl_seconds,
        refresh_margin_seconds=min(60, settings.service_token_ttl_seconds // 4),
    )
    customers_client = ServiceClient(
        settings.customers_api_url,
        audience=CUSTOMERS_SERVICE_NAME,
        minter=minter,
        connect_timeout=settings.downstream_connect_timeout_seconds,
        read_timeout=settings.downstream_timeout_seconds,
        retries=settings.downstream_retries,
    )
    context = ServiceContext(
        settings=settings,
        connect=engine.connect,
        customers=CustomerDirectory(customers_client, cache_ttl_seconds=settings.customer_cache_ttl_seconds),
    )
    verifier = TokenVerifier(
        service_name=SERVICE_NAME,
        user_ring=settings.user_jwt_keys,
        service_keys=settings.service_jwt_public_keys,
        callers=CALLERS,
        # A deleted customer's user tokens are refused from the moment its tombstone is here.
        customer_gone=lambda customer_id: customer_gone(context.connect, customer_id),
    )
    app, api = create_service_app(
        SERVICE_NAME,
        title=SERVICE_NAME,
        version=API_VERSION,
        description=DESCRIPTION,
        verifier=verifier,
        readiness_check=lambda: ping(engine),
    )
    app.extensions[CONTEXT_KEY] = context
    app.extensions["orders_service.engine"] = engine
    for module in (products, carts, orders, internal):
        api.register_blueprint(module.blp)
    # Retries of keyed writes this process already replayed are answered before Flask routes them.
    app.wsgi_app = ReplayMiddleware(app.wsgi_app, verifier=verifier, replays=context.replays, routes=REPLAY_ROUTES)
    return app
