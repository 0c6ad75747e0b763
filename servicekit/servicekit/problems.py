"""RFC 9457 problem details: the one error shape every service and the BFF return.

`{"type", "title", "status", "detail", "code", "request_id"[, "errors"]}` served as
`application/problem+json`. `code` is the stable machine string clients switch on.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:b2b-platform:problem:"


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_PREFIX + code


def status_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Problem(Exception):
    """An error that ends the request with a problem+json response."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: Mapping[str, list[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.title = title or status_title(status)
        self.detail = detail or self.title
        self.errors = dict(errors) if errors else None
        self.headers = dict(headers) if headers else {}
        self.extra = dict(extra) if extra else {}

    def to_dict(self, request_id: str | None) -> dict[str, Any]:
        return problem_body(
            self.status,
            self.code,
            self.detail,
            title=self.title,
            request_id=request_id,
            errors=self.errors,
            extra=self.extra,
        )


def problem_body(
    status: int,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    request_id: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or status_title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    if errors:
        body["errors"] = dict(errors)
    if extra:
        for key, value in extra.items():
            body.setdefault(key, value)
    return body


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow/webargs nested messages into `{"items.0.qty": ["..."]}`.

    webargs wraps errors by location (`{"json": {...}}`); the location is dropped because the
    client only needs the field path.
    """
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if not prefix and name in {"json", "query", "querystring", "form", "headers", "view_args", "path"}:
                child_prefix = ""
            elif name == "_schema":
                child_prefix = prefix
            else:
                child_prefix = f"{prefix}.{name}" if prefix else name
            for field, msgs in flatten_errors(value, child_prefix).items():
                flat.setdefault(field, []).extend(msgs)
    elif isinstance(messages, (list, tuple)):
        strings = [str(m) for m in messages if not isinstance(m, (Mapping, list, tuple))]
        if strings:
            flat.setdefault(prefix or "body", []).extend(strings)
        for index, item in enumerate(messages):
            if isinstance(item, (Mapping, list, tuple)):
                for field, msgs in flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)).items():
                    flat.setdefault(field, []).extend(msgs)
    elif messages is not None:
        flat.setdefault(prefix or "body", []).append(str(messages))
    return flat


# Constructors for the cases every service shares. Domain-specific ones live with the domain.


def validation_error(errors: Mapping[str, list[str]], detail: str | None = None) -> Problem:
    fields = ", ".join(sorted(errors)) or "request"
    return Problem(400, "validation_error", detail or f"Invalid fields: {fields}", errors=errors)


def bad_request(code: str, detail: str, errors: Mapping[str, list[str]] | None = None) -> Problem:
    return Problem(400, code, detail, errors=errors)


def unauthorized(detail: str = "A valid bearer token is required", code: str = "unauthorized") -> Problem:
    challenge = 'Bearer realm="b2b-platform"'
    if code != "unauthorized":
        challenge += ', error="invalid_token"'
    return Problem(401, code, detail, headers={"WWW-Authenticate": challenge})


def forbidden(detail: str = "This token does not grant access to this resource") -> Problem:
    return Problem(403, "forbidden", detail)


def not_found(resource: str, identifier: Any | None = None) -> Problem:
    detail = f"{resource} {identifier} not found" if identifier is not None else f"{resource} not found"
    return Problem(404, "not_found", detail, extra={"resource": resource.lower()})


def conflict(code: str, detail: str, **extra: Any) -> Problem:
    return Problem(409, code, detail, extra=extra or None)


def dependency_unavailable(dependency: str, detail: str | None = None, retry_after: int = 2) -> Problem:
    return Problem(
        503,
        "dependency_unavailable",
        detail or f"{dependency} is unavailable, try again shortly",
        headers={"Retry-After": str(retry_after)},
        extra={"dependency": dependency},
    )


# A database outage is short-lived by design (the services serve again within a second of its
# return, docs/database-outages.md): ask clients to come back soon.
DATABASE_RETRY_AFTER_SECONDS = 1


def database_unavailable(detail: str = "The database is unavailable, try again shortly") -> Problem:
    return Problem(503, "database_unavailable", detail, headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def database_busy() -> Problem:
    return Problem(
        503,
        "database_busy",
        "The database stayed locked through every retry, try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def idempotency_key_mismatch() -> Problem:
    return Problem(422, "idempotency_key_mismatch", "This Idempotency-Key was already used with a different request")
