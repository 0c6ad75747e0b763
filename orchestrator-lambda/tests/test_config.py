"""Settings: defaults, aliases, validation, and key rings from the env or Secrets Manager / SSM."""

from __future__ import annotations

import boto3
import orjson
import pytest
from moto import mock_aws

from orchestrator.config import fetch_secret, load_settings
from servicekit.config import ConfigError
from servicekit.testing import ServiceKeySet, random_key_ring_value


def test_defaults():
    settings = load_settings({})
    assert settings.customers_api_url == "http://127.0.0.1:3001"
    assert settings.orders_api_url == "http://127.0.0.1:3002"
    assert settings.aws_region == "us-east-1"
    assert settings.payment_gateway_url == "http://127.0.0.1:3003"
    assert (settings.payment_gateway_timeout_seconds, settings.payment_gateway_retries) == (5.0, 2)
    assert settings.payment_grace_seconds == 120
    assert (settings.downstream_connect_timeout_seconds, settings.downstream_timeout_seconds) == (1.0, 5.0)
    assert (settings.downstream_retries, settings.sqs_send_max_retries) == (2, 3)
    assert settings.payments_queue_url is None
    with pytest.raises(ConfigError, match="PAYMENTS_QUEUE_URL"):
        settings.require_queue_url()


def test_queue_url_aliases():
    settings = load_settings({"SQS_QUEUE_URL": "q", "SQS_DLQ_URL": "d"})
    assert (settings.require_queue_url(), settings.require_dlq_url()) == ("q", "d")
    assert load_settings({"SQS_QUEUE_URL": "q", "PAYMENTS_QUEUE_URL": "p"}).payments_queue_url == "p"


@pytest.mark.parametrize(
    "environ",
    [
        {"PAYMENT_GATEWAY_URL": "ftp://gateway"},
        {"PAYMENT_GATEWAY_TIMEOUT_SECONDS": "0"},
        {"PAYMENT_GATEWAY_RETRIES": "-1"},
        {"DOWNSTREAM_RETRIES": "many"},
        {"PAYMENT_GRACE_SECONDS": "-1"},
    ],
)
def test_bad_values_refuse_to_start(environ):
    with pytest.raises(ConfigError):
        load_settings(environ)


def test_secrets_have_no_default():
    with pytest.raises(ConfigError, match="USER_JWT_KEYS"):
        load_settings({}).user_jwt_keys.key_ring()
    with pytest.raises(ConfigError, match="PAYMENT_GATEWAY_API_KEY"):
        load_settings({}).payment_gateway_api_key.resolve()


def test_plain_env_wins_over_the_secret_id():
    keys = ServiceKeySet.generate(("payments",))
    settings = load_settings(
        {"SERVICE_JWT_PRIVATE_KEYS": keys.private["payments"], "SERVICE_JWT_PRIVATE_KEYS_SECRET_ID": "arn:whatever"}
    )
    fetched = []
    assert settings.service_jwt_private_keys.signing_keys(fetched.append).signing_kid.startswith("payments-")
    assert fetched == []


def test_the_origin_secret_is_optional_and_takes_current_and_previous():
    assert not load_settings({}).origin_verify_secret.configured
    plain = load_settings({"ORIGIN_VERIFY_SECRET": "x" * 40}).origin_verify_secret
    assert plain.configured and plain.origin_values() == {"x" * 40}
    rotating = orjson.dumps({"current": "n" * 40, "previous": "o" * 40}).decode()
    assert load_settings({"ORIGIN_VERIFY_SECRET": rotating}).origin_verify_secret.origin_values() == {
        "n" * 40,
        "o" * 40,
    }
    with pytest.raises(ConfigError, match="at least 32"):
        load_settings({"ORIGIN_VERIFY_SECRET": "short"}).origin_verify_secret.origin_values()


@pytest.fixture
def aws(monkeypatch):
    from aws_lambda_powertools.utilities import parameters

    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()
        yield
        parameters.clear_caches()
        parameters.base.DEFAULT_PROVIDERS.clear()


def test_keys_come_from_secrets_manager_and_ssm(aws):
    user_ring = random_key_ring_value("sm")
    private = ServiceKeySet.generate(("sweeper",)).private["sweeper"]
    arn = boto3.client("secretsmanager").create_secret(Name="b2b/user-jwt-keys", SecretString=user_ring)["ARN"]
    boto3.client("ssm").put_parameter(Name="/b2b/sweeper-jwt-key", Value=private, Type="SecureString")
    settings = load_settings(
        {"USER_JWT_KEYS_SECRET_ID": arn, "SERVICE_JWT_PRIVATE_KEYS_SECRET_ID": "/b2b/sweeper-jwt-key"}
    )
    assert settings.user_jwt_keys.key_ring().signing_kid == "sm"
    assert settings.service_jwt_private_keys.signing_keys().signing_kid == private.split(":")[0]
    assert fetch_secret("b2b/user-jwt-keys") == user_ring


def test_the_payment_gateway_key_comes_from_secrets_manager(aws):
    arn = boto3.client("secretsmanager").create_secret(
        Name="b2b/payment-gateway-api-key", SecretString="sk_live_from_secrets_manager\n"
    )["ARN"]
    settings = load_settings({"PAYMENT_GATEWAY_API_KEY_SECRET_ID": arn, "PAYMENT_GATEWAY_URL": "https://pay.example/"})
    assert settings.payment_gateway_api_key.resolve() == "sk_live_from_secrets_manager"
    assert settings.payment_gateway_url == "https://pay.example"
