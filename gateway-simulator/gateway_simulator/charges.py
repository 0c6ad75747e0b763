"""Creating charges the way a real provider (Stripe) does it: once per idempotency key.

A charge request goes through, in order:
1. the injected 5xx fault, if it is this request's turn (nothing looked up, nothing charged);
2. the ledger: the key was used before → its stored answer, replayed (`Idempotent-Replayed`),
   or a 400 `idempotency_error` if the parameters differ;
3. the key is claimed in memory; another request holding it → 409 (the first is still in flight);
4. the slow fault, if it is this charge's turn (a client timing out now will retry into step 3);
5. the decision (`decisions.Decider`), committed to the ledger before anything is answered;
6. the lost-answer fault, if it is this charge's turn: the caller drops the connection.

A crash between 3 and 5 charged nothing, and the claim dies with the process: the retry charges.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from .decisions import DECLINED, Decider
from .faults import FaultInjector
from .ledger import Charge, Ledger

IDEMPOTENCY_KEY_MAX = 255  # Stripe's limit
MAX_AMOUNT_CENTS = 999_999_999_999
MAX_ID = 2**63 - 1  # BIGINT, like the order ids it carries
METADATA_MAX_KEYS, METADATA_KEY_MAX, METADATA_VALUE_MAX = 50, 40, 500  # Stripe's limits
DESCRIPTION_MAX = 1000
_CURRENCY = re.compile(r"[a-z]{3}")
_METADATA_PARAM = re.compile(r"metadata\[([^\[\]]+)\]")
_ID_ALPHABET = string.ascii_letters + string.digits


class ApiError(Exception):
    """An answer in Stripe's error shape: `{"error": {"type", "code", "message", ...}}`."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        fault: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.fault = fault
        error: dict[str, Any] = {"type": type_, "message": message}
        if code:
            error["code"] = code
        if param:
            error["param"] = param
        error.update(extra)
        self.body = {"error": error}

    @property
    def code(self) -> str | None:
        return self.body["error"].get("code")


def invalid(message: str, *, code: str, param: str | None = None) -> ApiError:
    return ApiError(400, "invalid_request_error", message, code=code, param=param)


def parse_positive_int(value: str, param: str, maximum: int = MAX_ID) -> int:
    if not value.isascii() or not value.isdigit():
        raise invalid(
            f"Invalid integer: {value[:40]!r} ({param} must be a positive integer).",
            code="parameter_invalid_integer",
            param=param,
        )
    number = int(value)
    if not 1 <= number <= maximum:
        raise invalid(f"{param} must be between 1 and {maximum}.", code="parameter_invalid_integer", param=param)
    return number


@dataclass(frozen=True)
class ChargeParams:
    amount: int
    currency: str
    order_id: int
    customer_id: int | None
    metadata: dict[str, str]
    description: str | None = None

    @classmethod
    def parse(cls, pairs: Sequence[tuple[str, str]]) -> ChargeParams:
        """Form parameters as Stripe takes them: `amount`, `currency`, `metadata[...]`, `description`.
        `metadata[order_id]` is required here: the ledger and the simulation are per order."""
        seen: dict[str, str] = {}
        metadata: dict[str, str] = {}
        names: set[str] = set()
        for name, value in pairs:
            if name in names:
                raise invalid(f"Parameter {name} was given more than once.", code="parameter_duplicated", param=name)
            names.add(name)
            match = _METADATA_PARAM.fullmatch(name)
            if match:
                key = match[1]
                if len(key) > METADATA_KEY_MAX or len(value) > METADATA_VALUE_MAX:
                    raise invalid(
                        f"Metadata keys are at most {METADATA_KEY_MAX} characters and values at most "
                        f"{METADATA_VALUE_MAX}.",
                        code="parameter_invalid_string",
                        param=name,
                    )
                metadata[key] = value
            elif name in ("amount", "currency", "description"):
                seen[name] = value
            else:
                raise invalid(f"Received unknown parameter: {name[:60]}", code="parameter_unknown", param=name[:60])
        if len(metadata) > METADATA_MAX_KEYS:
            raise invalid(
                f"At most {METADATA_MAX_KEYS} metadata keys.", code="parameter_invalid_string", param="metadata"
            )
        for required in ("amount", "currency"):
            if not seen.get(required):
                raise invalid(f"Missing required param: {required}.", code="parameter_missing", param=required)
        if not metadata.get("order_id"):
            raise invalid(
                "Missing required param: metadata[order_id].", code="parameter_missing", param="metadata[order_id]"
            )
        amount = parse_positive_int(seen["amount"], "amount", MAX_AMOUNT_CENTS)
        currency = seen["currency"].lower()
        if not _CURRENCY.fullmatch(currency):
            raise invalid(
                f"Invalid currency: {seen['currency'][:20]!r} (a three-letter ISO code, e.g. usd).",
                code="parameter_invalid_string",
                param="currency",
            )
        description = seen.get("description")
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise invalid(
                f"description is at most {DESCRIPTION_MAX} characters.",
                code="parameter_invalid_string",
                param="description",
            )
        order_id = parse_positive_int(metadata["order_id"], "metadata[order_id]")
        customer_id = None
        if metadata.get("customer_id"):
            customer_id = parse_positive_int(metadata["customer_id"], "metadata[customer_id]")
        return cls(amount, currency, order_id, customer_id, metadata, description)

    def fingerprint(self) -> str:
        """Same parameters ⇔ same fingerprint (what a replayed key is compared on)."""
        canonical = {
            "amount": self.amount,
            "currency": self.currency,
            "metadata": self.metadata,
            "description": self.description,
        }
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class ChargeAnswer:
    status: int
    body: bytes
    charge: Charge
    replayed: bool = False
    drop_connection: bool = False  # the lost-answer fault: committed, but no HTTP answer
    faults: list[str] = field(default_factory=list)


def new_charge_id() -> str:
    return "ch_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def iso_now(now: datetime) -> str:
    return now.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class ChargeService:
    def __init__(
        self,
        ledger: Ledger,
        decider: Decider,
        faults: FaultInjector,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.ledger = ledger
        self.decider = decider
        self.faults = faults
        self.sleep = sleep
        self._in_flight: set[str] = set()
        self._lock = threading.Lock()

    def create(self, idempotency_key: str, params: ChargeParams) -> ChargeAnswer:
        status = self.faults.error_for_charge_request()
        if status:
            raise ApiError(
                status,
                "api_error",
                "Simulated provider failure: nothing was charged. Retry with the same Idempotency-Key.",
                code="simulated_failure",
                headers={"Retry-After": "1"} if status == 503 else None,
                fault="error",
            )
        existing = self.ledger.find_by_key(idempotency_key)
        if existing is not None:
            return self._replay(existing, params)
        with self._claim(idempotency_key):
            existing = self.ledger.find_by_key(idempotency_key)  # finished between our read and the claim
            if existing is not None:
                return self._replay(existing, params)
            faults = []
            delay = self.faults.delay_for_new_charge()
            if delay:
                faults.append("slow")
                self.sleep(delay)
            stored, created = self.ledger.insert(self._decide(idempotency_key, params))
        if not created:
            return self._replay(stored, params)
        lose = self.faults.lose_answer_of_committed_charge()
        if lose:
            faults.append("lose_answer")
        return ChargeAnswer(
            stored.response_status, stored.response_body.encode(), stored, drop_connection=lose, faults=faults
        )

    @contextmanager
    def _claim(self, idempotency_key: str) -> Iterator[None]:
        with self._lock:
            if idempotency_key in self._in_flight:
                raise ApiError(
                    409,
                    "idempotency_error",
                    "There is currently another in-progress request using this Idempotency-Key. "
                    "Retry later with the same key to get its result.",
                    code="idempotency_key_in_flight",
                    headers={"Retry-After": "1"},
                )
            self._in_flight.add(idempotency_key)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(idempotency_key)

    def _replay(self, charge: Charge, params: ChargeParams) -> ChargeAnswer:
        if charge.request_fingerprint != params.fingerprint():
            raise ApiError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first "
                "used with. Use a new Idempotency-Key for a different request.",
                code="idempotency_key_reused",
            )
        return ChargeAnswer(charge.response_status, charge.response_body.encode(), charge, replayed=True)

    def _decide(self, idempotency_key: str, params: ChargeParams) -> Charge:
        now = datetime.now(UTC)
        charge_id = new_charge_id()
        decline_code = self.decider.decline_code(params.order_id, params.amount)
        succeeded = decline_code is None
        charge_object = {
            "id": charge_id,
            "object": "charge",
            "amount": params.amount,
            "amount_captured": params.amount if succeeded else 0,
            "amount_refunded": 0,
            "captured": succeeded,
            "paid": succeeded,
            "status": "succeeded" if succeeded else "failed",
            "currency": params.currency,
            "created": int(now.timestamp()),
            "description": params.description,
            "failure_code": None if succeeded else DECLINED,
            "failure_message": None if succeeded else "Your card was declined.",
            "outcome": {
                "type": "authorized" if succeeded else "issuer_declined",
                "network_status": "approved_by_network" if succeeded else "declined_by_network",
                "reason": decline_code,
            },
            "metadata": params.metadata,
            "livemode": False,
        }
        if succeeded:
            status, body = 200, charge_object
        else:
            status = 402
            body = {
                "error": {
                    "type": "card_error",
                    "code": DECLINED,
                    "decline_code": decline_code,
                    "message": "Your card was declined.",
                    "charge": charge_id,
                }
            }
        return Charge(
            id=charge_id,
            idempotency_key=idempotency_key,
            request_fingerprint=params.fingerprint(),
            order_id=params.order_id,
            customer_id=params.customer_id,
            amount_cents=params.amount,
            currency=params.currency,
            outcome="succeeded" if succeeded else "failed",
            decline_code=decline_code,
            charge_json=orjson.dumps(charge_object).decode(),
            response_status=status,
            response_body=orjson.dumps(body).decode(),
            created_at=iso_now(now),
        )
