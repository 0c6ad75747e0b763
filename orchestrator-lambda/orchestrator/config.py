"""Every setting of the three Lambdas and their local runtime, read from the environment here only.

Secrets (the user-token ring, each function's own service identity key, the payment gateway's
API key, the CloudFront origin secret) are resolved lazily, by the function that needs them: the
payments Lambda never needs the user ring, so it must not fail for lack of it. In AWS a secret
comes from Secrets Manager or SSM (`*_SECRET_ID`); locally the plain variable wins.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

import orjson

from servicekit.auth import KeyRing, ServiceSigningKeys
from servicekit.config import ConfigError, env_float, env_int, env_str

METRICS_NAMESPACE = "B2BPlatform"


@dataclass(frozen=True)
class SecretSource:
    """Where one secret comes from: the plain env value, else a Secrets Manager / SSM id."""

    name: str
    value: str | None
    secret_id: str | None

    def resolve(self, fetch: Callable[[str], str] | None = None) -> str:
        if self.value:
            return self.value
        if self.secret_id:
            return (fetch or fetch_secret)(self.secret_id)
        raise ConfigError(f"{self.name} is required: set {self.name}, or {self.name}_SECRET_ID in AWS (no default)")

    def key_ring(self, fetch: Callable[[str], str] | None = None) -> KeyRing:
        return KeyRing.parse(self.resolve(fetch), name=self.name)

    def signing_keys(self, fetch: Callable[[str], str] | None = None) -> ServiceSigningKeys:
        return ServiceSigningKeys.parse(self.resolve(fetch), name=self.name)

    @property
    def configured(self) -> bool:
        return bool(self.value or self.secret_id)

    def origin_values(self, fetch: Callable[[str], str] | None = None) -> frozenset[str]:
        """The origin secret's accepted values: a plain value, or Secrets Manager's JSON
        `{"current": ..., "previous": ...}` (both accepted while CloudFront moves to the new one)."""
        raw = self.resolve(fetch)
        if raw.startswith("{"):
            try:
                document = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ConfigError(f"{self.name} is not valid JSON") from exc
            values = {document.get("current"), document.get("previous")} if isinstance(document, dict) else set()
        else:
            values = {raw}
        values = {v for v in values if isinstance(v, str) and len(v) >= 32}
        if not values:
            raise ConfigError(f"{self.name} holds no value of at least 32 characters")
        return frozenset(values)


def fetch_secret(secret_id: str) -> str:
    """An SSM SecureString when the id is a parameter path (`/b2b/...`), else a Secrets Manager secret.

    powertools caches the value for the life of the execution environment; a rotated ring is
    picked up by new environments, which the rotation procedure's deploy step creates.
    """
    from aws_lambda_powertools.utilities import parameters

    if secret_id.startswith("/"):
        value = parameters.get_parameter(secret_id, decrypt=True, max_age=3600)
    else:
        value = parameters.get_secret(secret_id, max_age=3600)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"secret {secret_id} is empty")
    return value.strip()


@dataclass(frozen=True)
class Settings:
    service_name: str
    log_level: str
    customers_api_url: str
    orders_api_url: str
    payments_queue_url: str | None
    payments_dlq_url: str | None
    aws_region: str
    user_jwt_keys: SecretSource
    # This function's own service identity (its private keys): each function has its own.
    service_jwt_private_keys: SecretSource
    # The header CloudFront adds to every request it forwards (template.yaml); unset locally.
    origin_verify_secret: SecretSource
    downstream_connect_timeout_seconds: float
    downstream_timeout_seconds: float
    downstream_retries: int
    sqs_send_max_retries: int
    idempotency_in_flight_max_wait_seconds: float
    payment_gateway_url: str
    payment_gateway_api_key: SecretSource
    payment_gateway_timeout_seconds: float
    payment_gateway_retries: int
    payment_grace_seconds: int
    payment_processing_grace_seconds: int
    sweeper_batch_limit: int
    lambda_time_margin_seconds: float
    sqs_connect_timeout_seconds: float
    sqs_timeout_seconds: float

    def require_queue_url(self) -> str:
        if not self.payments_queue_url:
            raise ConfigError("PAYMENTS_QUEUE_URL (or SQS_QUEUE_URL) is required")
        return self.payments_queue_url

    def require_dlq_url(self) -> str:
        if not self.payments_dlq_url:
            raise ConfigError("PAYMENTS_DLQ_URL (or SQS_DLQ_URL) is required")
        return self.payments_dlq_url


def _first(names: tuple[str, ...], environ: Mapping[str, str] | None) -> str | None:
    for name in names:
        value = env_str(name, environ=environ)
        if value:
            return value
    return None


def _secret(name: str, environ: Mapping[str, str] | None) -> SecretSource:
    return SecretSource(name, env_str(name, environ=environ), env_str(f"{name}_SECRET_ID", environ=environ))


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    gateway_url = (env_str("PAYMENT_GATEWAY_URL", "http://127.0.0.1:3003", environ=environ) or "").rstrip("/")
    if not gateway_url.startswith(("http://", "https://")):
        raise ConfigError(f"PAYMENT_GATEWAY_URL must be an http(s) URL, got {gateway_url!r}")
    return Settings(
        service_name=env_str("POWERTOOLS_SERVICE_NAME", "orchestrator", environ=environ) or "orchestrator",
        log_level=(env_str("LOG_LEVEL", "INFO", environ=environ) or "INFO").upper(),
        customers_api_url=env_str("CUSTOMERS_API_URL", "http://127.0.0.1:3001", environ=environ) or "",
        orders_api_url=env_str("ORDERS_API_URL", "http://127.0.0.1:3002", environ=environ) or "",
        payments_queue_url=_first(("PAYMENTS_QUEUE_URL", "SQS_QUEUE_URL"), environ),
        payments_dlq_url=_first(("PAYMENTS_DLQ_URL", "SQS_DLQ_URL"), environ),
        aws_region=env_str("AWS_REGION", "us-east-1", environ=environ) or "us-east-1",
        user_jwt_keys=_secret("USER_JWT_KEYS", environ),
        service_jwt_private_keys=_secret("SERVICE_JWT_PRIVATE_KEYS", environ),
        origin_verify_secret=_secret("ORIGIN_VERIFY_SECRET", environ),
        downstream_connect_timeout_seconds=env_float(
            "DOWNSTREAM_CONNECT_TIMEOUT_SECONDS", 1.0, minimum=0.05, maximum=30, environ=environ
        ),
        downstream_timeout_seconds=env_float(
            "DOWNSTREAM_TIMEOUT_SECONDS", 5.0, minimum=0.05, maximum=60, environ=environ
        ),
        downstream_retries=env_int("DOWNSTREAM_RETRIES", 2, minimum=0, maximum=5, environ=environ),
        sqs_send_max_retries=env_int("SQS_SEND_MAX_RETRIES", 3, minimum=0, maximum=10, environ=environ),
        idempotency_in_flight_max_wait_seconds=env_float(
            "IDEMPOTENCY_IN_FLIGHT_MAX_WAIT_SECONDS", 5.0, minimum=0, maximum=20, environ=environ
        ),
        payment_gateway_url=gateway_url,
        payment_gateway_api_key=_secret("PAYMENT_GATEWAY_API_KEY", environ),
        payment_gateway_timeout_seconds=env_float(
            "PAYMENT_GATEWAY_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60, environ=environ
        ),
        payment_gateway_retries=env_int("PAYMENT_GATEWAY_RETRIES", 2, minimum=0, maximum=10, environ=environ),
        payment_grace_seconds=env_int("PAYMENT_GRACE_SECONDS", 120, minimum=0, environ=environ),
        payment_processing_grace_seconds=env_int("PAYMENT_PROCESSING_GRACE_SECONDS", 300, minimum=0, environ=environ),
        sweeper_batch_limit=env_int("SWEEPER_BATCH_LIMIT", 100, minimum=1, maximum=100, environ=environ),
        lambda_time_margin_seconds=env_float(
            "LAMBDA_TIME_MARGIN_SECONDS", 1.5, minimum=0.1, maximum=30, environ=environ
        ),
        sqs_connect_timeout_seconds=env_float(
            "SQS_CONNECT_TIMEOUT_SECONDS", 1.0, minimum=0.05, maximum=30, environ=environ
        ),
        sqs_timeout_seconds=env_float("SQS_TIMEOUT_SECONDS", 3.0, minimum=0.05, maximum=60, environ=environ),
    )


@cache
def get_settings() -> Settings:
    """This process's settings, read once (per Lambda cold start)."""
    return load_settings()
