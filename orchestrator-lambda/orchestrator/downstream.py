"""Reading what customers-service and orders-service answer.

A 2xx is data. A problem body keeps its status and fields and is handed to our caller as is
(`DownstreamProblem`), with our request id. Anything else (HTML, empty 5xx, a 502 page) means
the dependency is not working: `DependencyUnavailable`, a 503 with `Retry-After`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from servicekit.http_client import DependencyUnavailable, HttpResponse
from servicekit.problems import Problem

from .observability import logger

# Headers of a downstream answer that mean something to our caller.
PASSED_THROUGH_HEADERS = ("Retry-After", "Idempotent-Replayed", "Location", "WWW-Authenticate", "Allow")


class DownstreamProblem(Problem):
    """A downstream problem answer, passed through with its status and body."""

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        super().__init__(status, str(body.get("code") or "downstream_error"), str(body.get("detail") or ""))
        self.body = dict(body)
        self.headers = dict(headers)

    def to_dict(self, request_id: str | None) -> dict[str, Any]:
        return {**self.body, "request_id": request_id}


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def replayed(self) -> bool:
        return str(self.headers.get("Idempotent-Replayed", "")).lower() == "true"


# A 503 tells the client when to come back, also when the service that answered it did not.
DEFAULT_RETRY_AFTER_SECONDS = 2


def _passed_headers(response: HttpResponse) -> dict[str, str]:
    headers = {name: response.headers[name] for name in PASSED_THROUGH_HEADERS if name in response.headers}
    if response.status_code == 503:
        headers.setdefault("Retry-After", str(DEFAULT_RETRY_AFTER_SECONDS))
    return headers


def _json_or_none(response: HttpResponse) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def problem_code(response: HttpResponse) -> str | None:
    body = _json_or_none(response)
    return body.get("code") if isinstance(body, dict) else None


def read_reply(response: HttpResponse, dependency: str, *, user_credentials: bool = False) -> Reply:
    """The 2xx reply, or raise the problem our caller should see.

    `user_credentials` is true when the caller's own credentials were forwarded (login): then a
    401 is the caller's answer. Otherwise a 401 means the dependency refused *our* service
    token, a deployment fault the caller cannot fix: logged, and a 500.
    """
    body = _json_or_none(response)
    status = response.status_code
    if 200 <= status < 300:
        if body is None and status != 204 and response.content:
            raise DependencyUnavailable(dependency, f"{dependency} answered {status} with a body that is not JSON")
        return Reply(status, body, _passed_headers(response))
    if status == 401 and not user_credentials:
        logger.error("service_token_rejected", extra={"dependency": dependency, "status": status})
        raise Problem(500, "internal_error", f"{dependency} refused the orchestrator's service credentials")
    if (
        isinstance(body, dict)
        and isinstance(body.get("code"), str)
        and 400 <= status < 600
        and status not in (502, 504)
    ):
        raise DownstreamProblem(status, body, _passed_headers(response))
    logger.warning("downstream_unexpected_answer", extra={"dependency": dependency, "status": status})
    raise DependencyUnavailable(dependency, f"{dependency} answered {status} unexpectedly")
