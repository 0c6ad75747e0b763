"""What every Flask service shares: app factory base, errors, request ids, access logs, auth.

`create_service_app()` returns a Flask app and a flask-smorest `Api` wired so that:
- every response carries `X-Request-Id` and every request logs one `http_request` line;
- every failure (validation, malformed JSON, unknown route, wrong method, unexpected exception)
  is an RFC 9457 problem, never HTML or a stack trace;
- a database outage is a 503 `database_unavailable` with `Retry-After`, never a 500
  (docs/database-outages.md); a database error that is a bug stays a 500;
- request validation failures are 400 with every field error listed at once;
- `/health`, `/ready`, `/openapi.json` and `/docs` exist; `/docs` serves Swagger UI's files itself;
- the OpenAPI document states every status each route can answer, problems as
  `application/problem+json` (servicekit.openapi, docs/errors-and-limits.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Collection
from functools import wraps
from http import HTTPStatus
from typing import Any

import marshmallow as ma
import orjson
from flask import Flask, Response, current_app, g, request, url_for
from flask.json.provider import JSONProvider
from flask.views import MethodView
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from sqlalchemy.exc import SQLAlchemyError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from .auth import Principal, TokenVerifier, authenticate_bearer
from .contracts import HealthSchema, PageQuerySchema, PaginationSchema, ProblemSchema, page_schema
from .db import is_database_unavailable, is_retryable, mysql_error_code
from .limits import BIGINT_MAX, BODY_BYTES_MAX
from .logging import format_exception, log_event
from .openapi import (
    PROBLEM_DESCRIPTIONS,
    PROBLEM_SCHEMA_NAME,
    SWAGGER_UI_ASSETS,
    ProblemResponsesPlugin,
    documented_problem,
    swagger_ui_asset,
    swagger_ui_page,
)
from .problems import (
    DATABASE_RETRY_AFTER_SECONDS,
    PROBLEM_CONTENT_TYPE,
    Problem,
    database_busy,
    database_unavailable,
    flatten_errors,
    forbidden,
    validation_error,
)
from .request_id import REQUEST_ID_HEADER, accept_or_new, current_request_id, get_request_id

access_log = logging.getLogger("http")
error_log = logging.getLogger("errors")

MAX_BODY_BYTES = BODY_BYTES_MAX


# --- JSON -------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class OrjsonProvider(JSONProvider):
    """orjson for every JSON response: several times faster than the stdlib encoder."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        body = orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS)
        return self._app.response_class(body, mimetype="application/json")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = current_app.response_class(
        orjson.dumps(body, default=_json_default, option=orjson.OPT_NON_STR_KEYS),
        status=status,
        mimetype="application/json",
    )
    if headers:
        response.headers.update(headers)
    return response


# --- Problems ---------------------------------------------------------------------------------


def problem_response(problem: Problem) -> Response:
    response = current_app.response_class(
        orjson.dumps(problem.to_dict(get_request_id()), default=str),
        status=problem.status,
        mimetype=PROBLEM_CONTENT_TYPE,
    )
    for name, value in problem.headers.items():
        response.headers[name] = value
    return response


def _snake(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def problem_from_http_exception(error: HTTPException) -> Problem:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    if status == 404:
        return Problem(404, "not_found", f"No resource at {request.method} {request.path}")
    if status == 405:
        allowed = sorted(getattr(error, "valid_methods", None) or [])
        return Problem(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.path}",
            headers={"Allow": ", ".join(allowed)},
        )
    if status == 413:
        return Problem(413, "payload_too_large", f"Request body exceeds {MAX_BODY_BYTES} bytes")
    if errors and status in (400, 422):
        return validation_error(flatten_errors(errors))
    detail = data.get("message") or error.description or error.name
    return Problem(status, _snake(error.name or "error"), detail)


class Api(SmorestApi):
    ERROR_SCHEMA = ProblemSchema
    # Every status a route can answer is listed on it (servicekit.openapi): no catch-all `default`.
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        """flask-smorest's lazily registered `components.responses` (e.g. the `BAD_REQUEST` that
        `@blp.arguments` refers to), as problems."""
        for status in HTTPStatus:
            if 400 <= status < 600:
                response = documented_problem(status, PROBLEM_DESCRIPTIONS.get(status, status.phrase))
            else:
                response = {"description": status.phrase}
            self.spec.components.response(status.name, response, lazy=True)

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return problem_response(problem_from_http_exception(error))


class ProblemParser(FlaskParser):
    """webargs parser whose failures are 400 problems listing every field error."""

    DEFAULT_VALIDATION_STATUS = 400

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        raise validation_error(flatten_errors(error.messages))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        raise Problem(
            400,
            "malformed_json",
            "Request body is not valid JSON",
            errors={"body": ["Invalid JSON body."]},
        )

    def _raw_load_json(self, req):
        # Accept a JSON body whatever the Content-Type says: `curl -d` sends form encoding by
        # default, and "missing field" errors for a well-formed JSON body would mislead.
        data = req.get_data(cache=True)
        if not data or not data.strip():
            return ma.missing
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            # orjson reports undecodable bytes with an empty `doc`, which webargs would
            # otherwise read as "no body at all".
            return self._handle_invalid_json_error(exc, req)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = ProblemParser()


def problem_responses(blp: SmorestBlueprint, *statuses: int, **descriptions: str) -> Callable:
    """Document problem answers of a view beyond those its shape implies (servicekit.openapi):
    `@problem_responses(blp, 409, s409="`duplicate_sku`")`; `descriptions` by `s<status>=`."""

    def decorator(view: Callable) -> Callable:
        for status in statuses:
            view = blp.alt_response(
                status,
                schema=ProblemSchema,
                content_type=PROBLEM_CONTENT_TYPE,
                description=descriptions.get(f"s{status}", PROBLEM_DESCRIPTIONS.get(status, "A problem")),
            )(view)
        return view

    return decorator


# --- Shared schemas ---------------------------------------------------------------------------


# --- Auth -------------------------------------------------------------------------------------

_VERIFIER_KEY = "servicekit.verifier"
BEARER_SECURITY = [{"bearerAuth": []}]


def authenticate() -> Principal:
    verifier: TokenVerifier = current_app.extensions[_VERIFIER_KEY]
    principal = authenticate_bearer(request.headers.get("Authorization"), verifier)
    g.principal = principal
    return principal


def requires(*roles: str, callers: Collection[str] | None = None) -> Callable:
    """Decorate a view: a valid token whose role is one of `roles` (admin, customer, service).

    No or bad token is 401; a valid token with another role is 403 (so a user token on an
    `/internal` route is refused even when it is perfectly valid). A route that takes service
    tokens names the services it takes (`callers`, least privilege; docs/auth.md): any other
    service's valid token is a 403.
    """
    allowed = frozenset(roles or ("admin", "customer"))
    allowed_callers = None if callers is None else frozenset(callers)
    if allowed_callers is not None and "service" not in allowed:
        raise ValueError("callers= names services, but the route does not take service tokens")
    if "service" in allowed and not allowed_callers:
        raise ValueError("a route that takes service tokens must name its callers (callers=...)")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.role not in allowed:
                raise forbidden(f"Role {principal.role!r} may not call this endpoint")
            if principal.kind == "service" and principal.subject not in allowed_callers:
                raise forbidden(f"Service {principal.subject!r} may not call this endpoint")
            return view(*args, **kwargs)

        # What the route accepts, for whatever answers it without Flask (servicekit.replay).
        wrapper.accepted_roles = allowed  # type: ignore[attr-defined]
        wrapper.accepted_callers = allowed_callers or frozenset()  # type: ignore[attr-defined]
        return SmorestBlueprint.doc(security=BEARER_SECURITY)(wrapper)

    return decorator


def current_principal() -> Principal:
    return g.principal


def request_principal() -> Principal | None:
    """The authenticated caller of this request, if there is a request and it was authenticated
    (schemas use it to list "customer_id is required" with every other field error)."""
    from flask import has_request_context

    return g.get("principal") if has_request_context() else None


def scoped_customer_id(principal: Principal, requested: int | None, *, field: str = "customer_id") -> int:
    """The customer a request acts for.

    Customer users act for themselves (naming another customer is a 403); admins and services
    must name the customer explicitly.
    """
    if principal.is_privileged:
        if requested is None:
            raise validation_error({field: [f"{field} is required for admin and service callers."]})
        return requested
    if requested is not None and requested != principal.customer_id:
        raise forbidden("A customer user may only act for its own customer")
    assert principal.customer_id is not None
    return principal.customer_id


def log_context(**fields: Any) -> None:
    """Attach ids (order_id, customer_id, ...) to this request's `http_request` log line."""
    existing = g.get("log_fields")
    if existing is None:
        g.log_fields = dict(fields)
    else:
        existing.update(fields)


# --- App factory ------------------------------------------------------------------------------


class ServiceFlask(Flask):
    """Flask, minus a per-call cost: `ensure_sync` asks `inspect` whether a function is a
    coroutine on every call of every view, hook and flask-smorest wrapper (about ten per
    request); the answer never changes, so it is remembered per function."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._is_coroutine: dict[Any, bool] = {}

    def ensure_sync(self, func: Callable) -> Callable:
        key = getattr(func, "__func__", func)  # a bound method is new on every access; its function is not
        try:
            is_coroutine = self._is_coroutine[key]
        except KeyError:
            is_coroutine = super().ensure_sync(func) is not func
            if len(self._is_coroutine) < 10_000:
                self._is_coroutine[key] = is_coroutine
        except TypeError:  # unhashable callable: ask every time
            return super().ensure_sync(func)
        return super().ensure_sync(func) if is_coroutine else func


def create_service_app(
    service_name: str,
    *,
    title: str,
    version: str,
    description: str,
    verifier: TokenVerifier | None,
    readiness_check: Callable[[], None],
) -> tuple[Flask, Api]:
    app = ServiceFlask(service_name)
    app.json = OrjsonProvider(app)
    app.url_map.strict_slashes = False
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE=title,
        API_VERSION=version,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": description + _DOCUMENT_NOTE},
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
            },
        },
    )
    app.extensions[_VERIFIER_KEY] = verifier
    app.extensions["servicekit.service_name"] = service_name

    _install_request_hooks(app)
    plugin = ProblemResponsesPlugin(
        unavailable="`database_unavailable` or `database_busy`: the database is down or stayed locked (`Retry-After`)",
        no_dependency_paths={"/health"},
    )
    api = Api(app, spec_kwargs={"extra_plugins": [plugin]})
    api.spec.components.schema(PROBLEM_SCHEMA_NAME, schema=ProblemSchema)
    _install_docs(app, title)
    app.register_error_handler(Problem, problem_response)
    app.register_error_handler(Exception, _unexpected_error)
    app.register_error_handler(SQLAlchemyError, _database_error)
    api.register_blueprint(_health_blueprint(service_name, readiness_check))
    return app, api


_DOCUMENT_NOTE = (
    "\n\nEvery answer carries `X-Request-Id` (the caller's, when it is at most 128 characters of "
    "`[A-Za-z0-9._-]`; else a new one). Errors are RFC 9457 problems (`application/problem+json`) "
    "with a stable `code`; each operation lists every status it can answer."
)


def _install_docs(app: Flask, title: str) -> None:
    """`/docs`: Swagger UI with its files served from here (`/docs/assets/...`), no CDN."""

    def docs_page() -> Response:
        page = swagger_ui_page(
            title=title,
            spec_url=url_for("api-docs.openapi_json"),
            assets_url=url_for("swagger_ui_asset", name="x")[: -len("x")],
        )
        return current_app.response_class(page, mimetype="text/html")

    def docs_asset(name: str) -> Response:
        content = swagger_ui_asset(name)
        if content is None:
            raise Problem(404, "not_found", f"No resource at {request.method} {request.path}")
        response = current_app.response_class(content, content_type=SWAGGER_UI_ASSETS[name])
        response.cache_control.public = True
        response.cache_control.max_age = 86400
        return response

    app.add_url_rule("/docs", "swagger_ui", docs_page, methods=["GET"])
    app.add_url_rule("/docs/assets/<name>", "swagger_ui_asset", docs_asset, methods=["GET"])


def _unexpected_error(error: Exception) -> Response:
    if isinstance(error, HTTPException):  # pragma: no cover - handled by Api
        return problem_response(problem_from_http_exception(error))
    # Rendered and redacted here, not left to the handler: a database error's text quotes its
    # statement (and, on an engine without hide_parameters, the values: hashes, passwords).
    log_event(
        error_log,
        "unhandled_exception",
        logging.ERROR,
        method=request.method,
        path=request.path,
        error=type(error).__name__,
        exception=format_exception((type(error), error, error.__traceback__)),
    )
    return problem_response(Problem(500, "internal_error", "An unexpected error occurred; it has been logged"))


def _database_error(error: SQLAlchemyError) -> Response:
    """An outage (or locks still held after every retry) is a 503; any other database error is a bug."""
    if is_database_unavailable(error):
        problem = database_unavailable()
    elif is_retryable(error):
        problem = database_busy()
    else:
        return _unexpected_error(error)
    log_event(
        error_log,
        problem.code,
        logging.WARNING,
        error=type(error).__name__,
        mysql_error=mysql_error_code(error),
        method=request.method,
        path=request.path,
    )
    return problem_response(problem)


def log_http_request(
    *,
    request_id: str,
    method: str,
    path: str,
    route: str | None,
    status: int,
    started: float | None,
    caller: str | None = None,
    ids: dict[str, Any] | None = None,
) -> None:
    """The one `http_request` line per request (docs/api.md), whoever answered it."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, Any] = {
        "request_id": request_id,
        "method": method,
        "path": path,
        "route": route,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
    }
    if caller is not None:
        fields["caller"] = caller
    if ids:
        fields.update(ids)
    access_log.info("http_request", extra={"fields": fields, "request_id": request_id})


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def _start_request() -> None:
        request_id = accept_or_new(request.headers.get(REQUEST_ID_HEADER))
        g.request_id = request_id
        g.request_started = time.perf_counter()
        g.request_id_token = current_request_id.set(request_id)

    @app.after_request
    def _finish_request(response: Response) -> Response:
        request_id = g.get("request_id") or get_request_id() or accept_or_new(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        principal = g.get("principal")
        log_http_request(
            request_id=request_id,
            method=request.method,
            path=request.path,
            route=request.url_rule.rule if request.url_rule else None,
            status=response.status_code,
            started=g.get("request_started"),
            caller=principal.identity if principal is not None else None,
            ids=g.get("log_fields"),
        )
        return response

    @app.teardown_request
    def _reset_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            current_request_id.reset(token)


def _health_blueprint(service_name: str, readiness_check: Callable[[], None]) -> Blueprint:
    blp = Blueprint("health", __name__, description="Liveness and readiness probes")

    @blp.route("/health")
    class Health(MethodView):
        @blp.response(200, HealthSchema)
        def get(self):
            """Process is up"""
            return {"status": "ok", "service": service_name}

    @blp.route("/ready")
    class Ready(MethodView):
        @blp.response(200, HealthSchema)
        @problem_responses(blp, 503, s503="`not_ready`: the database does not answer (`Retry-After`)")
        def get(self):
            """Database answers"""
            try:
                readiness_check()
            except Exception as exc:  # any failure means "not ready", whatever the driver raised
                log_event(error_log, "readiness_failed", logging.WARNING, error=type(exc).__name__)
                raise Problem(
                    503,
                    "not_ready",
                    "Database is not reachable",
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
                ) from None
            return {"status": "ready", "service": service_name}

    return blp


def int_path(name: str) -> str:
    """A URL converter for ids that fit a signed BIGINT: `/orders/<int(max=...):order_id>`."""
    return f"<int(max={BIGINT_MAX}):{name}>"


__all__ = [
    "Api",
    "Blueprint",
    "BEARER_SECURITY",
    "PageQuerySchema",
    "PaginationSchema",
    "ProblemSchema",
    "authenticate",
    "create_service_app",
    "current_principal",
    "json_response",
    "log_context",
    "page_schema",
    "problem_response",
    "problem_responses",
    "request_principal",
    "requires",
    "scoped_customer_id",
    "int_path",
]
