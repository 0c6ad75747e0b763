"""What every view module shares: the service context, problem docs, the idempotency header."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request

from servicekit.problems import PROBLEM_CONTENT_TYPE, Problem, validation_error
from servicekit.web import Blueprint, ProblemSchema

from ..services.context import ServiceContext
from ..services.idempotency import MAX_KEY_LENGTH, Outcome

CONTEXT_KEY = "orders_service.context"

PROBLEM_DESCRIPTIONS = {
    400: "Malformed body, invalid fields (all listed in `errors`), bad cursor or missing header",
    401: "Missing, invalid or expired bearer token",
    403: "Valid token without the right",
    404: "Unknown resource (`resource` names which)",
    409: "Conflict with the current state",
    422: "Idempotency-Key reused with a different request",
    503: "A dependency is unavailable (`Retry-After`)",
}


def service_context() -> ServiceContext:
    return current_app.extensions[CONTEXT_KEY]


def problem_responses(blp: Blueprint, *statuses: int, **descriptions: str) -> Callable:
    """Document the problem responses a view can return; `descriptions` override by `s409=...`."""

    def decorator(view: Callable) -> Callable:
        for status in statuses:
            view = blp.alt_response(
                status,
                schema=ProblemSchema,
                content_type=PROBLEM_CONTENT_TYPE,
                description=descriptions.get(f"s{status}", PROBLEM_DESCRIPTIONS[status]),
            )(view)
        return view

    return decorator


IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_ALIAS = "X-Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key_parameters(*, required: bool) -> list[dict[str, Any]]:
    """OpenAPI header parameters for `@blp.doc(parameters=...)`."""
    schema = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}
    return [
        {
            "in": "header",
            "name": IDEMPOTENCY_KEY_HEADER,
            "required": required,
            "schema": schema,
            "description": "Retries with the same key and request replay the stored response "
            f"(`{REPLAYED_HEADER}: true`); the same key with another request is a 422. Kept 24 h.",
        },
        {
            "in": "header",
            "name": IDEMPOTENCY_KEY_ALIAS,
            "required": False,
            "schema": schema,
            "description": f"Alias of `{IDEMPOTENCY_KEY_HEADER}`",
        },
    ]


def read_idempotency_key(*, required: bool) -> str | None:
    values = {request.headers.get(name) for name in (IDEMPOTENCY_KEY_HEADER, IDEMPOTENCY_KEY_ALIAS)} - {None}
    if not values:
        if required:
            raise Problem(
                400,
                "idempotency_key_required",
                f"This endpoint requires an {IDEMPOTENCY_KEY_HEADER} header",
                errors={IDEMPOTENCY_KEY_HEADER: ["Missing header."]},
            )
        return None
    if len(values) > 1:
        raise validation_error(
            {IDEMPOTENCY_KEY_HEADER: [f"{IDEMPOTENCY_KEY_HEADER} and {IDEMPOTENCY_KEY_ALIAS} differ."]}
        )
    key = values.pop()
    if not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise validation_error({IDEMPOTENCY_KEY_HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} characters."]})
    return key


def outcome_response(outcome: Outcome) -> tuple[Any, int] | tuple[Any, int, dict[str, str]]:
    if outcome.replayed:
        return outcome.body, outcome.status, {REPLAYED_HEADER: "true"}
    return outcome.body, outcome.status
