"""Settings of customers-service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servicekit.auth import KeyRing
from servicekit.config import app_env, database_url, env_float, env_int, env_secret, env_str
from servicekit.db import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_POOL_TIMEOUT_SECONDS

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_URL = f"sqlite:///{_REPO_ROOT / 'var' / 'customers.db'}"

# Services allowed to call this one with a service token (`sub` of the token).
TRUSTED_CALLERS = frozenset({"orchestrator", "orders-service"})

ORDERS_SERVICE_NAME = "orders-service"
# The deletion report to orders-service (services/customers.py): it matters only while orders-service
# may still hold the customer in its lookup cache (CUSTOMER_CACHE_TTL_SECONDS, default 5), so every
# attempt must land inside that window. Worst case, 3 attempts x (0.25 s connect + 1 s read) +
# 0.2 s + 0.4 s backoff = 4.35 s; a refused connection or a 502/503/504 fails far sooner.
ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS = 0.25
ORDERS_NOTIFY_TIMEOUT_SECONDS = 1.0
ORDERS_NOTIFY_RETRIES = 2
ORDERS_NOTIFY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str
    db_pool_size: int
    user_jwt_keys: KeyRing
    service_jwt_keys: KeyRing
    user_token_ttl_seconds: int
    log_level: str
    orders_api_url: str
    # How long a request waits for a pooled / a new database connection before its 503
    # (docs/database-outages.md).
    db_pool_timeout_seconds: float = DEFAULT_POOL_TIMEOUT_SECONDS
    db_connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            app_env=app_env(),
            database_url=database_url(DEFAULT_SQLITE_URL),
            db_pool_size=env_int("DB_POOL_SIZE", 10, minimum=1, maximum=200),
            user_jwt_keys=KeyRing.parse(env_secret("USER_JWT_KEYS"), name="USER_JWT_KEYS"),
            service_jwt_keys=KeyRing.parse(env_secret("SERVICE_JWT_KEYS"), name="SERVICE_JWT_KEYS"),
            user_token_ttl_seconds=env_int("JWT_EXPIRES_IN_SECONDS", 3600, minimum=60, maximum=86400),
            log_level=env_str("LOG_LEVEL", "INFO") or "INFO",
            orders_api_url=env_str("ORDERS_API_URL", "http://127.0.0.1:3002") or "",
            db_pool_timeout_seconds=env_float(
                "DB_POOL_TIMEOUT_SECONDS", DEFAULT_POOL_TIMEOUT_SECONDS, minimum=0.1, maximum=60
            ),
            db_connect_timeout_seconds=env_float(
                "DB_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS, minimum=0.1, maximum=60
            ),
        )
