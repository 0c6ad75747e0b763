"""What the BFF's routes use, built once per cold start (the seam tests replace)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from servicekit.auth import TokenVerifier
from servicekit.http_client import ServiceClient

from ..clients import customers_client, orders_client, service_minter
from ..config import Settings, get_settings
from ..payment_events import PaymentEventPublisher
from ..sqs import SqsSender, make_sqs_client
from .placement import OrderPlacement

SERVICE_NAME = "orchestrator"


@dataclass
class BffDependencies:
    verifier: TokenVerifier
    customers: ServiceClient
    orders: ServiceClient
    placement: OrderPlacement
    # The values CloudFront's origin header may carry; None when no origin secret is configured
    # (local runs): then requests are taken whatever their headers (invocation.py).
    origin_secrets: frozenset[str] | None = None


def build_dependencies(
    settings: Settings, *, sqs_client: Any = None, fetch_secret: Callable[[str], str] | None = None
) -> BffDependencies:
    verifier = TokenVerifier(
        service_name=SERVICE_NAME, user_ring=settings.user_jwt_keys.key_ring(fetch_secret), service_keys=None
    )
    minter = service_minter(settings, SERVICE_NAME, fetch_secret)
    customers = customers_client(settings, minter)
    orders = orders_client(settings, minter)
    sender = SqsSender(sqs_client or make_sqs_client(settings), max_retries=settings.sqs_send_max_retries)
    placement = OrderPlacement(
        customers=customers,
        orders=orders,
        publisher=PaymentEventPublisher(sender, settings.require_queue_url()),
        in_flight_max_wait_seconds=settings.idempotency_in_flight_max_wait_seconds,
    )
    return BffDependencies(
        verifier=verifier,
        customers=customers,
        orders=orders,
        placement=placement,
        origin_secrets=(
            settings.origin_verify_secret.origin_values(fetch_secret)
            if settings.origin_verify_secret.configured
            else None
        ),
    )


_dependencies: BffDependencies | None = None


def dependencies() -> BffDependencies:
    global _dependencies
    if _dependencies is None:
        _dependencies = build_dependencies(get_settings())
    return _dependencies


def use_dependencies(replacement: BffDependencies | None) -> None:
    """Install (or with None, forget) the dependencies the routes use."""
    global _dependencies
    _dependencies = replacement
