"""Settings of orders-service, read from the environment once at startup.

Every variable this service reads is read here. Secrets (the JWT key rings) have no default:
the process refuses to start without them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.auth import KeyRing, ServicePublicKeys, ServiceSigningKeys
from servicekit.config import ConfigError, app_env, env_float, env_int, env_secret, env_str
from servicekit.config import database_url as servicekit_database_url
from servicekit.db import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_POOL_TIMEOUT_SECONDS

SERVICE_NAME = "orders-service"
CUSTOMERS_SERVICE_NAME = "customers-service"
BFF_CALLER, PAYMENTS_CALLER, SWEEPER_CALLER = "orchestrator", "payments", "sweeper"
# Service identities whose tokens this service verifies at all (any other issuer is a 401).
# Least privilege per route (`requires(callers=...)`, docs/auth.md): the public routes and the
# stored answers take the BFF's only, payment claims and outcomes the payments Lambda's, the
# maintenance routes the sweeper's, and a deletion report customers-service's.
CALLERS = (BFF_CALLER, PAYMENTS_CALLER, SWEEPER_CALLER, CUSTOMERS_SERVICE_NAME)

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
    # This service's own identity (its private keys) and every caller's public keys.
    service_jwt_private_keys: ServiceSigningKeys
    service_jwt_public_keys: ServicePublicKeys
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
        private_keys = ServiceSigningKeys.parse(
            env_secret("SERVICE_JWT_PRIVATE_KEYS", environ=environ), name="SERVICE_JWT_PRIVATE_KEYS"
        )
        public_keys = ServicePublicKeys.parse(
            env_secret("SERVICE_JWT_PUBLIC_KEYS", environ=environ), name="SERVICE_JWT_PUBLIC_KEYS"
        )
        private_keys.check_published(public_keys, SERVICE_NAME)
        log_level = (env_str("LOG_LEVEL", "INFO", environ=environ) or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
        return cls(
            app_env=app_env(environ),
            database_url=database_url(environ),
            user_jwt_keys=user_keys,
            service_jwt_private_keys=private_keys,
            service_jwt_public_keys=public_keys,
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
