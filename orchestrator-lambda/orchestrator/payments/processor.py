"""One `payment.requested` message: claim, charge, record (docs/payments.md).

Payment events are delivered at least once (BFF retries, the sweeper, SQS redelivery), so each
step is safe to repeat and the order is charged at most once:
1. Claim: orders-service moves the order to PROCESSING under its row lock and answers the amount
   (its own rows, never the message's) and the order's payment attempt id. A settled or canceled
   order is not claimed: the message is done and nothing is charged.
2. Charge: the gateway is called with the attempt id as its idempotency key; a repeat (a lost
   answer, a crash, a redelivery) returns the first charge instead of making another.
3. Record: orders-service applies the outcome once (PAID, or CANCELED with the stock returned).
A failure between any two steps is retried from step 1.

Three ends for a message:
- done: the outcome was recorded, or the order needs no payment;
- dead-lettered by us: it can never succeed (malformed, unknown order, an order that was never
  confirmed, a request the gateway refuses as such). We put it on the DLQ with the reason and count
  it as handled, so it neither blocks the batch nor burns receives;
- transient failure: raised, so it is reported in `batchItemFailures`; SQS makes it visible again
  after the visibility timeout and its redrive policy moves it to the DLQ only after
  `maxReceiveCount` receives. 401/403 are transient too: they mean *our* credentials are wrong,
  which a deployment fixes, not the message. So is a record not started because the invocation's
  time budget ran low.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from servicekit.deadline import current_deadline, has_time_for
from servicekit.http_client import HttpResponse, ServiceClient
from servicekit.request_id import accept_or_new, get_request_id

from ..clients import ORDERS_SERVICE
from ..downstream import problem_code
from ..observability import count, logger, request_scope
from ..payment_events import MalformedEvent, PaymentRequested
from ..sqs import SqsSender, attributes_from_lambda_record, string_attributes
from .gateway import ChargeRequest, GatewayRejected, PaymentGateway, PaymentResult

TRANSIENT_4XX = frozenset({401, 403, 408, 429})


class PoisonMessage(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientFailure(Exception):
    """Worth another receive: the dependency may be back by then."""


class OutOfTime(TransientFailure):
    """Too little of the invocation's time is left to start this step; the record comes back later."""


class DeadLetterQueue:
    """Puts a message on the DLQ ourselves: same body, its attributes plus why and which request."""

    def __init__(self, sender: SqsSender, dlq_url: str) -> None:
        self.sender = sender
        self.dlq_url = dlq_url

    def put(self, record: SQSRecord, reason: str, detail: str) -> str:
        ours = string_attributes(
            dlq_reason=reason,
            dlq_detail=detail[:500],
            request_id=get_request_id(),
            source_message_id=record.message_id,
        )
        theirs = attributes_from_lambda_record(record.raw_event.get("messageAttributes"))
        attributes = {**ours, **{name: value for name, value in theirs.items() if name not in ours}}
        return self.sender.send(self.dlq_url, record.body or "", attributes)


def record_request_id(record: SQSRecord) -> str:
    attribute = (record.raw_event.get("messageAttributes") or {}).get("request_id") or {}
    return accept_or_new(attribute.get("stringValue"))


@dataclass(frozen=True)
class Claim:
    """orders-service's answer to a claim: what to charge, or why nothing is to be charged."""

    claimed: bool
    reason: str | None = None
    attempt_id: str | None = None
    amount_cents: int | None = None
    currency: str = "usd"
    customer_id: int | None = None


@dataclass(frozen=True)
class TimeReserve:
    """Seconds a step needs left in the invocation before it is started."""

    record: float = 5.0  # a whole record: claim, charge and record, each usually milliseconds
    charge: float = 2.0
    outcome: float = 1.0


class PaymentProcessor:
    def __init__(
        self,
        *,
        orders: ServiceClient,
        gateway: PaymentGateway,
        dead_letters: DeadLetterQueue,
        reserve: TimeReserve | None = None,
    ) -> None:
        self.orders = orders
        self.gateway = gateway
        self.dead_letters = dead_letters
        self.reserve = reserve or TimeReserve()

    def process(self, record: SQSRecord) -> str:
        """Handle one record; returns how it ended, raises when it should be retried."""
        with request_scope(record_request_id(record)):
            receive_count = record.raw_event.get("attributes", {}).get("ApproximateReceiveCount")
            if not has_time_for(self.reserve.record):
                count("PaymentRecordsDeferred")
                logger.warning(
                    "payment_record_deferred", extra={"message_id": record.message_id, "reason": "time_budget"}
                )
                raise OutOfTime("too little time left in this invocation to start a payment")
            try:
                event = PaymentRequested.from_body(record.body)
            except MalformedEvent as exc:
                return self._dead_letter(record, PoisonMessage("malformed_message", str(exc)))
            fields = {"order_id": event.order_id, "message_id": record.message_id, "receive_count": receive_count}
            try:
                return self._settle(event, fields)
            except PoisonMessage as poison:
                return self._dead_letter(record, poison, **fields)
            except Exception as exc:
                count("PaymentTransientFailures")
                logger.warning("payment_retry_later", extra={**fields, "error": f"{type(exc).__name__}: {exc}"})
                raise

    def _settle(self, event: PaymentRequested, fields: dict[str, Any]) -> str:
        claim = self._claim(event.order_id)
        if not claim.claimed:
            count("PaymentsNotNeeded")
            logger.info("payment_not_needed", extra={**fields, "reason": claim.reason})
            return "not_needed"
        assert claim.attempt_id is not None and claim.amount_cents is not None
        fields = {**fields, "payment_attempt_id": claim.attempt_id}
        if not has_time_for(self.reserve.charge):
            raise OutOfTime("too little time left to charge")
        request = ChargeRequest(
            idempotency_key=claim.attempt_id,
            order_id=event.order_id,
            customer_id=claim.customer_id or event.customer_id,
            amount_cents=claim.amount_cents,
            currency=claim.currency,
        )
        try:
            result = self.gateway.charge(request, deadline=current_deadline())
        except GatewayRejected as exc:
            raise PoisonMessage("gateway_rejected", str(exc)) from None
        logger.info(
            "payment_charged",
            extra={**fields, "outcome": result.outcome, "charge_id": result.reference, "replayed": result.replayed},
        )
        if not has_time_for(self.reserve.outcome):
            raise OutOfTime("too little time left to record the outcome")
        applied = self._record_outcome(event.order_id, claim.attempt_id, result)
        count("PaymentsSucceeded" if result.outcome == "succeeded" else "PaymentsFailed")
        logger.info(
            "payment_outcome_recorded",
            extra={**fields, "outcome": result.outcome, "reason": result.reason, **applied},
        )
        return "recorded"

    def _claim(self, order_id: int) -> Claim:
        # Safe to resend: a claim of a PROCESSING order answers the same attempt again.
        response = self.orders.request("POST", f"/internal/orders/{order_id}/payment-claim", retry=True)
        body = self._ok_body(response, order_id)
        if not body.get("claimed"):
            return Claim(False, reason=body.get("reason"))
        payment = body["payment"]
        return Claim(
            True,
            attempt_id=str(payment["attempt_id"]),
            amount_cents=int(payment["amount_cents"]),
            currency=str(payment.get("currency") or "usd"),
            customer_id=payment.get("customer_id"),
        )

    def _record_outcome(self, order_id: int, attempt_id: str, result: PaymentResult) -> Mapping[str, Any]:
        payload = {"outcome": result.outcome, "payment_attempt_id": attempt_id, "payment_reference": result.reference}
        if result.reason:
            payload["reason"] = result.reason[:200]
        # Safe to resend: orders-service applies an order's outcome once.
        response = self.orders.request("POST", f"/internal/orders/{order_id}/payment-outcome", json=payload, retry=True)
        body = self._ok_body(response, order_id)
        return {"applied": body.get("applied"), "not_applied_reason": body.get("reason")}

    @staticmethod
    def _ok_body(response: HttpResponse, order_id: int) -> dict[str, Any]:
        """The 2xx JSON body, or the exception that says whether to retry."""
        status = response.status_code
        code = problem_code(response) or f"http_{status}"
        if 200 <= status < 300:
            try:
                body = response.json()
            except ValueError:
                raise TransientFailure(f"{ORDERS_SERVICE} answered {status} without JSON") from None
            if isinstance(body, dict):
                return body
            raise TransientFailure(f"{ORDERS_SERVICE} answered {status} with an unexpected body")
        if status == 404:
            raise PoisonMessage("unknown_order", f"order {order_id} does not exist ({code})")
        if status == 409:
            raise PoisonMessage("invalid_order_state", f"order {order_id} cannot take a payment ({code})")
        if 400 <= status < 500 and status not in TRANSIENT_4XX:
            raise PoisonMessage("rejected", f"{ORDERS_SERVICE} answered {status} ({code})")
        raise TransientFailure(f"{ORDERS_SERVICE} answered {status} ({code})")

    def _dead_letter(self, record: SQSRecord, poison: PoisonMessage, **fields: Any) -> str:
        # If the DLQ itself cannot be reached this raises: the message is retried like any
        # transient failure, and SQS's redrive still bounds it.
        message_id = self.dead_letters.put(record, poison.reason, poison.detail)
        count("PaymentMessagesDeadLettered")
        logger.error(
            "payment_message_dead_lettered",
            extra={
                **fields,
                "message_id": record.message_id,
                "dlq_message_id": message_id,
                "reason": poison.reason,
                "detail": poison.detail,
            },
        )
        return "dead_lettered"
