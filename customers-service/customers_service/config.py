"""Settings of customers-service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from servicekit.auth import MAX_USER_TOKEN_TTL_SECONDS, KeyRing, ServicePublicKeys, ServiceSigningKeys
from servicekit.config import app_env, database_url, env_float, env_int, env_secret, env_str
from servicekit.db import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_POOL_TIMEOUT_SECONDS

from . import SERVICE_NAME

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_URL = f"sqlite:///{_REPO_ROOT / 'var' / 'customers.db'}"

# Service identities whose tokens this service verifies at all (any other issuer is a 401). Each
# route names which of them it takes (`requires(callers=...)`, docs/auth.md): the BFF relays its
# admins' customer reads and writes and its users' logins; orders-service only looks customers up.
BFF_CALLER = "orchestrator"
ORDERS_SERVICE_NAME = "orders-service"
CALLERS = frozenset({BFF_CALLER, ORDERS_SERVICE_NAME})

# The deletion report to orders-service (services/customers.py): it matters only while orders-service
# may still hold the customer in its lookup cache (CUSTOMER_CACHE_TTL_SECONDS, default 5), so every
# attempt must land inside that window. Worst case, 3 attempts x (0.25 s connect + 1 s read) +
# 0.2 s + 0.4 s backoff = 4.35 s; a refused connection or a 502/503/504 fails far sooner.
ORDERS_NOTIFY_CONNECT_TIMEOUT_SECONDS = 0.25
ORDERS_NOTIFY_TIMEOUT_SECONDS = 1.0
ORDERS_NOTIFY_RETRIES = 2
ORDERS_NOTIFY_BACKOFF_SECONDS = 0.2


@dataclass(frozen=True)
class LoginThrottleSettings:
    """Failed logins allowed per username and per client address within `window_seconds`, then
    429 for `base_backoff_seconds`, doubling with each further failure (services/throttle.py)."""

    max_failures_per_username: int = 5
    max_failures_per_address: int = 20
    window_seconds: int = 900
    base_backoff_seconds: int = 30

    @classmethod
    def from_env(cls) -> LoginThrottleSettings:
        return cls(
            max_failures_per_username=env_int("LOGIN_MAX_FAILURES_PER_USERNAME", 5, minimum=1, maximum=1000),
            max_failures_per_address=env_int("LOGIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1, maximum=100000),
            window_seconds=env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900, minimum=10, maximum=86400),
            base_backoff_seconds=env_int("LOGIN_BACKOFF_SECONDS", 30, minimum=1, maximum=3600),
        )


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str = field(repr=False)  # may carry a password
    db_pool_size: int
    user_jwt_keys: KeyRing = field(repr=False)
    # This service's own identity (its private keys) and every caller's public keys.
    service_jwt_private_keys: ServiceSigningKeys
    service_jwt_public_keys: ServicePublicKeys
    user_token_ttl_seconds: int
    log_level: str
    orders_api_url: str
    # How long a request waits for a pooled / a new database connection before its 503
    # (docs/database-outages.md).
    db_pool_timeout_seconds: float = DEFAULT_POOL_TIMEOUT_SECONDS
    db_connect_timeout_seconds: float = DEFAULT_CONNECT_TIMEOUT_SECONDS
    db_lock_wait_timeout_seconds: int = 10
    login_throttle: LoginThrottleSettings = field(default_factory=LoginThrottleSettings)

    @classmethod
    def from_env(cls) -> Settings:
        private_keys = ServiceSigningKeys.parse(env_secret("SERVICE_JWT_PRIVATE_KEYS"), name="SERVICE_JWT_PRIVATE_KEYS")
        public_keys = ServicePublicKeys.parse(env_secret("SERVICE_JWT_PUBLIC_KEYS"), name="SERVICE_JWT_PUBLIC_KEYS")
        private_keys.check_published(public_keys, SERVICE_NAME)
        return cls(
            app_env=app_env(),
            database_url=database_url(DEFAULT_SQLITE_URL),
            db_pool_size=env_int("DB_POOL_SIZE", 10, minimum=1, maximum=200),
            user_jwt_keys=KeyRing.parse(env_secret("USER_JWT_KEYS"), name="USER_JWT_KEYS"),
            service_jwt_private_keys=private_keys,
            service_jwt_public_keys=public_keys,
            user_token_ttl_seconds=env_int(
                "JWT_EXPIRES_IN_SECONDS", 3600, minimum=60, maximum=MAX_USER_TOKEN_TTL_SECONDS
            ),
            log_level=env_str("LOG_LEVEL", "INFO") or "INFO",
            orders_api_url=env_str("ORDERS_API_URL", "http://127.0.0.1:3002") or "",
            db_pool_timeout_seconds=env_float(
                "DB_POOL_TIMEOUT_SECONDS", DEFAULT_POOL_TIMEOUT_SECONDS, minimum=0.1, maximum=60
            ),
            db_connect_timeout_seconds=env_float(
                "DB_CONNECT_TIMEOUT_SECONDS", DEFAULT_CONNECT_TIMEOUT_SECONDS, minimum=0.1, maximum=60
            ),
            db_lock_wait_timeout_seconds=env_int("DB_LOCK_WAIT_TIMEOUT_SECONDS", 10, minimum=1, maximum=300),
            login_throttle=LoginThrottleSettings.from_env(),
        )
