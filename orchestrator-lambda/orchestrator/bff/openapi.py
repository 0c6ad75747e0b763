"""The BFF's OpenAPI 3 document (`GET /openapi.json`) and interactive docs (`GET /docs`).

Built with apispec from marshmallow schemas, like the services' documents, and from the same
definitions: the request schemas of the routes the BFF relays are the services' own
(`servicekit.contracts`), those of the workflows it owns are the ones it validates with
(`validation.py`), and the relayed bodies are the services' resource schemas. Every status a
route can answer is listed (`servicekit.openapi.ProblemResponsesPlugin` adds those its shape
implies; `errors` below the rest). `OPERATIONS` lists every route; a test checks it against the
routes the resolver knows, so the two stay in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import marshmallow as ma
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from servicekit.contracts import (
    IDEMPOTENCY_KEY_PATTERN,
    CartItemPutSchema,
    CartSchema,
    CustomerInSchema,
    CustomerPatchSchema,
    CustomerQuerySchema,
    CustomerSchema,
    CustomerSearchQuerySchema,
    HealthSchema,
    LoginRequestSchema,
    LoginSchema,
    OrderListQuerySchema,
    OrderSchema,
    PageQuerySchema,
    ProblemSchema,
    ProductCreateSchema,
    ProductSchema,
    ProductUpdateSchema,
    RestockSchema,
    page_schema,
)
from servicekit.limits import IDEMPOTENCY_KEY_MAX
from servicekit.openapi import (
    PROBLEM_DESCRIPTIONS,
    PROBLEM_SCHEMA_NAME,
    SWAGGER_UI_ASSETS,
    ProblemResponsesPlugin,
    documented_problem,
    swagger_ui_page,
)

from .http import DOCS_ASSETS_PATH
from .validation import CancelOrderSchema, CheckoutSchema, CreateAndConfirmOrderSchema

TITLE = "B2B order platform API (BFF)"
VERSION = "1.0.0"
DESCRIPTION = (
    "One base URL for B2B clients: login, catalogue, cart, checkout, orders, and admin routes. "
    "Bearer user token (from `POST /auth/login`) on everything but login, health and docs. "
    "Errors are RFC 9457 problem details (`application/problem+json`) with a stable `code`; each "
    "operation lists every status it can answer. Every answer carries `X-Request-Id` (the caller's, "
    "when it is at most 128 characters of `[A-Za-z0-9._-]`; else a new one)."
)

# --- output shapes (relayed from the services: servicekit.contracts) ---------------------------

LoginResponseSchema = LoginSchema
ProductPageSchema = page_schema(ProductSchema, "ProductPage")
OrderPageSchema = page_schema(OrderSchema, "OrderPage")
CustomerPageSchema = page_schema(CustomerSchema, "CustomerPage")


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
    # Statuses beyond those the shape implies (servicekit.openapi), with what they mean here.
    errors: tuple[tuple[int, str], ...] = ()
    query: type[ma.Schema] | None = None
    idempotency: str | None = None  # "required" | "optional"
    content_type: str = "application/json"
    description: str | None = None


_IN_FLIGHT = "`idempotency_in_flight`: the same key is still being processed (`Retry-After`)"
_MISMATCH = (422, PROBLEM_DESCRIPTIONS[422])
_PLACEMENT_ERRORS = (
    (403, "`forbidden`: a customer user naming another customer"),
    (404, "`not_found`: unknown customer or product (`resource`)"),
    (409, f"`insufficient_stock` (`product_id`, `requested`, `available`), `cart_empty`, {_IN_FLIGHT}"),
    _MISMATCH,
)
_SHAPE = "Body as the service validates it; every invalid field is listed in `errors`"

OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/health", "Process up", "ops", PUBLIC, response=HealthSchema),
    Operation(
        "GET",
        "/ready",
        "Configuration and secrets loaded",
        "ops",
        PUBLIC,
        response=HealthSchema,
        errors=((503, "`not_ready`: the configuration or its secrets did not load (`Retry-After`)"),),
    ),
    Operation("GET", "/openapi.json", "This document", "ops", PUBLIC),
    Operation("GET", "/docs", "Interactive documentation (Swagger UI)", "ops", PUBLIC, content_type="text/html"),
    Operation(
        "GET",
        DOCS_ASSETS_PATH + "/{asset}",
        "A Swagger UI file of /docs, served here (no CDN)",
        "ops",
        PUBLIC,
        content_type="text/css or text/javascript",
    ),
    Operation(
        "POST",
        "/auth/login",
        "Log in; returns a bearer user token",
        "auth",
        PUBLIC,
        body=LoginRequestSchema,
        response=LoginResponseSchema,
        errors=(
            (401, "`invalid_credentials`: wrong username or password"),
            (429, "`too_many_attempts`: too many failed logins for the username or from the address (`Retry-After`)"),
        ),
    ),
    Operation("GET", "/products", "List products", "products", response=ProductPageSchema, query=PageQuerySchema),
    Operation("GET", "/products/{product_id}", "Get a product", "products", response=ProductSchema),
    Operation(
        "POST",
        "/products",
        "Create a product",
        "products",
        ADMIN,
        body=ProductCreateSchema,
        response=ProductSchema,
        status=201,
        errors=((409, "`duplicate_sku`: the SKU is taken (`sku`)"),),
    ),
    Operation(
        "PATCH",
        "/products/{product_id}",
        "Change a product's name or price (at least one)",
        "products",
        ADMIN,
        body=ProductUpdateSchema,
        response=ProductSchema,
    ),
    Operation(
        "POST",
        "/products/{product_id}/restock",
        "Add received stock; with an Idempotency-Key a retry adds it once",
        "products",
        ADMIN,
        body=RestockSchema,
        response=ProductSchema,
        errors=((409, _IN_FLIGHT), _MISMATCH),
        idempotency="optional",
    ),
    Operation(
        "GET",
        "/cart",
        "The cart",
        "cart",
        response=CartSchema,
        query=CustomerQuerySchema,
        errors=((404, "`not_found`: another customer's cart, or an unknown customer"),),
    ),
    Operation(
        "PUT",
        "/cart/items/{product_id}",
        "Set a product's quantity in the cart",
        "cart",
        body=CartItemPutSchema,
        response=CartSchema,
        query=CustomerQuerySchema,
        errors=((404, "`not_found`: unknown product or customer, or another customer's cart"),),
    ),
    Operation(
        "DELETE",
        "/cart/items/{product_id}",
        "Remove a product from the cart",
        "cart",
        response=CartSchema,
        query=CustomerQuerySchema,
        errors=((404, "`not_found`: unknown customer, or another customer's cart"),),
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
        errors=_PLACEMENT_ERRORS,
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
        errors=_PLACEMENT_ERRORS,
        idempotency="required",
    ),
    Operation(
        "GET",
        "/orders",
        "List orders, newest first (customer users: their own)",
        "orders",
        response=OrderPageSchema,
        query=OrderListQuerySchema,
        errors=((403, "`forbidden`: a customer user naming another customer"),),
    ),
    Operation("GET", "/orders/{order_id}", "Get an order", "orders", response=OrderSchema),
    Operation(
        "POST",
        "/orders/{order_id}/cancel",
        "Cancel: CREATED any time, CONFIRMED within the cancel window before payment settles",
        "orders",
        body=CancelOrderSchema,
        body_required=False,
        response=OrderSchema,
        errors=(
            (
                409,
                "`invalid_state_transition` (`current_status`), `cancel_window_expired`, `payment_in_progress`, "
                + _IN_FLIGHT,
            ),
            _MISMATCH,
        ),
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
        errors=((409, "`duplicate_email`: a live customer has this email"),),
    ),
    Operation(
        "GET",
        "/customers",
        "List or search customers",
        "customers",
        ADMIN,
        response=CustomerPageSchema,
        query=CustomerSearchQuerySchema,
    ),
    Operation(
        "GET",
        "/customers/{customer_id}",
        "Get a customer (admins, or that customer's user)",
        "customers",
        response=CustomerSchema,
    ),
    Operation(
        "PUT",
        "/customers/{customer_id}",
        "Replace a customer (an omitted phone is cleared)",
        "customers",
        ADMIN,
        body=CustomerInSchema,
        response=CustomerSchema,
        errors=((409, "`duplicate_email`: a live customer has this email"),),
    ),
    Operation(
        "PATCH",
        "/customers/{customer_id}",
        "Change some of a customer's fields (at least one)",
        "customers",
        ADMIN,
        body=CustomerPatchSchema,
        response=CustomerSchema,
        errors=((409, "`duplicate_email`: a live customer has this email"),),
    ),
    Operation("DELETE", "/customers/{customer_id}", "Delete a customer (soft)", "customers", ADMIN, status=204),
)

# Routes that answer without calling anything (no 503).
NO_DEPENDENCY_PATHS = {"/health", "/openapi.json", "/docs", DOCS_ASSETS_PATH + "/{asset}"}
_NOT_FROM_ORIGIN = (
    "`forbidden`: in AWS, the request did not come through the public endpoint (CloudFront); "
    "on routes for admins or a customer's own data, also a token that may not do this"
)
_UNAVAILABLE = (
    "`dependency_unavailable` (`dependency` names the service that is down), `time_budget_exhausted` (`step`), "
    "or a service's own 503 (`database_unavailable`, `database_busy`); retry after `Retry-After`"
)
_BAD_REQUEST = "`malformed_json`, `validation_error` (every invalid field in `errors`), `idempotency_key_required`"


def _path_parameter(name: str) -> dict[str, Any]:
    if name == "asset":
        return {
            "in": "path",
            "name": name,
            "required": True,
            "schema": {"type": "string", "enum": sorted(SWAGGER_UI_ASSETS)},
        }
    return {"in": "path", "name": name, "required": True, "schema": {"type": "integer", "minimum": 1}}


def _operation_spec(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": _operation_id(op)}
    parameters: list[dict[str, Any]] = [_path_parameter(name) for name in _path_names(op.path)]
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if op.idempotency:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": op.idempotency == "required",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": IDEMPOTENCY_KEY_MAX,
                    "pattern": IDEMPOTENCY_KEY_PATTERN,
                },
                "description": "Retries with one key replay the first answer (`Idempotent-Replayed: true`); the key "
                "with another request is a 422. `X-Idempotency-Key`, or `idempotency_key` in the body, may carry "
                "it instead (given in several places, they must be equal).",
            }
        )
    spec["parameters"] = parameters
    if op.body is not None:
        spec["requestBody"] = {
            "required": op.body_required,
            "description": _SHAPE,
            "content": {"application/json": {"schema": _documented_body(op.body)}},
        }
    success: dict[str, Any] = {"description": {200: "OK", 201: "Created", 204: "Deleted"}[op.status]}
    if op.path == "/docs":
        success["content"] = {"text/html": {"schema": {"type": "string"}}}
    elif op.path.startswith(DOCS_ASSETS_PATH):
        success["content"] = {
            "text/css": {"schema": {"type": "string"}},
            "text/javascript": {"schema": {"type": "string"}},
        }
    elif op.response is not None:
        success["content"] = {"application/json": {"schema": op.response}}
    elif op.path == "/openapi.json":
        success["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {str(op.status): success}
    for status, description in op.errors:
        responses[str(status)] = documented_problem(status, description)
    if op.body is not None or op.query is not None or op.idempotency:
        responses.setdefault("400", documented_problem(400, _BAD_REQUEST))
    if op.access != PUBLIC:
        spec["security"] = [{"bearerAuth": []}]
    if op.access == ADMIN:
        responses.setdefault("403", documented_problem(403, "`forbidden`: not an admin"))
        spec["description"] = "Admin only."
    spec["responses"] = responses
    return spec


def _documented_body(schema: type[ma.Schema]) -> ma.Schema | type[ma.Schema]:
    """The body as documented: `idempotency_key` is accepted in a body for older clients, but the
    document names only the header (both given, they must be equal: a rule OpenAPI cannot state)."""
    if "idempotency_key" in schema._declared_fields:
        return schema(exclude=("idempotency_key",))
    return schema


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _operation_id(op: Operation) -> str:
    words = [part.strip("{}").replace(".", "_").replace("-", "_") for part in op.path.split("/") if part]
    return "_".join([op.method.lower(), *words]) or op.method.lower()


@cache
def openapi_document() -> dict[str, Any]:
    spec = APISpec(
        title=TITLE,
        version=VERSION,
        openapi_version="3.0.3",
        plugins=[
            MarshmallowPlugin(),
            # API Gateway refuses a body over 10 MiB on any route (413), before the BFF sees it.
            # Only user tokens here: 403 is listed where a route can refuse a valid one (`errors`, admin).
            ProblemResponsesPlugin(
                unavailable=_UNAVAILABLE,
                no_dependency_paths=NO_DEPENDENCY_PATHS,
                # In AWS, a request that did not come through CloudFront (and WAF) is a 403 on any route.
                always={403: _NOT_FROM_ORIGIN, 413: None, 414: None, 431: None},
                secured=(401,),
            ),
        ],
        info={"description": DESCRIPTION},
    )
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema(PROBLEM_SCHEMA_NAME, schema=ProblemSchema)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation_spec(op)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def swagger_ui_html() -> str:
    # Relative URLs: right behind any API Gateway stage or custom domain path.
    return swagger_ui_page(title=TITLE, spec_url="openapi.json", assets_url="docs/assets/")
