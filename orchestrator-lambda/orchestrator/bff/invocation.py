"""The BFF's invocation (API Gateway HTTP API, payload v2); `handler.py` is the entry point.

Thin: pick the request id (the client's if sane, else a new one), refuse a request that did not
come through CloudFront (below), resolve the route under the request id and inside the
invocation's time budget (every downstream call fits in it, so the client gets our problem body
rather than API Gateway's bare 503 at the timeout), stamp `X-Request-Id` on the answer, and log
one `http_request` line.

CloudFront (with AWS WAF) is the only way in: it adds a secret header to every request it
forwards (`X-Origin-Verify`, from Secrets Manager; template.yaml), and a request without it
reached the execute-api endpoint directly, past WAF: a 403. With no origin secret configured
(local runs) every request is taken.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson
from aws_lambda_powertools.utilities.typing import LambdaContext

from servicekit.problems import PROBLEM_CONTENT_TYPE, Problem
from servicekit.request_id import REQUEST_ID_HEADER, accept_or_new

from ..budget import invocation_budget
from ..config import get_settings
from ..observability import count, logger, metrics, noted, request_scope
from . import routes  # noqa: F401  (registers the routes on `app`)
from .app import app
from .dependencies import dependencies

ORIGIN_HEADER = "X-Origin-Verify"


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def from_origin(event: dict[str, Any]) -> bool:
    """Whether the request carries CloudFront's origin header (always true with none configured)."""
    try:
        accepted = dependencies().origin_secrets
    except Exception:  # configuration that does not load fails every route itself (/ready says so)
        return True
    if accepted is None:
        return True
    sent = (_header(event, ORIGIN_HEADER) or "").encode()
    return any(hmac.compare_digest(sent, value.encode()) for value in accepted)


def _refused(request_id: str) -> dict[str, Any]:
    """A 403 problem, answered before any route runs."""
    count("OriginRefused")
    problem = Problem(403, "forbidden", "Requests must come through the public endpoint")
    return {
        "statusCode": problem.status,
        "headers": {"Content-Type": PROBLEM_CONTENT_TYPE},
        "body": orjson.dumps(problem.to_dict(request_id)).decode(),
        "isBase64Encoded": False,
    }


def handle(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = accept_or_new(_header(event, REQUEST_ID_HEADER))
    started = time.perf_counter()
    with request_scope(request_id), invocation_budget(context, get_settings().lambda_time_margin_seconds):
        response = app.resolve(event, context) if from_origin(event) else _refused(request_id)
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
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
