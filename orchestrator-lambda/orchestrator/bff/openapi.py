"""The BFF's OpenAPI 3 document (`GET /openapi.json`) and interactive docs (`GET /docs`), SPEC §2.

Built with apispec from marshmallow schemas, like the services' documents: the request schemas
are the ones the BFF validates with (`validation.py`); the relayed bodies are described by the
small output schemas below (the services' documents have the full detail). `OPERATIONS` lists
every route; a test checks it against the routes the resolver knows, so the two stay in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from servicekit.contracts import (
    CartSchema,
    CustomerSchema,
    HealthSchema,
    LoginSchema,
    OrderSchema,
    ProblemSchema,
    ProductSchema,
    page_schema,
)
from servicekit.limits import EMAIL_MAX, NAME_MAX, PRICE_CENTS_MAX, QTY_MAX, SKU_MAX

from .validation import CancelOrderSchema, CheckoutSchema, CreateAndConfirmOrderSchema

TITLE = "B2B order platform API (BFF)"
VERSION = "1.0.0"
SWAGGER_UI_URL = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
DESCRIPTION = (
    "One base URL for B2B clients: login, catalogue, cart, checkout, orders, and admin routes. "
    "Bearer user token (from `POST /auth/login`) on everything but login, health and docs. "
    "Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`. "
    "Every answer carries `X-Request-Id`."
)

# --- output shapes (relayed from the services: servicekit.contracts) ---------------------------

LoginResponseSchema = LoginSchema
ProductPageSchema = page_schema(ProductSchema, "ProductPage")
OrderPageSchema = page_schema(OrderSchema, "OrderPage")
CustomerPageSchema = page_schema(CustomerSchema, "CustomerPage")


class LoginRequestSchema(ma.Schema):
    username = ma.fields.String(required=True)
    password = ma.fields.String(required=True)


class ProductCreateSchema(ma.Schema):
    sku = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=SKU_MAX))
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=NAME_MAX))
    price_cents = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=PRICE_CENTS_MAX))
    stock = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0))


class ProductUpdateSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=NAME_MAX))
    price_cents = ma.fields.Integer(validate=ma.validate.Range(min=1, max=PRICE_CENTS_MAX))


class RestockSchema(ma.Schema):
    qty = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1))


class CartItemPutSchema(ma.Schema):
    qty = ma.fields.Integer(required=True, validate=ma.validate.Range(min=1, max=QTY_MAX))


class CustomerInSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=NAME_MAX))
    email = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=EMAIL_MAX))
    phone = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))


class CustomerPatchSchema(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=NAME_MAX))
    email = ma.fields.String(validate=ma.validate.Length(min=3, max=EMAIL_MAX))
    phone = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))


class PlacementDataSchema(ma.Schema):
    customer = ma.fields.Nested(CustomerSchema)
    order = ma.fields.Nested(OrderSchema)


class PaymentEventSchema(ma.Schema):
    status = ma.fields.String(metadata={"enum": ["published", "deferred"]})
    detail = ma.fields.String(metadata={"description": "When deferred: the sweeper re-publishes it; nothing to do"})


class PlacementSchema(ma.Schema):
    success = ma.fields.Boolean()
    correlation_id = ma.fields.String()
    data = ma.fields.Nested(PlacementDataSchema)
    payment_event = ma.fields.Nested(PaymentEventSchema)


# --- operations --------------------------------------------------------------------------------

PUBLIC = "public"
USER = "user"
ADMIN = "admin"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI template, `{id}` style
    summary: str
    tag: str
    access: str = USER
    body: type[ma.Schema] | None = None
    body_required: bool = True
    response: type[ma.Schema] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    idempotency: str | None = None  # "required" | "optional"


_LIST_QUERY = (
    ("limit", "integer", "1..100, default 20"),
    ("cursor", "string", "`next_cursor` of the previous page"),
)
_CUSTOMER_QUERY = (("customer_id", "integer", "Required for admins; a customer user acts for itself"),)

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "Process up", "ops", PUBLIC, response=HealthSchema),
    Operation("GET", "/ready", "Configuration and secrets loaded", "ops", PUBLIC, response=HealthSchema, errors=(503,)),
    Operation("GET", "/openapi.json", "This document", "ops", PUBLIC),
    Operation("GET", "/docs", "Interactive documentation (Swagger UI)", "ops", PUBLIC),
    Operation(
        "POST",
        "/auth/login",
        "Log in; returns a bearer user token",
        "auth",
        PUBLIC,
        body=LoginRequestSchema,
        response=LoginResponseSchema,
        errors=(400, 401, 429, 503),
    ),
    Operation(
        "GET", "/products", "List products", "products", response=ProductPageSchema, errors=(400,), query=_LIST_QUERY
    ),
    Operation("GET", "/products/{product_id}", "Get a product", "products", response=ProductSchema, errors=(404,)),
    Operation(
        "POST",
        "/products",
        "Create a product",
        "products",
        ADMIN,
        body=ProductCreateSchema,
        response=ProductSchema,
        status=201,
        errors=(400, 409),
    ),
    Operation(
        "PATCH",
        "/products/{product_id}",
        "Change a product's name or price",
        "products",
        ADMIN,
        body=ProductUpdateSchema,
        response=ProductSchema,
        errors=(400, 404),
    ),
    Operation(
        "POST",
        "/products/{product_id}/restock",
        "Add stock",
        "products",
        ADMIN,
        body=RestockSchema,
        response=ProductSchema,
        errors=(400, 404),
    ),
    Operation("GET", "/cart", "The cart", "cart", response=CartSchema, errors=(400, 404), query=_CUSTOMER_QUERY),
    Operation(
        "PUT",
        "/cart/items/{product_id}",
        "Set a product's quantity in the cart",
        "cart",
        body=CartItemPutSchema,
        response=CartSchema,
        errors=(400, 404),
        query=_CUSTOMER_QUERY,
    ),
    Operation(
        "DELETE",
        "/cart/items/{product_id}",
        "Remove a product from the cart",
        "cart",
        response=CartSchema,
        errors=(400, 404),
        query=_CUSTOMER_QUERY,
    ),
    Operation(
        "POST",
        "/checkout",
        "Order the cart: cart → order → confirm → payment event (the cart is emptied)",
        "orders",
        body=CheckoutSchema,
        body_required=False,
        response=PlacementSchema,
        status=201,
        errors=(400, 403, 404, 409, 422, 503),
        idempotency="required",
    ),
    Operation(
        "POST",
        "/orchestrator/create-and-confirm-order",
        "Create and confirm an order, then request its payment",
        "orders",
        body=CreateAndConfirmOrderSchema,
        response=PlacementSchema,
        status=201,
        errors=(400, 403, 404, 409, 422, 503),
        idempotency="required",
    ),
    Operation(
        "GET",
        "/orders",
        "List orders (customer users: their own)",
        "orders",
        response=OrderPageSchema,
        errors=(400, 403),
        query=(
            ("status", "string", "CREATED, CONFIRMED, PAID or CANCELED"),
            ("customer_id", "integer", "Admins: any; customer users: only their own"),
            ("from", "string", "created_at >= from (ISO 8601)"),
            ("to", "string", "created_at < to (ISO 8601)"),
            *_LIST_QUERY,
        ),
    ),
    Operation("GET", "/orders/{order_id}", "Get an order", "orders", response=OrderSchema, errors=(404,)),
    Operation(
        "POST",
        "/orders/{order_id}/cancel",
        "Cancel: CREATED any time, CONFIRMED within the cancel window before payment settles",
        "orders",
        body=CancelOrderSchema,
        body_required=False,
        response=OrderSchema,
        errors=(400, 404, 409),
        idempotency="required",
    ),
    Operation(
        "POST",
        "/customers",
        "Create a customer",
        "customers",
        ADMIN,
        body=CustomerInSchema,
        response=CustomerSchema,
        status=201,
        errors=(400, 409),
    ),
    Operation(
        "GET",
        "/customers",
        "List or search customers",
        "customers",
        ADMIN,
        response=CustomerPageSchema,
        errors=(400,),
        query=(("search", "string", "Matches name or email"), *_LIST_QUERY),
    ),
    Operation(
        "GET",
        "/customers/{customer_id}",
        "Get a customer (admins, or that customer's user)",
        "customers",
        response=CustomerSchema,
        errors=(404,),
    ),
    Operation(
        "PUT",
        "/customers/{customer_id}",
        "Replace a customer",
        "customers",
        ADMIN,
        body=CustomerInSchema,
        response=CustomerSchema,
        errors=(400, 404, 409),
    ),
    Operation(
        "PATCH",
        "/customers/{customer_id}",
        "Change some of a customer's fields",
        "customers",
        ADMIN,
        body=CustomerPatchSchema,
        response=CustomerSchema,
        errors=(400, 404, 409),
    ),
    Operation(
        "DELETE", "/customers/{customer_id}", "Delete a customer (soft)", "customers", ADMIN, status=204, errors=(404,)
    ),
)

_ERROR_DESCRIPTIONS = {
    400: "Malformed body, invalid fields (all listed in `errors`) or missing header",
    401: "Missing, invalid or expired bearer token (`WWW-Authenticate: Bearer`)",
    403: "Valid token without the right",
    404: "Unknown resource or route (another customer's resources do not exist for you)",
    409: "Conflict with the current state (`insufficient_stock`, `invalid_state_transition`, ...)",
    422: "Idempotency key reused with a different request",
    429: "Too many failed logins for the username or from the address (`Retry-After`)",
    503: "A dependency is unavailable (`Retry-After`)",
}


def _operation_spec(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": _operation_id(op)}
    parameters: list[dict[str, Any]] = [
        {"in": "path", "name": name, "required": True, "schema": {"type": "integer", "minimum": 1}}
        for name in _path_names(op.path)
    ]
    parameters += [
        {"in": "query", "name": name, "required": False, "schema": {"type": kind}, "description": description}
        for name, kind, description in op.query
    ]
    if op.idempotency:
        key_schema = {"type": "string", "minLength": 1, "maxLength": 255}
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": key_schema,
                "description": "Required here: this header, `X-Idempotency-Key`, or `idempotency_key` in the body. "
                "Retries with one key replay the first answer (`Idempotent-Replayed: true`).",
            }
        )
    parameters.append(
        {
            "in": "header",
            "name": "X-Request-Id",
            "required": False,
            "schema": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9._-]+$"},
            "description": "Reused in logs, downstream calls and payment events; else a new one is made",
        }
    )
    spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {"required": op.body_required, "content": {"application/json": {"schema": op.body}}}
    success: dict[str, Any] = {"description": "OK" if op.status != 201 else "Created"}
    if op.status == 204:
        success["description"] = "Deleted"
    elif op.path == "/docs":
        success["content"] = {"text/html": {"schema": {"type": "string"}}}
    elif op.response is not None:
        success["content"] = {"application/json": {"schema": op.response}}
    elif op.path == "/openapi.json":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(op.status): success}
    errors = set(op.errors)
    if op.access != PUBLIC:
        errors.add(401)
        spec["security"] = [{"bearerAuth": []}]
    if op.access == ADMIN:
        errors.add(403)
    for status in sorted(errors):
        responses[str(status)] = {
            "description": _ERROR_DESCRIPTIONS[status],
            "content": {"application/problem+json": {"schema": ProblemSchema}},
        }
    spec["responses"] = responses
    if op.access == ADMIN:
        spec["description"] = "Admin only."
    return spec


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation_id(op: Operation) -> str:
    words = [part.strip("{}").replace(".", "_").replace("-", "_") for part in op.path.split("/") if part]
    return "_".join([op.method.lower(), *words]) or op.method.lower()


def resolver_template(path: str) -> str:
    """`/orders/{order_id}` → `/orders/<order_id>` (the resolver's spelling)."""
    return path.replace("{", "<").replace("}", ">")


@cache
def openapi_document() -> dict[str, Any]:
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema("Problem", schema=ProblemSchema)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_spec(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def swagger_ui_html() -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{TITLE}</title>
<link rel="stylesheet" href="{SWAGGER_UI_URL}swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_UI_URL}swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
</script>
</body>
</html>
"""
