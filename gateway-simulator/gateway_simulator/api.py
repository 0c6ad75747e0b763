"""The provider's HTTP API, independent of the server that carries it: a request in, an answer out.

Routes (every one but /health takes the API key, `Authorization: Bearer <key>` or Stripe's
`-u <key>:` Basic form):
  POST /v1/charges                  create a charge (form-encoded, `Idempotency-Key` required)
  GET  /v1/charges?order_id=N       the ledger's entries for one order (all of them)
  GET  /v1/charges                  every entry, newest first, `limit` (1..100) / `starting_after`
  GET  /v1/charges/{id}             one charge object
  GET  /v1/simulator/faults         the injected faults and their counters
  POST /v1/simulator/faults         replace them (JSON; fields left out are off), counters reset
  GET  /health                      liveness and the ledger answering

Errors use Stripe's shape, `{"error": {"type", "code", "message", "param"?}}`, since this stands
in for a provider's API rather than one of our services (docs/payment-gateway.md).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from .charges import IDEMPOTENCY_KEY_MAX, ApiError, ChargeParams, ChargeService, invalid, parse_positive_int
from .faults import FaultInjector, Faults, InvalidFaults
from .ledger import Ledger

MAX_BODY_BYTES = 64 * 1024
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 10, 100
_CHARGE_PATH = re.compile(r"/v1/charges/([A-Za-z0-9_]{1,64})")
_ROUTES = {
    "/health": ("GET",),
    "/v1/charges": ("GET", "POST"),
    "/v1/simulator/faults": ("GET", "POST"),
}


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: bytes = b""


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False
    log: dict[str, Any] = field(default_factory=dict)  # fields for this request's log line

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None, **log: Any) -> Answer:
        return cls(status, orjson.dumps(payload), headers or {}, log=log)

    @classmethod
    def error(cls, error: ApiError, **log: Any) -> Answer:
        fields = {"error_code": error.code or error.body["error"]["type"], **log}
        if error.fault:
            fields["fault"] = error.fault
        return cls.json(error.status, error.body, error.headers, **fields)


class GatewayApi:
    def __init__(self, *, api_key: str, ledger: Ledger, charges: ChargeService, faults: FaultInjector) -> None:
        self._api_key = api_key.encode()
        self.ledger = ledger
        self.charges = charges
        self.faults = faults

    def handle(self, request: Request) -> Answer:
        try:
            return self._route(request)
        except ApiError as error:
            return Answer.error(error)

    def _route(self, request: Request) -> Answer:
        path = request.path.rstrip("/") or "/"
        charge_match = _CHARGE_PATH.fullmatch(path)
        allowed = _ROUTES.get(path) or (("GET",) if charge_match else None)
        if allowed is None:
            raise ApiError(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({request.method}: {request.path[:200]}).",
                code="resource_missing",
            )
        if request.method not in allowed:
            raise ApiError(
                405,
                "invalid_request_error",
                f"{request.method} is not allowed on {path}; use {', '.join(allowed)}.",
                code="method_not_allowed",
                headers={"Allow": ", ".join(allowed)},
            )
        if path == "/health":
            return self._health()
        self._authenticate(request.headers.get("Authorization"))
        if charge_match:
            return self._retrieve(charge_match[1])
        if path == "/v1/simulator/faults":
            return self._set_faults(request) if request.method == "POST" else Answer.json(200, self.faults.snapshot())
        if request.method == "POST":
            return self._create(request)
        return self._list(request.query)

    # --- routes ---------------------------------------------------------------------------------

    def _health(self) -> Answer:
        try:
            self.ledger.ping()
        except sqlite3.Error as exc:
            return Answer.json(503, {"status": "unavailable", "detail": f"ledger: {exc}"}, {"Retry-After": "1"})
        return Answer.json(200, {"status": "ok", "mode": self.charges.decider.mode})

    def _create(self, request: Request) -> Answer:
        key = request.headers.get("Idempotency-Key")
        if key is None or not key.strip():
            raise invalid(
                "An Idempotency-Key header is required: retries under the same key are charged once.",
                code="idempotency_key_required",
            )
        key = key.strip()
        if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
            raise invalid(
                f"Idempotency-Key must be at most {IDEMPOTENCY_KEY_MAX} printable ASCII characters.",
                code="idempotency_key_invalid",
            )
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            raise invalid(
                "Send the parameters form-encoded (Content-Type: application/x-www-form-urlencoded), "
                f"as Stripe's API takes them; got {content_type or 'no Content-Type'}.",
                code="content_type_invalid",
            )
        params = ChargeParams.parse(_form_pairs(request.body))
        context = {"idempotency_key": key, "order_id": params.order_id, "amount_cents": params.amount}
        try:
            answer = self.charges.create(key, params)
        except ApiError as error:
            return Answer.error(error, **context)
        headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
        log = {
            **context,
            "charge_id": answer.charge.id,
            "outcome": answer.charge.outcome,
            "replayed": answer.replayed,
        }
        if answer.faults:
            log["fault"] = ",".join(answer.faults)
        return Answer(answer.status, answer.body, headers, drop_connection=answer.drop_connection, log=log)

    def _list(self, query: str) -> Answer:
        params = _query_params(query, {"order_id", "limit", "starting_after"})
        if "order_id" in params:
            if set(params) - {"order_id"}:
                raise invalid(
                    "order_id lists every charge of the order: limit and starting_after do not apply.",
                    code="parameter_unknown",
                )
            order_id = parse_positive_int(params["order_id"], "order_id")
            entries = [charge.ledger_entry() for charge in self.ledger.by_order(order_id)]
            return Answer.json(200, _list_body(entries, has_more=False), order_id=order_id)
        limit = LIST_LIMIT_DEFAULT
        if "limit" in params:
            limit = parse_positive_int(params["limit"], "limit", LIST_LIMIT_MAX)
        after = None
        if params.get("starting_after"):
            after = self.ledger.find_by_id(params["starting_after"])
            if after is None:
                raise invalid(
                    f"No such charge: {params['starting_after'][:64]!r}.",
                    code="resource_missing",
                    param="starting_after",
                )
        charges, has_more = self.ledger.page(limit, after)
        return Answer.json(200, _list_body([charge.ledger_entry() for charge in charges], has_more=has_more))

    def _retrieve(self, charge_id: str) -> Answer:
        charge = self.ledger.find_by_id(charge_id)
        if charge is None:
            raise ApiError(
                404, "invalid_request_error", f"No such charge: {charge_id!r}.", code="resource_missing", param="id"
            )
        return Answer.json(200, charge.charge_object(), charge_id=charge_id)

    def _set_faults(self, request: Request) -> Answer:
        try:
            data = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            raise invalid("The body must be a JSON object of faults.", code="malformed_json") from None
        if not isinstance(data, dict):
            raise invalid("The body must be a JSON object of faults.", code="malformed_json")
        try:
            faults = Faults.from_mapping(data)
        except InvalidFaults as exc:
            raise ApiError(400, "invalid_request_error", str(exc), code="invalid_faults", errors=exc.errors) from None
        self.faults.configure(faults)
        return Answer.json(200, self.faults.snapshot(), faults_set=faults.as_dict())

    # --- helpers --------------------------------------------------------------------------------

    def _authenticate(self, authorization: str | None) -> None:
        presented = _presented_key(authorization)
        if presented is None:
            raise ApiError(
                401,
                "invalid_request_error",
                "You did not provide an API key: send `Authorization: Bearer <PAYMENT_GATEWAY_API_KEY>`.",
                code="api_key_missing",
                headers={"WWW-Authenticate": 'Bearer realm="gateway-simulator"'},
            )
        if not hmac.compare_digest(presented.encode(), self._api_key):
            raise ApiError(
                401,
                "invalid_request_error",
                "Invalid API key provided.",
                code="api_key_invalid",
                headers={"WWW-Authenticate": 'Bearer realm="gateway-simulator"'},
            )


def _presented_key(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic" and credentials:  # curl -u <key>:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0]
    return ""


def _form_pairs(body: bytes) -> list[tuple[str, str]]:
    try:
        text = body.decode()
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise invalid("The body is not valid form-encoded UTF-8 (at most 100 fields).", code="body_invalid") from None


def _query_params(query: str, allowed: set[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in _form_pairs(query.encode()):
        if name not in allowed:
            raise invalid(f"Received unknown parameter: {name[:60]}", code="parameter_unknown", param=name[:60])
        if name in params:
            raise invalid(f"Parameter {name} was given more than once.", code="parameter_duplicated", param=name)
        params[name] = value
    return params


def _list_body(entries: list[dict[str, Any]], *, has_more: bool) -> dict[str, Any]:
    return {"object": "list", "url": "/v1/charges", "has_more": has_more, "data": entries}
