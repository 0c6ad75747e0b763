"""Settings: defaults, aliases, validation, and key rings from the env or Secrets Manager / SSM."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from orchestrator.config import fetch_secret, load_settings
from servicekit.config import ConfigError
from servicekit.testing import random_key_ring_value


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
    ring = random_key_ring_value("env")
    settings = load_settings({"SERVICE_JWT_KEYS": ring, "SERVICE_JWT_KEYS_SECRET_ID": "arn:whatever"})
    fetched = []
    assert settings.service_jwt_keys.key_ring(fetched.append).signing_kid == "env"
    assert fetched == []


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


def test_rings_come_from_secrets_manager_and_ssm(aws):
    user_ring, service_ring = random_key_ring_value("sm"), random_key_ring_value("ssm")
    arn = boto3.client("secretsmanager").create_secret(Name="b2b/user-jwt-keys", SecretString=user_ring)["ARN"]
    boto3.client("ssm").put_parameter(Name="/b2b/service-jwt-keys", Value=service_ring, Type="SecureString")
    settings = load_settings({"USER_JWT_KEYS_SECRET_ID": arn, "SERVICE_JWT_KEYS_SECRET_ID": "/b2b/service-jwt-keys"})
    assert settings.user_jwt_keys.key_ring().signing_kid == "sm"
    assert settings.service_jwt_keys.key_ring().signing_kid == "ssm"
    assert fetch_secret("b2b/user-jwt-keys") == user_ring


def test_the_payment_gateway_key_comes_from_secrets_manager(aws):
    arn = boto3.client("secretsmanager").create_secret(
        Name="b2b/payment-gateway-api-key", SecretString="sk_live_from_secrets_manager\n"
    )["ARN"]
    settings = load_settings({"PAYMENT_GATEWAY_API_KEY_SECRET_ID": arn, "PAYMENT_GATEWAY_URL": "https://pay.example/"})
    assert settings.payment_gateway_api_key.resolve() == "sk_live_from_secrets_manager"
    assert settings.payment_gateway_url == "https://pay.example"
