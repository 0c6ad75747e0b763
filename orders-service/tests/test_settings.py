"""Settings come from the environment; secrets have no defaults."""

from __future__ import annotations

import pytest

from orders_service.config import REPO_ROOT, Settings, database_url
from servicekit.config import ConfigError
from servicekit.testing import ServiceKeySet, random_key_ring_value

SERVICE_KEYS = ServiceKeySet.generate()
KEYS = {"USER_JWT_KEYS": random_key_ring_value("u1"), **SERVICE_KEYS.env_for("orders-service")}


def test_defaults():
    settings = Settings.from_env(KEYS)
    assert settings.database_url == f"sqlite:///{REPO_ROOT / 'var' / 'orders.db'}"
    assert (REPO_ROOT / "orders-service" / "orders_service").is_dir()
    assert settings.customers_api_url == "http://127.0.0.1:3001"
    assert settings.customer_cache_ttl_seconds == 5
    assert settings.cancel_window_seconds == 600
    assert settings.reservation_ttl_seconds == 900
    assert settings.payment_grace_seconds == 120
    assert settings.idempotency_ttl_seconds == 86400
    assert settings.log_level == "INFO" and settings.app_env == "development"
    assert KEYS["USER_JWT_KEYS"].split(":", 1)[1] not in repr(settings)
    assert KEYS["SERVICE_JWT_PRIVATE_KEYS"].split(":", 1)[1] not in repr(settings)
    assert settings.service_jwt_private_keys.signing_kid.startswith("orders-service-")


@pytest.mark.parametrize("missing", ["USER_JWT_KEYS", "SERVICE_JWT_PRIVATE_KEYS", "SERVICE_JWT_PUBLIC_KEYS"])
def test_secrets_are_required(missing):
    env = {k: v for k, v in KEYS.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "override",
    [
        {"CANCEL_WINDOW_SECONDS": "soon"},
        {"CUSTOMER_CACHE_TTL_SECONDS": "-1"},
        {"LOG_LEVEL": "LOUD"},
        {"APP_ENV": "staging"},
        {"SERVICE_JWT_PRIVATE_KEYS": SERVICE_KEYS.private["payments"]},  # another service's identity
        {"SERVICE_JWT_PRIVATE_KEYS": KEYS["USER_JWT_KEYS"]},  # not an Ed25519 key
        {"SERVICE_JWT_PUBLIC_KEYS": SERVICE_KEYS.private["orders-service"]},  # a private key where public ones go
        {"USER_JWT_KEYS": "k1:short"},
    ],
)
def test_bad_values_refuse_to_start(override):
    with pytest.raises(ConfigError):
        Settings.from_env({**KEYS, **override})


def test_production_needs_a_database():
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env({**KEYS, "APP_ENV": "production"})
    assert database_url({"DB_HOST": "db", "DB_NAME": "orders_db", "DB_USER": "orders", "DB_PASSWORD": "p@ss"}) == (
        "mysql+pymysql://orders:p%40ss@db:3306/orders_db?charset=utf8mb4"
    )
