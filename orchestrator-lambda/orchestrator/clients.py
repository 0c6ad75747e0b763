"""Clients of customers-service and orders-service, built once per cold start and reused."""

from __future__ import annotations

from collections.abc import Callable

from servicekit.auth import ServiceTokenMinter
from servicekit.http_client import ServiceClient

from .config import Settings

CUSTOMERS_SERVICE = "customers-service"
ORDERS_SERVICE = "orders-service"


def service_minter(settings: Settings, caller: str, fetch: Callable[[str], str] | None = None) -> ServiceTokenMinter:
    """Our outgoing service tokens (`iss`=`sub`=caller), signed with this function's own private
    key (SERVICE_JWT_PRIVATE_KEYS), each reused until close to expiry."""
    return ServiceTokenMinter(settings.service_jwt_private_keys.signing_keys(fetch), caller)


def service_client(
    settings: Settings, base_url: str, audience: str, minter: ServiceTokenMinter | None
) -> ServiceClient:
    return ServiceClient(
        base_url,
        audience=audience,
        minter=minter,
        connect_timeout=settings.downstream_connect_timeout_seconds,
        read_timeout=settings.downstream_timeout_seconds,
        retries=settings.downstream_retries,
    )


def orders_client(settings: Settings, minter: ServiceTokenMinter) -> ServiceClient:
    return service_client(settings, settings.orders_api_url, ORDERS_SERVICE, minter)


def customers_client(settings: Settings, minter: ServiceTokenMinter | None) -> ServiceClient:
    return service_client(settings, settings.customers_api_url, CUSTOMERS_SERVICE, minter)
