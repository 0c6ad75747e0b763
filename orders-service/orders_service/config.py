"""Settings of orders-service, read from the environment once at startup.

Every variable this service reads is read here. Secrets (the JWT key rings) have no default:
the process refuses to start without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.auth import KeyRing
from servicekit.config import ConfigError, app_env, env_float, env_int, env_secret, env_str
from servicekit.config import database_url as servicekit_database_url
from servicekit.db import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_POOL_TIMEOUT_SECONDS

SERVICE_NAME = "orders-service"
CUSTOMERS_SERVICE_NAME = "customers-service"
BFF_CALLER, PAYMENTS_CALLER, SWEEPER_CALLER = "orchestrator", "payments", "sweeper"
# Services whose tokens this service accepts. Least privilege per route: product writes take
# only the BFF's, a payment outcome only the payments Lambda's, the maintenance routes only the
# sweeper's (`requires(callers=...)`); the other public routes take any of these.
TRUSTED_CALLERS = (BFF_CALLER, PAYMENTS_CALLER, SWEEPER_CALLER)
# Services whose tokens are accepted only by the routes that name them (`requires(callers=...)`):
# customers-service may report a deleted customer and do nothing else here.
ROUTE_CALLERS = (CUSTOMERS_SERVICE_NAME,)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = f"sqlite:///{REPO_ROOT / 'var' / 'orders.db'}"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL (or DB_* parts), else the SQLite file under the repository's var/ directory.

    Used by Settings and by the Alembic environment, which must not need the JWT secrets.
    """
    return servicekit_database_url(DEFAULT_DATABASE_URL, environ)


def ensure_sqlite_directory(url: str) -> None:
    """SQLite cannot create the directory its file lives in; make it for the local default."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != prefix + ":memory:":
        Path(url[len(prefix) :].split("?", 1)[0]).parent.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str = field(repr=False)  # may carry a password
    user_jwt_keys: KeyRing = field(repr=False)
    service_jwt_keys: KeyRing = field(repr=False)
    customers_api_url: str
    customer_cache_ttl_seconds: int
    cancel_window_seconds: int
    reservation_ttl_seconds: int
    payment_grace_seconds: int
    payment_processing_grace_seconds: int
    idempotency_ttl_seconds: int
    db_pool_size: int
    db_max_overflow: int
    db_lock_wait_timeout_seconds: int
    db_pool_timeout_seconds: float  # wait for a pooled connection, then 503 (docs/database-outages.md)
    db_connect_timeout_seconds: float  # wait for a new connection, then 503
    downstream_connect_timeout_seconds: float
    downstream_timeout_seconds: float
    downstream_retries: int
    service_token_ttl_seconds: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        user_keys = KeyRing.parse(env_secret("USER_JWT_KEYS", environ=environ), name="USER_JWT_KEYS")
        service_keys = KeyRing.parse(env_secret("SERVICE_JWT_KEYS", environ=environ), name="SERVICE_JWT_KEYS")
        if set(user_keys.keys.values()) & set(service_keys.keys.values()):
            raise ConfigError("USER_JWT_KEYS and SERVICE_JWT_KEYS must not share a secret")
        log_level = (env_str("LOG_LEVEL", "INFO", environ=environ) or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            app_env=app_env(environ),
            database_url=database_url(environ),
            user_jwt_keys=user_keys,
            service_jwt_keys=service_keys,
            customers_api_url=env_str("CUSTOMERS_API_URL", "http://127.0.0.1:3001", environ=environ) or "",
            customer_cache_ttl_seconds=env_int(
                "CUSTOMER_CACHE_TTL_SECONDS", 5, minimum=0, maximum=3600, environ=environ
            ),
            cancel_window_seconds=env_int("CANCEL_WINDOW_SECONDS", 600, minimum=0, environ=environ),
            reservation_ttl_seconds=env_int("RESERVATION_TTL_SECONDS", 900, minimum=1, environ=environ),
            payment_grace_seconds=env_int("PAYMENT_GRACE_SECONDS", 120, minimum=0, environ=environ),
            # Longer than a payment message's visibility timeout, so an attempt still being
            # retried by SQS is not re-published on top of it (docs/payments.md).
            payment_processing_grace_seconds=env_int(
                "PAYMENT_PROCESSING_GRACE_SECONDS", 300, minimum=0, environ=environ
            ),
            idempotency_ttl_seconds=env_int("IDEMPOTENCY_TTL_SECONDS", 86400, minimum=1, environ=environ),
            db_pool_size=env_int("DB_POOL_SIZE", 10, minimum=1, maximum=200, environ=environ),
            db_max_overflow=env_int("DB_MAX_OVERFLOW", 10, minimum=0, maximum=200, environ=environ),
            db_lock_wait_timeout_seconds=env_int(
                "DB_LOCK_WAIT_TIMEOUT_SECONDS", 10, minimum=1, maximum=300, environ=environ
            ),
            db_pool_timeout_seconds=env_float(
                "DB_POOL_TIMEOUT_SECONDS", DEFAULT_POOL_TIMEOUT_SECONDS, minimum=0.1, maximum=60, environ=environ
            ),
            db_connect_timeout_seconds=env_float(
                "DB_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS, minimum=0.1, maximum=60, environ=environ
            ),
            downstream_connect_timeout_seconds=env_float(
                "DOWNSTREAM_CONNECT_TIMEOUT_SECONDS", 1.0, minimum=0.05, maximum=60, environ=environ
            ),
            downstream_timeout_seconds=env_float(
                "DOWNSTREAM_TIMEOUT_SECONDS", 3.0, minimum=0.05, maximum=120, environ=environ
            ),
            downstream_retries=env_int("DOWNSTREAM_RETRIES", 2, minimum=0, maximum=5, environ=environ),
            service_token_ttl_seconds=env_int(
                "SERVICE_TOKEN_TTL_SECONDS", 300, minimum=30, maximum=3600, environ=environ
            ),
            log_level=log_level,
        )
