"""What every view module shares: the service context, problem docs, the idempotency header."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from servicekit.contracts import IDEMPOTENCY_KEY_PATTERN, is_valid_idempotency_key
from servicekit.problems import Problem, validation_error
from servicekit.web import problem_responses

from ..services.context import ServiceContext
from ..services.idempotency import MAX_KEY_LENGTH, Outcome

__all__ = ["idempotency_key_parameters", "problem_responses", "read_idempotency_key", "service_context"]

CONTEXT_KEY = "orders_service.context"


def service_context() -> ServiceContext:
    return current_app.extensions[CONTEXT_KEY]


IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_ALIAS = "X-Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"


def idempotency_key_parameters(*, required: bool) -> list[dict[str, Any]]:
    """OpenAPI header parameters for `@blp.doc(parameters=...)`.

    The alias is described, not declared: OpenAPI cannot say "this header or that one, equal if
    both", and declared as two optional headers a client could read them as independent."""
    return [
        {
            "in": "header",
            "name": IDEMPOTENCY_KEY_HEADER,
            "required": required,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_KEY_LENGTH,
                "pattern": IDEMPOTENCY_KEY_PATTERN,
            },
            "description": "Retries with the same key and request replay the stored response "
            f"(`{REPLAYED_HEADER}: true`); the same key with another request is a 422. Kept 24 h. "
            f"`{IDEMPOTENCY_KEY_ALIAS}` is accepted in its place (both given: they must be equal).",
        }
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
    if not is_valid_idempotency_key(key):
        raise validation_error(
            {IDEMPOTENCY_KEY_HEADER: [f"Must be 1 to {MAX_KEY_LENGTH} printable ASCII characters, no outer spaces."]}
        )
    return key


def outcome_response(outcome: Outcome) -> tuple[Any, int] | tuple[Any, int, dict[str, str]]:
    if outcome.replayed:
        return outcome.body, outcome.status, {REPLAYED_HEADER: "true"}
    return outcome.body, outcome.status
