"""What every OpenAPI document of the platform shares, Flask-free (the BFF Lambda uses it too).

- `ProblemResponsesPlugin`: an apispec plugin that documents the problem answers every operation
  can give by its shape (a secured route: 401 and 403; parameters: 400; a body: 400 and 413; a
  path id: 404; any request: 414 and 431; a route that needs its dependencies: 503), each as
  `application/problem+json` with the `Problem` schema. Routes document their own codes (409,
  422, ...) on top. It also adds a schema's `OPENAPI_EXTRA` (e.g. `minProperties`).
- Swagger UI, served by the service itself: the page and its assets, from the files the
  `flask-swagger-ui` package ships (so `/docs` works with no internet access).

docs/errors-and-limits.md lists every code, status and limit.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection, Mapping
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

import orjson
from apispec import BasePlugin

from .limits import BODY_BYTES_MAX, HEADER_FIELD_SIZE_MAX, HEADER_FIELDS_MAX, REQUEST_LINE_MAX
from .problems import PROBLEM_CONTENT_TYPE

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA_REF = {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}

RETRY_AFTER_HEADER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}
}
WWW_AUTHENTICATE_HEADER = {
    "WWW-Authenticate": {"description": '`Bearer realm="b2b-platform"`', "schema": {"type": "string"}}
}

PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "`malformed_json` (the body is not JSON) or `validation_error` (every invalid field in `errors`)",
    401: "`unauthorized` (no bearer token) or `invalid_token` (bad, expired or unknown-key token)",
    403: "`forbidden`: a valid token without the right to this route or resource",
    404: "`not_found`: no such resource (`resource` says which kind), or no such id",
    409: "A conflict with the current state",
    413: f"`payload_too_large`: a body over {BODY_BYTES_MAX} bytes",
    414: f"`uri_too_long`: a request line over {REQUEST_LINE_MAX} bytes",
    422: "`idempotency_key_mismatch`: the key was used with a different request",
    429: "`too_many_attempts`: too many failed logins; retry after `Retry-After` seconds",
    431: f"`header_fields_too_large`: more than {HEADER_FIELDS_MAX} header fields, or one over "
    f"{HEADER_FIELD_SIZE_MAX} bytes",
    503: "A dependency is unavailable; retry after `Retry-After` seconds",
}
_HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    401: WWW_AUTHENTICATE_HEADER,
    429: RETRY_AFTER_HEADER,
    503: RETRY_AFTER_HEADER,
}


def documented_problem(status: int, description: str | None = None) -> dict[str, Any]:
    """One documented problem answer: `application/problem+json` with the `Problem` schema."""
    response: dict[str, Any] = {
        "description": description or PROBLEM_DESCRIPTIONS.get(status, "A problem"),
        "content": {PROBLEM_CONTENT_TYPE: {"schema": PROBLEM_SCHEMA_REF}},
    }
    if status in _HEADERS_BY_STATUS:
        response["headers"] = _HEADERS_BY_STATUS[status]
    return response


class ProblemResponsesPlugin(BasePlugin):
    """Document the problem answers an operation can give by its shape (see the module doc).

    `unavailable` describes the 503 of every operation but those on `no_dependency_paths` (e.g.
    `/health`, which needs nothing); `always` are the statuses the HTTP server in front answers
    for any request (a mapping gives them their own descriptions); `secured` those of a route
    that takes a bearer token. A status the operation documents itself keeps its own entry.
    """

    def __init__(
        self,
        *,
        unavailable: str,
        no_dependency_paths: Collection[str] = (),
        always: Collection[int] | Mapping[int, str | None] = (414, 431),
        secured: Collection[int] = (401, 403),
    ) -> None:
        super().__init__()
        self.unavailable = unavailable
        self.no_dependency_paths = frozenset(no_dependency_paths)
        self.always: dict[int, str | None] = dict(always) if isinstance(always, Mapping) else dict.fromkeys(always)
        self.secured = tuple(secured)

    def schema_helper(self, name: str, definition: dict, **kwargs: Any) -> dict | None:
        schema = kwargs.get("schema")
        extra = getattr(schema, "OPENAPI_EXTRA", None)
        return dict(extra) if extra else None

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in self._implied(path or "", operation).items():
                key = str(status)
                existing = responses.get(key, responses.get(status))  # flask-smorest keys by int
                if existing is None:
                    responses[key] = documented_problem(status, description)
                elif isinstance(existing, dict) and "$ref" not in existing and status in _HEADERS_BY_STATUS:
                    existing.setdefault("headers", _HEADERS_BY_STATUS[status])

    def _implied(self, path: str, operation: Mapping[str, Any]) -> dict[int, str | None]:
        implied: dict[int, str | None] = dict(self.always)
        parameters = operation.get("parameters") or []
        if operation.get("security"):
            implied.update(dict.fromkeys(self.secured))
        if operation.get("requestBody"):
            implied.update({400: None, 413: None})
        if any(_may_be_refused(p) for p in parameters):
            implied[400] = None
        if "{" in path:
            implied[404] = None
        if path not in self.no_dependency_paths:
            implied[503] = self.unavailable
        return implied


def _may_be_refused(parameter: Any) -> bool:
    """A query or header parameter with a value that can be wrong (X-Request-Id is replaced, never refused)."""
    if not isinstance(parameter, dict) or parameter.get("in") not in ("query", "header"):
        return False
    return str(parameter.get("name", "")).lower() != "x-request-id"


# --- Swagger UI ---------------------------------------------------------------------------------

SWAGGER_UI_PACKAGE = "flask_swagger_ui"  # its `dist/` folder is Swagger UI's own distribution
SWAGGER_UI_ASSETS: dict[str, str] = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui-standalone-preset.js": "text/javascript; charset=utf-8",
}


@cache
def _swagger_ui_dist() -> Path:
    # Located, not imported: the package's __init__ imports Flask, which the Lambdas do not need.
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{SWAGGER_UI_PACKAGE} is not installed: /docs needs its Swagger UI files")
    return Path(next(iter(spec.submodule_search_locations))) / "dist"


@cache
def swagger_ui_asset(name: str) -> bytes | None:
    """The bytes of one Swagger UI asset, or None if `name` is not one we serve."""
    if name not in SWAGGER_UI_ASSETS:
        return None
    return (_swagger_ui_dist() / name).read_bytes()


def swagger_ui_page(*, title: str, spec_url: str, assets_url: str) -> str:
    """The /docs page: Swagger UI for `spec_url`, its files from `assets_url` (ends with `/`)."""
    assets = escape(assets_url, quote=True)
    # Inside <script>: "</" must not close the element early.
    config = orjson.dumps({"url": spec_url, "dom_id": "#swagger-ui", "deepLinking": True}).decode()
    config = config.replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{assets}swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}swagger-ui-bundle.js"></script>
<script src="{assets}swagger-ui-standalone-preset.js"></script>
<script>
window.ui = SwaggerUIBundle(Object.assign({config}, {{
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"
}}));
</script>
</body>
</html>
"""
