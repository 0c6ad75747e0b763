"""Retries of idempotent requests answered from memory, before the web framework runs.

A retry of a keyed write whose completed answer this process has already replayed (it is in the
`ReplayCache`, servicekit.idempotency) is answered by a plain WSGI middleware: the same status,
body and headers as the view (`Idempotent-Replayed: true`, `X-Request-Id`) and the same
`http_request` log line, for a fraction of the cost of the Flask request cycle (routing, request
context, hooks, flask-smorest's wrappers), which is most of what a replay costs
(docs/adr/0003-in-process-replay-cache.md).

It serves every idempotent route a service registers (`ReplayRoute`), and answers only what it is
sure of: a valid token that the route's own `requires` accepts (its roles and callers, read from
the view), a well-formed key, a body that the route's schema validates into the very request that
was stored, and a cache hit for exactly that request. Anything else (no or bad token, a key used
for another request, an unknown key, an invalid body, an odd path) goes to Flask unchanged, which
answers it as it always does.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .auth import InvalidToken, Principal, TokenVerifier, bearer_token
from .contracts import is_valid_idempotency_key
from .idempotency import IdempotentRequest, ReplayCache
from .limits import BIGINT_MAX, BODY_BYTES_MAX
from .problems import Problem
from .request_id import REQUEST_ID_HEADER, accept_or_new
from .web import log_http_request

REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_HEADERS = ("HTTP_IDEMPOTENCY_KEY", "HTTP_X_IDEMPOTENCY_KEY")
_STATUS_LINES = {200: "200 OK", 201: "201 Created"}

WSGIApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]
BodyLoader = Callable[[Any], Mapping[str, Any]]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayRoute:
    """One idempotent route, as its view builds its `IdempotentRequest`.

    `path` matches PATH_INFO with named integer groups (the path parameters); `route` is the key's
    route template (`POST /orders/{order_id}/confirm`) and `rule` Flask's URL rule, for the log
    line; `view` is the decorated view method, whose `requires` says who may call it; `load_body`
    validates the JSON body as the view's schema does (None: the view reads no body, and a
    request with one goes to Flask); `log_ids` picks the ids of the log line from the answer.
    """

    method: str
    path: re.Pattern[str]
    route: str
    rule: str
    view: Callable[..., Any]
    load_body: BodyLoader | None = None
    log_ids: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda _body: {})

    @property
    def roles(self) -> frozenset[str]:
        return self.view.accepted_roles  # type: ignore[attr-defined]

    @property
    def callers(self) -> frozenset[str]:
        return self.view.accepted_callers  # type: ignore[attr-defined]

    def accepts(self, principal: Principal) -> bool:
        if principal.role not in self.roles:
            return False
        return principal.kind != "service" or principal.subject in self.callers


def id_path(template: str) -> re.Pattern[str]:
    """`/orders/{order_id}/confirm` → a pattern matching canonical positive ids in those places."""
    pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[1-9][0-9]{0,18})", template)
    return re.compile(pattern)


@dataclass(frozen=True)
class _Replay:
    status: int
    body: bytes
    route: ReplayRoute
    caller: str
    ids: dict[str, Any]


class ReplayMiddleware:
    def __init__(
        self, app: WSGIApp, *, verifier: TokenVerifier, replays: ReplayCache, routes: Iterable[ReplayRoute]
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.replays = replays
        self.routes: dict[str, list[ReplayRoute]] = {}
        for route in routes:
            if not hasattr(route.view, "accepted_roles"):
                raise ValueError(f"{route.route}: the view must be decorated with servicekit.web.requires")
            self.routes.setdefault(route.method, []).append(route)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        try:
            replay = self._replay(environ)
        except Exception:  # never worse than Flask: on any surprise, let Flask answer
            log.exception("replay_middleware_failed")
            replay = None
        if replay is None:
            return self.app(environ, start_response)
        request_id = accept_or_new(environ.get("HTTP_X_REQUEST_ID"))
        start_response(
            _STATUS_LINES.get(replay.status) or f"{replay.status} OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(replay.body))),
                (REPLAYED_HEADER, "true"),
                (REQUEST_ID_HEADER, request_id),
            ],
        )
        log_http_request(
            request_id=request_id,
            method=replay.route.method,
            path=environ.get("PATH_INFO") or "",
            route=replay.route.rule,
            status=replay.status,
            started=started,
            caller=replay.caller,
            ids=replay.ids,
        )
        return [replay.body]

    def _replay(self, environ: dict[str, Any]) -> _Replay | None:
        candidates = self.routes.get(environ.get("REQUEST_METHOD") or "")
        if not candidates or environ.get("HTTP_TRANSFER_ENCODING"):
            return None
        path = environ.get("PATH_INFO") or ""
        for route in candidates:
            match = route.path.fullmatch(path)
            if match is not None:
                break
        else:
            return None
        key = _idempotency_key(environ)
        # Most keyed requests are first tries: without an entry for their key, nothing below can
        # answer them, so the token and the body are left to the view.
        if key is None or not self.replays.may_hold(key):
            return None
        path_params = {name: int(value) for name, value in match.groupdict().items()}
        if any(value > BIGINT_MAX for value in path_params.values()):
            return None
        body = self._body(environ, route)
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if body is None or token is None:
            return None
        try:
            principal = self.verifier.verify(token)
        except InvalidToken:
            return None
        if not route.accepts(principal):
            return None
        request = IdempotentRequest.build(
            caller=principal.identity, route=route.route, key=key, path_params=path_params, body=body
        )
        try:
            outcome = self.replays.get(request)
        except Problem:  # the key belongs to another request: Flask answers the 422
            return None
        if outcome is None or not isinstance(outcome.body, dict):
            return None
        return _Replay(
            outcome.status, orjson.dumps(outcome.body), route, principal.identity, route.log_ids(outcome.body)
        )

    @staticmethod
    def _body(environ: dict[str, Any], route: ReplayRoute) -> Mapping[str, Any] | None:
        """The validated body as the view fingerprints it, or None to let Flask answer."""
        length = environ.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > BODY_BYTES_MAX:
            return None
        if route.load_body is None:
            return {} if int(length) == 0 else None
        stream = environ.get("wsgi.input")
        if stream is None:
            return None
        raw = stream.read(int(length)) if int(length) else b""
        # Flask reads the body again if we end up passing the request on.
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            data = orjson.loads(raw) if raw.strip() else {}
            return route.load_body(data)
        except Exception:  # malformed or invalid: the view's own validation answers it
            return None


def _idempotency_key(environ: Mapping[str, Any]) -> str | None:
    """The key exactly as the views accept it, or None (Flask decides the rest)."""
    values = {environ.get(name) for name in IDEMPOTENCY_HEADERS} - {None}
    if len(values) != 1:
        return None
    key = values.pop()
    return key if is_valid_idempotency_key(key) else None
