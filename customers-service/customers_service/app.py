"""Application factory of customers-service."""

from __future__ import annotations

from flask import Flask

from servicekit.auth import TokenVerifier
from servicekit.db import make_engine, make_session_factory, ping
from servicekit.logging import configure_logging
from servicekit.web import create_service_app

from . import SERVICE_NAME
from .api import customers, internal, users
from .config import TRUSTED_CALLERS, Settings
from .runtime import EXTENSION_KEY, Runtime


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    configure_logging(SERVICE_NAME, settings.log_level)
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size)
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
    app.extensions[EXTENSION_KEY] = Runtime(
        settings=settings, engine=engine, session_factory=make_session_factory(engine)
    )
    for blueprint in (customers.blp, users.blp, internal.blp):
        api.register_blueprint(blueprint)
    return app
