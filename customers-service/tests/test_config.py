import pytest

from customers_service.config import Settings
from servicekit.config import ConfigError
from servicekit.testing import ServiceKeySet, random_key_ring_value

KEYS = ServiceKeySet.generate()


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "USER_JWT_KEYS",
        "SERVICE_JWT_PRIVATE_KEYS",
        "SERVICE_JWT_PUBLIC_KEYS",
        "DATABASE_URL",
        "DB_HOST",
        "APP_ENV",
        "ORDERS_API_URL",
        "JWT_EXPIRES_IN_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def keyed_env(clean_env):
    clean_env.setenv("USER_JWT_KEYS", random_key_ring_value())
    for name, value in KEYS.env_for("customers-service").items():
        clean_env.setenv(name, value)
    return clean_env


def test_refuses_to_start_without_secrets(clean_env):
    with pytest.raises(ConfigError, match="SERVICE_JWT_PRIVATE_KEYS"):
        Settings.from_env()
    clean_env.setenv("SERVICE_JWT_PRIVATE_KEYS", KEYS.private["customers-service"])
    with pytest.raises(ConfigError, match="SERVICE_JWT_PUBLIC_KEYS"):
        Settings.from_env()
    clean_env.setenv("SERVICE_JWT_PUBLIC_KEYS", KEYS.public)
    with pytest.raises(ConfigError, match="USER_JWT_KEYS"):
        Settings.from_env()


def test_refuses_another_services_key_or_an_unpublished_one(keyed_env):
    assert Settings.from_env().service_jwt_private_keys.signing_kid.startswith("customers-service-")
    keyed_env.setenv("SERVICE_JWT_PRIVATE_KEYS", KEYS.private["orders-service"])
    with pytest.raises(ConfigError, match="not published for 'customers-service'"):
        Settings.from_env()
    keyed_env.setenv(
        "SERVICE_JWT_PRIVATE_KEYS", ServiceKeySet.generate(("customers-service",)).private["customers-service"]
    )
    with pytest.raises(ConfigError, match="not published"):
        Settings.from_env()


def test_user_tokens_live_an_hour_at_most(keyed_env):
    assert Settings.from_env().user_token_ttl_seconds == 3600
    keyed_env.setenv("JWT_EXPIRES_IN_SECONDS", "86400")
    with pytest.raises(ConfigError, match="JWT_EXPIRES_IN_SECONDS must be <= 3600"):
        Settings.from_env()


def test_production_needs_an_explicit_database(keyed_env):
    assert Settings.from_env().database_url.startswith("sqlite:///")
    keyed_env.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Settings.from_env()
    keyed_env.setenv("DB_HOST", "db.internal")
    keyed_env.setenv("DB_NAME", "customers_db")
    keyed_env.setenv("DB_PASSWORD", "p@ss word")
    assert Settings.from_env().database_url == (
        "mysql+pymysql://root:p%40ss+word@db.internal:3306/customers_db?charset=utf8mb4"
    )


def test_weak_key_is_refused(keyed_env):
    keyed_env.setenv("USER_JWT_KEYS", "k1:short")
    with pytest.raises(ConfigError, match="shorter"):
        Settings.from_env()


def test_settings_never_print_secrets(keyed_env):
    text = repr(Settings.from_env())
    assert KEYS.private["customers-service"].split(":")[1] not in text
    assert "USER_JWT_KEYS" not in text and "keys={" not in text


def test_orders_api_url_defaults_to_the_local_orders_service(keyed_env):
    assert Settings.from_env().orders_api_url == "http://127.0.0.1:3002"
    keyed_env.setenv("ORDERS_API_URL", "http://orders-service:3002")
    assert Settings.from_env().orders_api_url == "http://orders-service:3002"
