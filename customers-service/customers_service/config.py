"""Settings of customers-service, read once from the environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from servicekit.auth import KeyRing
from servicekit.config import app_env, database_url, env_int, env_secret, env_str

_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SQLITE_URL = f"sqlite:///{_REPO_ROOT / 'var' / 'customers.db'}"

# Services allowed to call this one with a service token (`sub` of the token).
TRUSTED_CALLERS = frozenset({"orchestrator", "orders-service"})


@dataclass(frozen=True)
class Settings:
    app_env: str
    database_url: str
    db_pool_size: int
    user_jwt_keys: KeyRing
    service_jwt_keys: KeyRing
    user_token_ttl_seconds: int
    log_level: str

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
        )
