"""The BFF's routes (docs/api.md): authenticate, scope to the user's customer, call one service.

Each route is glue: the rules live in `auth`, `validation`, `idempotency` and `placement`.
Downstream answers are relayed as sent (problems keep their status and body).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from servicekit.auth import Principal
from servicekit.problems import Problem

from ..clients import CUSTOMERS_SERVICE, ORDERS_SERVICE
from ..downstream import problem_code, read_reply
from ..observability import logger, note
from .app import app, route
from .auth import (
    authenticate,
    client_address,
    customer_named_in_request,
    customer_owning,
    ensure_customer_exists,
    ensure_visible,
    require_admin,
)
from .dependencies import SERVICE_NAME, dependencies
from .http import (
    DOCS_ASSETS_PATH,
    json_body,
    json_response,
    path_id,
    query_pairs,
    query_value,
    relay,
    resolver_template,
    route_not_found,
)
from .idempotency import client_key, default_correlation_id, derive_key, optional_client_key
from .validation import CANCEL_ORDER, CHECKOUT, CREATE_AND_CONFIRM_ORDER, int_query, load


def _event() -> APIGatewayProxyEventV2:
    return app.current_event


def _user() -> Principal:
    return authenticate(_event().headers, dependencies().verifier)


def _user_acting_for_a_customer() -> Principal:
    """`_user()`, and for a customer user, its customer must still exist: a deleted customer's
    token is refused wherever its `customer_id` is used (placement checks it itself)."""
    principal = _user()
    if principal.is_customer_user:
        ensure_customer_exists(dependencies().customers, principal)
    return principal


def _admin() -> Principal:
    principal = _user()
    require_admin(principal)
    return principal


# --- health -----------------------------------------------------------------------------------


@route("GET", "/health")
def health() -> Response:
    return json_response({"status": "ok", "service": SERVICE_NAME})


@route("GET", "/ready")
def ready() -> Response:
    """Ready once configuration and secrets load (the services report their own readiness)."""
    try:
        dependencies()
    except Exception as exc:
        logger.error("not_ready", extra={"error": f"{type(exc).__name__}: {exc}"})
        raise Problem(
            503, "not_ready", "The orchestrator's configuration did not load", headers={"Retry-After": "5"}
        ) from None
    return json_response({"status": "ready", "service": SERVICE_NAME})


@route("GET", "/openapi.json")
def openapi_json() -> Response:
    # The document, Swagger UI's files and apispec are imported on first use, not at cold start.
    from .openapi import openapi_document

    return json_response(openapi_document())


@route("GET", "/docs")
def docs() -> Response:
    from .openapi import swagger_ui_html

    return Response(status_code=200, content_type="text/html; charset=utf-8", body=swagger_ui_html())


@route("GET", resolver_template(DOCS_ASSETS_PATH + "/{asset}"))
def docs_asset(asset: str) -> Response:
    """Swagger UI's own files (text), so /docs needs no CDN."""
    from servicekit.openapi import SWAGGER_UI_ASSETS, swagger_ui_asset

    content = swagger_ui_asset(asset)
    if content is None:
        raise route_not_found(_event())
    return Response(
        status_code=200,
        content_type=SWAGGER_UI_ASSETS[asset],
        body=content.decode("utf-8"),
        headers={"Cache-Control": "public, max-age=86400"},
    )


# --- auth -------------------------------------------------------------------------------------


@route("POST", "/auth/login")
def login() -> Response:
    """customers-service's login for the BFF: the credentials, and the client's address for its
    throttle, vouched for by our service token (docs/auth.md)."""
    body = {
        **json_body(_event()),
        "client_address": client_address(_event(), dependencies().origin_secrets is not None),
    }
    response = dependencies().customers.request("POST", "/internal/login", json=body)
    # A 401 for the user's credentials is the user's answer; any other 401 refused our token.
    return relay(response, CUSTOMERS_SERVICE, user_credentials=problem_code(response) == "invalid_credentials")


# --- products ---------------------------------------------------------------------------------


@route("GET", "/products")
def list_products() -> Response:
    _user()
    return relay(dependencies().orders.request("GET", "/products", params=query_pairs(_event())), ORDERS_SERVICE)


@route("GET", "/products/<product_id>")
def get_product(product_id: str) -> Response:
    _user()
    product = path_id(_event(), product_id)
    return relay(dependencies().orders.request("GET", f"/products/{product}"), ORDERS_SERVICE)


@route("POST", "/products")
def create_product() -> Response:
    _admin()
    body = json_body(_event())
    return relay(dependencies().orders.request("POST", "/products", json=body), ORDERS_SERVICE)


@route("PATCH", "/products/<product_id>")
def update_product(product_id: str) -> Response:
    _admin()
    product = path_id(_event(), product_id)
    body = json_body(_event())
    return relay(dependencies().orders.request("PATCH", f"/products/{product}", json=body), ORDERS_SERVICE)


@route("POST", "/products/<product_id>/restock")
def restock_product(product_id: str) -> Response:
    principal = _admin()
    product = path_id(_event(), product_id)
    body = json_body(_event())
    key = optional_client_key(_event().headers)
    headers = {"Idempotency-Key": derive_key(principal.identity, "restock", key)} if key else {}
    # Resent after a dropped answer only with a key: without one a restock could add the stock twice.
    response = dependencies().orders.request(
        "POST", f"/products/{product}/restock", json=body, headers=headers, retry=key is not None
    )
    return relay(response, ORDERS_SERVICE)


# --- cart -------------------------------------------------------------------------------------


def _cart_customer(principal: Principal) -> int:
    return customer_owning(principal, int_query(query_value(_event(), "customer_id"), "customer_id"), "cart")


@route("GET", "/cart")
def get_cart() -> Response:
    customer = _cart_customer(_user_acting_for_a_customer())
    note(customer_id=customer)
    return relay(dependencies().orders.request("GET", "/cart", params={"customer_id": customer}), ORDERS_SERVICE)


@route("PUT", "/cart/items/<product_id>")
def put_cart_item(product_id: str) -> Response:
    customer = _cart_customer(_user_acting_for_a_customer())
    product = path_id(_event(), product_id)
    body = json_body(_event())
    note(customer_id=customer)
    response = dependencies().orders.request(
        "PUT", f"/cart/items/{product}", params={"customer_id": customer}, json=body
    )
    return relay(response, ORDERS_SERVICE)


@route("DELETE", "/cart/items/<product_id>")
def delete_cart_item(product_id: str) -> Response:
    customer = _cart_customer(_user_acting_for_a_customer())
    product = path_id(_event(), product_id)
    note(customer_id=customer)
    response = dependencies().orders.request("DELETE", f"/cart/items/{product}", params={"customer_id": customer})
    return relay(response, ORDERS_SERVICE)


# --- placing orders ---------------------------------------------------------------------------


def _place(principal: Principal, data: dict[str, Any], *, flow: str, order_fields: dict[str, Any]) -> Response:
    key = client_key(_event().headers, data["idempotency_key"])
    customer_id = customer_named_in_request(principal, data["customer_id"])
    answer = dependencies().placement.place(
        principal,
        flow=flow,
        customer_id=customer_id,
        order_request={"customer_id": customer_id, **order_fields},
        client_key=key,
        correlation_id=data["correlation_id"] or default_correlation_id(principal.identity, key),
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    return json_response(answer.body, 201, headers)


@route("POST", "/orchestrator/create-and-confirm-order")
def create_and_confirm_order() -> Response:
    principal = _user()
    data = load(CREATE_AND_CONFIRM_ORDER, json_body(_event()), principal=principal)
    return _place(principal, data, flow="create-and-confirm-order", order_fields={"items": data["items"]})


@route("POST", "/checkout")
def checkout() -> Response:
    principal = _user()
    data = load(CHECKOUT, json_body(_event(), required=False), principal=principal)
    return _place(principal, data, flow="checkout", order_fields={"from_cart": True})


# --- orders -----------------------------------------------------------------------------------


@route("GET", "/orders")
def list_orders() -> Response:
    principal = _user_acting_for_a_customer()
    pairs = query_pairs(_event())
    if not principal.is_admin:
        own = customer_named_in_request(principal, int_query(query_value(_event(), "customer_id"), "customer_id"))
        pairs = [(name, value) for name, value in pairs if name != "customer_id"] + [("customer_id", str(own))]
    return relay(dependencies().orders.request("GET", "/orders", params=pairs), ORDERS_SERVICE)


def _visible_order(principal: Principal, order_id: int) -> dict[str, Any]:
    note(order_id=order_id)
    order = read_reply(dependencies().orders.request("GET", f"/orders/{order_id}"), ORDERS_SERVICE).body
    ensure_visible(principal, order.get("customer_id"), "order", order_id)
    return order


@route("GET", "/orders/<order_id>")
def get_order(order_id: str) -> Response:
    principal = _user_acting_for_a_customer()
    return json_response(_visible_order(principal, path_id(_event(), order_id)))


@route("POST", "/orders/<order_id>/cancel")
def cancel_order(order_id: str) -> Response:
    principal = _user_acting_for_a_customer()
    order = path_id(_event(), order_id)
    data = load(CANCEL_ORDER, json_body(_event(), required=False))
    key = client_key(_event().headers, data["idempotency_key"])
    _visible_order(principal, order)
    response = dependencies().orders.request(
        "POST",
        f"/orders/{order}/cancel",
        json={},
        headers={"Idempotency-Key": derive_key(principal.identity, "cancel", key)},
        retry=True,  # a repeated cancel cannot act twice: the order's state machine refuses it
    )
    return relay(response, ORDERS_SERVICE)


# --- customers (admin; a customer user may read its own record) -------------------------------


@route("POST", "/customers")
def create_customer() -> Response:
    _admin()
    body = json_body(_event())
    return relay(dependencies().customers.request("POST", "/customers", json=body), CUSTOMERS_SERVICE)


@route("GET", "/customers")
def list_customers() -> Response:
    _admin()
    response = dependencies().customers.request("GET", "/customers", params=query_pairs(_event()))
    return relay(response, CUSTOMERS_SERVICE)


@route("GET", "/customers/<customer_id>")
def get_customer(customer_id: str) -> Response:
    principal = _user_acting_for_a_customer()
    customer = path_id(_event(), customer_id)
    ensure_visible(principal, customer, "customer", customer)
    return relay(dependencies().customers.request("GET", f"/customers/{customer}"), CUSTOMERS_SERVICE)


def _write_customer(method: str, customer_id: str) -> Response:
    _admin()
    customer = path_id(_event(), customer_id)
    body = json_body(_event()) if method != "DELETE" else None
    note(customer_id=customer)
    return relay(dependencies().customers.request(method, f"/customers/{customer}", json=body), CUSTOMERS_SERVICE)


@route("PUT", "/customers/<customer_id>")
def replace_customer(customer_id: str) -> Response:
    return _write_customer("PUT", customer_id)


@route("PATCH", "/customers/<customer_id>")
def update_customer(customer_id: str) -> Response:
    return _write_customer("PATCH", customer_id)


@route("DELETE", "/customers/<customer_id>")
def delete_customer(customer_id: str) -> Response:
    return _write_customer("DELETE", customer_id)
