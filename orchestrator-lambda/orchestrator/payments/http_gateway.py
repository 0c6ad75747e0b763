"""`PaymentGateway` over a provider's HTTP API (Stripe-like; locally the gateway simulator).

`POST {PAYMENT_GATEWAY_URL}/v1/charges`, form-encoded, `Authorization: Bearer <key>`, and the
request's idempotency key as `Idempotency-Key` on every attempt: the provider charges a key
once and answers every repeat with the first result, so retrying after a timeout or a lost
answer can only ever end in one charge.

How answers map (docs/payment-gateway.md):
- 200 charge object → `PaymentResult(status, charge id)`; 402 decline → `PaymentResult("failed",
  charge id, reason=decline code)`; `replayed` from `Idempotent-Replayed`;
- connection errors, timeouts, 5xx, 409 (the key still in flight), 429 → retried with backoff
  (honouring `Retry-After`), at most `retries` times and never past `deadline`; then
  `GatewayUnavailable`;
- 401/403 → `GatewayUnavailable` at once: our credentials are wrong, which a deployment fixes;
  the message must wait, not be dropped;
- any other 4xx → `GatewayRejected`: the request itself is refused, retrying cannot help.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from servicekit.request_id import REQUEST_ID_HEADER, get_request_id

from ..observability import logger
from .gateway import ChargeRequest, GatewayRejected, GatewayUnavailable, PaymentResult

CHARGES_PATH = "/v1/charges"
RETRYABLE_STATUSES = frozenset({409, 429, 500, 502, 503, 504})
CREDENTIAL_STATUSES = frozenset({401, 403})
# Below this much time left, another attempt could not get an answer back in time.
MIN_ATTEMPT_SECONDS = 0.05


class HttpPaymentGateway:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_seconds: float = 5.0,
        connect_timeout_seconds: float = 1.0,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 2.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not api_key:
            raise ValueError("the payment gateway needs an API key")
        self.url = base_url.rstrip("/") + CHARGES_PATH
        self._api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.connect_timeout_seconds = min(connect_timeout_seconds, timeout_seconds)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.clock = clock
        self.sleep = sleep
        self.session = session or requests.Session()
        self.session.trust_env = False  # no proxy lookups in the environment per call (servicekit.http_client)
        # Our own retries only (each with the same key); urllib3 must not retry behind our back.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=10, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def __repr__(self) -> str:  # never the key
        return f"HttpPaymentGateway({self.url!r})"

    def charge(self, request: ChargeRequest, *, deadline: float | None = None) -> PaymentResult:
        form = {
            "amount": str(request.amount_cents),
            "currency": request.currency,
            "metadata[order_id]": str(request.order_id),
            "metadata[customer_id]": str(request.customer_id),
        }
        attempts = self.retries + 1
        last_error = "no attempt made"
        for attempt in range(1, attempts + 1):
            timeout = self._timeout(deadline)
            if timeout is None:
                break
            retry_after: float | None = None
            try:
                response = self.session.post(
                    self.url, data=form, headers=self._headers(request.idempotency_key), timeout=timeout
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # The charge may or may not have happened: only a retry under the same key can tell.
                last_error = type(exc).__name__
            else:
                status = response.status_code
                if status in (200, 402):
                    return self._result(request, response)
                error = _error(response)
                last_error = f"HTTP {status} {error.get('code') or error.get('type') or ''}".rstrip()
                if status in CREDENTIAL_STATUSES:
                    raise GatewayUnavailable(f"payment gateway refused our credentials ({last_error})")
                if status not in RETRYABLE_STATUSES:
                    raise GatewayRejected(f"payment gateway refused the charge ({last_error}: {error.get('message')})")
                retry_after = _retry_after(response)
            logger.warning(
                "payment_gateway_attempt_failed",
                extra={
                    "order_id": request.order_id,
                    "idempotency_key": request.idempotency_key,
                    "attempt": attempt,
                    "error": last_error,
                },
            )
            if attempt == attempts or not self._wait(attempt, retry_after, deadline):
                break
        raise GatewayUnavailable(f"payment gateway unavailable after retries ({last_error})")

    # --- helpers --------------------------------------------------------------------------------

    def _headers(self, idempotency_key: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self._api_key}",
            "Idempotency-Key": idempotency_key,
            "User-Agent": "b2b-payments/1.0",
        }
        request_id = get_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return headers

    def _timeout(self, deadline: float | None) -> tuple[float, float] | None:
        """(connect, read) for the next attempt, shortened to fit the deadline; None when none fits."""
        if deadline is None:
            return (self.connect_timeout_seconds, self.timeout_seconds)
        left = deadline - self.clock()
        if left < MIN_ATTEMPT_SECONDS:
            return None
        return (min(self.connect_timeout_seconds, left), min(self.timeout_seconds, left))

    def _wait(self, attempt: int, retry_after: float | None, deadline: float | None) -> bool:
        """Sleep before the next attempt; False when that would pass the deadline."""
        backoff = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        delay = backoff / 2 + random.uniform(0, backoff / 2)  # jitter: retries of a batch spread out
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_backoff_seconds))
        if deadline is not None and self.clock() + delay + MIN_ATTEMPT_SECONDS > deadline:
            return False
        self.sleep(delay)
        return True

    def _result(self, request: ChargeRequest, response: requests.Response) -> PaymentResult:
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        body = _json(response)
        if response.status_code == 402:
            error = body.get("error") if isinstance(body, dict) else None
            charge_id = error.get("charge") if isinstance(error, dict) else None
            if not isinstance(charge_id, str) or not charge_id:
                raise GatewayUnavailable("payment gateway declined without a charge id (unreadable answer)")
            reason = error.get("decline_code") or error.get("code") or "card_declined"
            return PaymentResult("failed", charge_id, reason=str(reason)[:200], replayed=replayed)
        charge_id = body.get("id") if isinstance(body, dict) else None
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(charge_id, str) or not charge_id or status not in ("succeeded", "failed"):
            raise GatewayUnavailable(f"payment gateway answered 200 without a final charge (status {status!r})")
        if status == "failed":
            reason = body.get("failure_code") or "charge_failed"
            return PaymentResult("failed", charge_id, reason=str(reason)[:200], replayed=replayed)
        return PaymentResult("succeeded", charge_id, replayed=replayed)


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: requests.Response) -> dict[str, Any]:
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: our own backoff will do
