"""Who is calling the BFF, from where, and for which customer they may act.

Only user tokens are accepted here (the verifier holds no service keys). The BFF calls the
services with its own service token, so it is the BFF that enforces the user's scope:
- a customer user's customer must still exist (`ensure_customer_exists`): a deleted customer's
  token is a 401;
- a customer user acts for its own customer: another customer's order, cart or record is a 404
  (the resource is not theirs to know about), naming another customer in a body or a list filter
  is a 403;
- an admin names the customer explicitly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from servicekit.auth import Principal, TokenVerifier, authenticate_bearer
from servicekit.http_client import ServiceClient
from servicekit.problems import Problem, forbidden, not_found, unauthorized, validation_error

from ..clients import CUSTOMERS_SERVICE
from ..downstream import read_reply
from ..observability import note

# Set by the CloudFront Function in front of the API to the viewer's own address (template.yaml),
# overwriting whatever a client sent.
VIEWER_ADDRESS_HEADER = "x-viewer-address"
UNKNOWN_ADDRESS = "0.0.0.0"


def authenticate(headers: Mapping[str, str], verifier: TokenVerifier) -> Principal:
    principal = authenticate_bearer(headers.get("authorization"), verifier)
    note(caller=principal.identity)
    return principal


def client_address(event: APIGatewayProxyEventV2, through_cloudfront: bool) -> str:
    """The client's IP address, for the login throttle.

    API Gateway's `requestContext.http.sourceIp` is the address of the connection it took. Behind
    CloudFront that is an edge server shared by many clients, so there (and only there: the origin
    header proved the request came through CloudFront, invocation.py) the viewer's address that the
    CloudFront Function wrote is taken instead."""
    candidates = [event.request_context.http.source_ip]
    if through_cloudfront:
        candidates.insert(0, (event.headers or {}).get(VIEWER_ADDRESS_HEADER))
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address((candidate or "").strip()))
        except ValueError:
            continue
    return UNKNOWN_ADDRESS


def customer_deleted() -> Problem:
    return unauthorized("The token's customer has been deleted", code="invalid_token")


def ensure_customer_exists(customers: ServiceClient, principal: Principal) -> None:
    """A customer user's customer must still exist (customers-service knows its soft deletes):
    a deleted customer's token is refused (401), wherever its customer_id would be used."""
    response = customers.request("GET", f"/internal/customers/{principal.customer_id}")
    if response.status_code == 404:
        raise customer_deleted()
    read_reply(response, CUSTOMERS_SERVICE)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise forbidden("Only an admin may do this")


def customer_named_in_request(principal: Principal, requested: int | None, *, field: str = "customer_id") -> int:
    """The customer a body or list filter names: admins must name one, customers only themselves."""
    if principal.is_admin:
        if requested is None:
            raise validation_error({field: [f"{field} is required for admin callers."]})
        return requested
    if requested is not None and requested != principal.customer_id:
        raise forbidden("A customer user may only act for its own customer")
    return _own_customer(principal)


def customer_owning(principal: Principal, requested: int | None, resource: str) -> int:
    """The customer whose resource (cart, record) is read: another customer's is a 404."""
    if principal.is_admin:
        if requested is None:
            raise validation_error({"customer_id": ["customer_id is required for admin callers."]})
        return requested
    if requested is not None and requested != principal.customer_id:
        raise not_found(resource)
    return _own_customer(principal)


def ensure_visible(principal: Principal, owner_customer_id: object, resource: str, identifier: object) -> None:
    """A resource of another customer does not exist for a customer user."""
    if not principal.is_admin and owner_customer_id != principal.customer_id:
        raise not_found(resource, identifier)


def _own_customer(principal: Principal) -> int:
    if principal.customer_id is None:  # the verifier refuses such tokens; defence in depth
        raise Problem(403, "forbidden", "This token is not bound to a customer")
    return principal.customer_id
