"""A tiny real HTTP stand-in for customers-service's internal endpoint.

The suite runs against the real customers-service (see conftest.py `customers`); this stub is a
drop-in replacement for that fixture, and lets tests look at the tokens orders-service sends.

`GET /internal/customers/{id}` with a service token (aud `customers-service`, trusted callers
`orchestrator` and `orders-service`) → 200 customer / 404, exactly like the real one; it counts
calls so tests can see the positive cache at work.
"""

from __future__ import annotations

import itertools
import re
import threading

import orjson
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from servicekit.auth import InvalidToken, ServicePublicKeys, TokenVerifier, bearer_token
from servicekit.timeutil import iso_utc, utcnow

_CUSTOMER_PATH = re.compile(r"/internal/customers/(\d{1,19})")


class CustomersStub:
    def __init__(self, public_keys: ServicePublicKeys) -> None:
        self.verifier = TokenVerifier(
            service_name="customers-service",
            user_ring=None,
            service_keys=public_keys,
            callers=("orchestrator", "orders-service"),
        )
        self.customers: dict[int, dict] = {}
        self.lookups = 0
        self.rejected_tokens = 0
        self.tokens_seen: list[str] = []
        # Far above the real customers-service's ids: tests share orders_db, and its tombstones
        # (deleted_customers) are keyed by customer id.
        self._ids = itertools.count(10**12)
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # The interface tests use (the real customers-service fixture offers the same).
    def create(self, name: str = "Test customer") -> int:
        customer_id = next(self._ids)
        now = iso_utc(utcnow())
        self.customers[customer_id] = {
            "id": customer_id,
            "name": name,
            "email": f"customer{customer_id}@example.com",
            "phone": None,
            "created_at": now,
            "updated_at": now,
        }
        return customer_id

    def delete(self, customer_id: int) -> None:
        """Forget the customer without reporting the delete to orders-service (a lost report)."""
        self.customers.pop(customer_id, None)

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)

    def _app(self, environ, start_response):
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _handle(self, request: Request) -> Response:
        match = _CUSTOMER_PATH.fullmatch(request.path)
        if request.method != "GET" or match is None:
            return _problem(404, "not_found")
        token = bearer_token(request.headers.get("Authorization"))
        try:
            if token is None:
                raise InvalidToken("missing")
            self.verifier.verify(token)
            self.tokens_seen.append(token)
        except InvalidToken:
            self.rejected_tokens += 1
            return _problem(401, "invalid_token")
        self.lookups += 1
        customer = self.customers.get(int(match.group(1)))
        if customer is None:
            return _problem(404, "not_found")
        return Response(orjson.dumps(customer), status=200, mimetype="application/json")


def _problem(status: int, code: str) -> Response:
    body = {"type": f"urn:b2b-platform:problem:{code}", "title": code, "status": status, "detail": code, "code": code}
    return Response(orjson.dumps(body), status=status, mimetype="application/problem+json")
