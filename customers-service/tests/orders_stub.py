"""A tiny real HTTP stand-in for orders-service's deletion report.

`POST /internal/customers/{id}/deleted` with a service token for orders-service (only
customers-service may call it, as in orders-service) → 200 `{"customer_id", "deleted_at"}`.
It records every attempt, and `fail_next(n, status)` makes the next n attempts fail the way a
down orders-service behind its load balancer does (503), so retries can be seen.
"""

from __future__ import annotations

import re
import threading

import orjson
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from servicekit.auth import InvalidToken, ServicePublicKeys, TokenVerifier, bearer_token

_DELETED_PATH = re.compile(r"/internal/customers/(\d{1,19})/deleted")


class OrdersStub:
    def __init__(self, public_keys: ServicePublicKeys) -> None:
        self.verifier = TokenVerifier(
            service_name="orders-service",
            user_ring=None,
            service_keys=public_keys,
            callers=("customers-service",),
        )
        self.attempts: list[dict] = []  # every request: customer_id, status, token, request_id
        self.tombstones: set[int] = set()
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def fail_next(self, count: int, status: int = 503) -> None:
        with self._lock:
            self._failures = [status] * count

    def reset(self) -> None:
        with self._lock:
            self.attempts.clear()
            self.tombstones.clear()
            self._failures.clear()

    def reports_for(self, customer_id: int) -> list[dict]:
        return [attempt for attempt in self.attempts if attempt["customer_id"] == customer_id]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _app(self, environ, start_response):
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        match = _DELETED_PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return _answer(404, {"code": "not_found"})
        customer_id = int(match.group(1))
        token = bearer_token(request.headers.get("Authorization"))
        with self._lock:
            status = self._failures.pop(0) if self._failures else None
        if status is None:
            try:
                principal = self.verifier.verify(token or "")
                status = 200 if self.verifier.may_call(principal, frozenset({"customers-service"})) else 403
            except InvalidToken:
                status = 401
        self.attempts.append(
            {
                "customer_id": customer_id,
                "status": status,
                "token": token,
                "request_id": request.headers.get("X-Request-Id"),
            }
        )
        if status != 200:
            return _answer(status, {"code": "failed", "status": status})
        self.tombstones.add(customer_id)
        return _answer(200, {"customer_id": customer_id, "deleted_at": "2026-01-01T00:00:00.000Z"})


def _answer(status: int, body: dict) -> Response:
    mimetype = "application/json" if status < 400 else "application/problem+json"
    return Response(orjson.dumps(body), status=status, mimetype=mimetype)
