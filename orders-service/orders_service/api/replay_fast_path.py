"""Confirm replays answered from memory, in front of Flask.

A retry of `POST /orders/{order_id}/confirm` whose key this process has already replayed is
answered from `ReplayCache` (services/idempotency.py) by a plain WSGI callable: the same status,
body and headers as the view (`Idempotent-Replayed: true`, `X-Request-Id`) and the same
`http_request` log line, for a fraction of the cost of the Flask request cycle (routing, request
context, hooks, flask-smorest's wrappers), which is most of what a replay costs.

It answers only what it is sure of: a valid token of a caller the view takes (the verifier's own
cache; not a service limited to other routes), a well-formed key, no body, a canonical order id,
and a cache hit for exactly this request. Anything else (no or bad token, a key used for another
request, an unknown key, an odd path) goes to Flask unchanged, which answers it as it always does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from servicekit.auth import InvalidToken, TokenVerifier, bearer_token
from servicekit.contracts import is_valid_idempotency_key
from servicekit.problems import Problem
from servicekit.request_id import REQUEST_ID_HEADER, accept_or_new
from servicekit.web import BIGINT_MAX, log_http_request

from ..config import BFF_CALLER
from ..services.idempotency import IdempotentRequest, ReplayCache
from ..services.orders import CONFIRM_ROUTE
from .common import REPLAYED_HEADER

# What Flask's url_rule.rule says for this route (the `route` field of the log line).
CONFIRM_RULE = f"/orders/<int(max={BIGINT_MAX}):order_id>/confirm"
_CONFIRM_PATH = re.compile(r"/orders/([1-9][0-9]{0,18})/confirm")
_ROLES = frozenset({"admin", "customer", "service"})  # the view's @requires
_CALLERS = frozenset({BFF_CALLER})  # ... and its callers
_STATUS_LINES = {200: "200 OK", 201: "201 Created"}

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]
log = logging.getLogger(__name__)


class ConfirmReplayFastPath:
    def __init__(self, app: WSGIApp, *, verifier: TokenVerifier, replays: ReplayCache) -> None:
        self.app = app
        self.verifier = verifier
        self.replays = replays

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            answer = self._replay(environ)
        except Exception:  # never worse than Flask: on any surprise, let Flask answer
            log.exception("replay_fast_path_failed")
            answer = None
        if answer is None:
            return self.app(environ, start_response)
        status, body, order_id, customer_id, caller = answer
        request_id = accept_or_new(environ.get("HTTP_X_REQUEST_ID"))
        start_response(
            _STATUS_LINES.get(status) or f"{status} OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                (REPLAYED_HEADER, "true"),
                (REQUEST_ID_HEADER, request_id),
            ],
        )
        log_http_request(
            request_id=request_id,
            method="POST",
            path=environ.get("PATH_INFO") or "",
            route=CONFIRM_RULE,
            status=status,
            started=started,
            caller=caller,
            ids={"order_id": order_id, "customer_id": customer_id},
        )
        return [body]

    def _replay(self, environ: dict[str, Any]) -> tuple[int, bytes, int, Any, str] | None:
        if environ.get("REQUEST_METHOD") != "POST":
            return None
        match = _CONFIRM_PATH.fullmatch(environ.get("PATH_INFO") or "")
        if match is None or environ.get("CONTENT_LENGTH") not in (None, "", "0"):
            return None
        if environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        order_id = int(match.group(1))
        if order_id > BIGINT_MAX:
            return None
        key = _idempotency_key(environ)
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if key is None or token is None:
            return None
        try:
            principal = self.verifier.verify(token)
        except InvalidToken:
            return None
        if principal.role not in _ROLES or not self.verifier.may_call(principal, _CALLERS):
            return None
        request = IdempotentRequest.build(
            caller=principal.identity, route=CONFIRM_ROUTE, key=key, path_params={"order_id": order_id}, body={}
        )
        try:
            outcome = self.replays.get(request)
        except Problem:  # the key belongs to another request: Flask answers the 422
            return None
        if outcome is None or not isinstance(outcome.body, dict):
            return None
        body = orjson.dumps(outcome.body)
        return outcome.status, body, order_id, outcome.body.get("customer_id"), principal.identity


def _idempotency_key(environ: dict[str, Any]) -> str | None:
    """The key exactly as `read_idempotency_key` accepts it, or None (Flask decides the rest)."""
    values = {environ.get("HTTP_IDEMPOTENCY_KEY"), environ.get("HTTP_X_IDEMPOTENCY_KEY")} - {None}
    if len(values) != 1:
        return None
    key = values.pop()
    return key if is_valid_idempotency_key(key) else None
