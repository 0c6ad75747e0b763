"""BFF Lambda entry point (API Gateway HTTP API, payload v2).

Thin: pick the request id (the client's if sane, else a new one), resolve the route under it and
inside the invocation's time budget (every downstream call fits in it, so the client gets our
problem body rather than API Gateway's bare 503 at the timeout), stamp `X-Request-Id` on the
answer, and log one `http_request` line.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from servicekit.request_id import REQUEST_ID_HEADER, accept_or_new

from ..budget import invocation_budget
from ..config import get_settings
from ..observability import logger, metrics, noted, request_scope, tracer
from . import routes  # noqa: F401  (registers the routes on `app`)
from .app import app


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = accept_or_new(_header(event, REQUEST_ID_HEADER))
    started = time.perf_counter()
    with request_scope(request_id), invocation_budget(context, get_settings().lambda_time_margin_seconds):
        response = app.resolve(event, context)
        response.setdefault("headers", {})[REQUEST_ID_HEADER] = request_id
        http = (event.get("requestContext") or {}).get("http") or {}
        logger.info(
            "http_request",
            extra={
                "method": http.get("method"),
                "path": event.get("rawPath") or http.get("path"),
                "status": response.get("statusCode"),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **noted(),
            },
        )
    return response


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
