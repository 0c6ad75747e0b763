"""Who is calling the BFF, and for which customer they may act.

Only user tokens are accepted here (the verifier has no service ring). The BFF calls the services
with its own service token, so it is the BFF that enforces the user's scope:
- a customer user acts for its own customer: another customer's order, cart or record is a 404
  (the resource is not theirs to know about), naming another customer in a body or a list filter
  is a 403;
- an admin names the customer explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping

from servicekit.auth import Principal, TokenVerifier, authenticate_bearer
from servicekit.problems import Problem, forbidden, not_found, validation_error

from ..observability import note


def authenticate(headers: Mapping[str, str], verifier: TokenVerifier) -> Principal:
    principal = authenticate_bearer(headers.get("authorization"), verifier)
    note(caller=principal.identity)
    return principal


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
