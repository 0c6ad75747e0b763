import pytest

from customers_service.config import Settings
from servicekit.config import ConfigError
from servicekit.testing import random_key_ring_value


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("USER_JWT_KEYS", "SERVICE_JWT_KEYS", "DATABASE_URL", "DB_HOST", "APP_ENV", "ORDERS_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_refuses_to_start_without_secrets(clean_env):
    with pytest.raises(ConfigError, match="USER_JWT_KEYS"):
        Settings.from_env()
    clean_env.setenv("USER_JWT_KEYS", random_key_ring_value())
    with pytest.raises(ConfigError, match="SERVICE_JWT_KEYS"):
        Settings.from_env()


def test_production_needs_an_explicit_database(clean_env):
    clean_env.setenv("USER_JWT_KEYS", random_key_ring_value())
    clean_env.setenv("SERVICE_JWT_KEYS", random_key_ring_value())
    assert Settings.from_env().database_url.startswith("sqlite:///")
    clean_env.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env()
    clean_env.setenv("DB_HOST", "db.internal")
    clean_env.setenv("DB_NAME", "customers_db")
    clean_env.setenv("DB_PASSWORD", "p@ss word")
    assert Settings.from_env().database_url == (
        "mysql+pymysql://root:p%40ss+word@db.internal:3306/customers_db?charset=utf8mb4"
    )


def test_weak_key_is_refused(clean_env):
    clean_env.setenv("USER_JWT_KEYS", "k1:short")
    clean_env.setenv("SERVICE_JWT_KEYS", random_key_ring_value())
    with pytest.raises(ConfigError, match="shorter"):
        Settings.from_env()


def test_orders_api_url_defaults_to_the_local_orders_service(clean_env):
    clean_env.setenv("USER_JWT_KEYS", random_key_ring_value())
    clean_env.setenv("SERVICE_JWT_KEYS", random_key_ring_value())
    assert Settings.from_env().orders_api_url == "http://127.0.0.1:3002"
    clean_env.setenv("ORDERS_API_URL", "http://orders-service:3002")
    assert Settings.from_env().orders_api_url == "http://orders-service:3002"
