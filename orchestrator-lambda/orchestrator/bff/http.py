"""Reading an API Gateway v2 request and writing JSON / problem responses."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from servicekit.http_client import HttpResponse
from servicekit.limits import BIGINT_MAX, BODY_BYTES_MAX
from servicekit.problems import PROBLEM_CONTENT_TYPE, Problem, validation_error

from ..downstream import read_reply

JSON_CONTENT_TYPE = "application/json"
MAX_BODY_BYTES = BODY_BYTES_MAX
# Swagger UI's files under /docs (bff/openapi.py documents the route).
DOCS_ASSETS_PATH = "/docs/assets"


def resolver_template(path: str) -> str:
    """`/orders/{order_id}` → `/orders/<order_id>` (the resolver's spelling)."""
    return path.replace("{", "<").replace("}", ">")


def route_not_found(event: APIGatewayProxyEventV2) -> Problem:
    return Problem(404, "not_found", f"No resource at {event.http_method} {event.path}")


def path_id(event: APIGatewayProxyEventV2, value: str) -> int:
    """An id from the path; anything but a BIGINT-sized positive integer is an unknown route."""
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= BIGINT_MAX:
        raise route_not_found(event)
    return int(value)


def query_pairs(event: APIGatewayProxyEventV2) -> list[tuple[str, str]]:
    """The query string as sent, repeated keys kept (v2 events join them with commas otherwise)."""
    return parse_qsl(event.raw_query_string or "", keep_blank_values=True)


def query_value(event: APIGatewayProxyEventV2, name: str) -> str | None:
    values = [value for key, value in query_pairs(event) if key == name]
    return values[-1] if values else None


def body_bytes(event: APIGatewayProxyEventV2) -> bytes:
    """The body as sent: API Gateway base64-encodes one that is not UTF-8 text."""
    raw = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(raw)
        except (binascii.Error, ValueError):
            return b"\xff"  # not base64 after all: not JSON either
    return raw.encode("utf-8", "surrogatepass")


def json_body(event: APIGatewayProxyEventV2, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object: malformed JSON (undecodable bytes included), a non-object or a
    missing body are 400s, a body over 1 MiB a 413."""
    raw = body_bytes(event)
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload_too_large", f"Request body exceeds {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            raise validation_error({"body": ["A JSON object body is required."]})
        return {}
    try:
        data = orjson.loads(raw)  # bytes: anything not UTF-8 is a JSONDecodeError too
    except orjson.JSONDecodeError:
        raise Problem(
            400, "malformed_json", "Request body is not valid JSON", errors={"body": ["Invalid JSON body."]}
        ) from None
    if not isinstance(data, dict):
        raise validation_error({"body": ["Request body must be a JSON object."]})
    return data


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=JSON_CONTENT_TYPE,
        body=orjson.dumps(body).decode() if body is not None else "",
        headers=dict(headers or {}),
    )


def problem_response(problem: Problem, request_id: str | None) -> Response:
    return Response(
        status_code=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
        body=orjson.dumps(problem.to_dict(request_id), default=str).decode(),
        headers=dict(problem.headers),
    )


def relay(response: HttpResponse, dependency: str, *, user_credentials: bool = False) -> Response:
    """A downstream answer for our caller: 2xx as sent, problems passed through (raised)."""
    reply = read_reply(response, dependency, user_credentials=user_credentials)
    if reply.status == 204:
        return Response(status_code=204, content_type=None, body="", headers=dict(reply.headers))
    return json_response(reply.body, reply.status, reply.headers)
