"""One `payment.requested` message: settle it, record the outcome, or set it aside.

Three ends for a message:
- done: the outcome was recorded (or orders-service says the order is already settled);
- dead-lettered by us: it can never succeed (malformed, unknown order, order in a state that
  cannot take a payment, any other permanent 4xx). We put it on the DLQ with the reason and
  count it as handled, so it neither blocks the batch nor burns receives;
- transient failure: raised, so it is reported in `batchItemFailures`; SQS makes it visible
  again after the visibility timeout and its redrive policy moves it to the DLQ only after
  `maxReceiveCount` receives. 401/403 are transient too: they mean *our* credentials are
  wrong, which a deployment fixes, not the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from servicekit.http_client import ServiceClient
from servicekit.request_id import accept_or_new, get_request_id

from ..clients import ORDERS_SERVICE
from ..downstream import problem_code
from ..observability import count, logger, request_scope
from ..payment_events import MalformedEvent, PaymentRequested
from ..sqs import SqsSender, attributes_from_lambda_record, string_attributes
from .gateway import ChargeRequest, PaymentGateway, PaymentResult

TRANSIENT_4XX = frozenset({401, 403, 408, 429})


class PoisonMessage(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class TransientFailure(Exception):
    """Worth another receive: the dependency may be back by then."""


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


class PaymentProcessor:
    def __init__(self, *, orders: ServiceClient, gateway: PaymentGateway, dead_letters: DeadLetterQueue) -> None:
        self.orders = orders
        self.gateway = gateway
        self.dead_letters = dead_letters

    def process(self, record: SQSRecord) -> str:
        """Handle one record; returns how it ended, raises when it should be retried."""
        with request_scope(record_request_id(record)):
            receive_count = record.raw_event.get("attributes", {}).get("ApproximateReceiveCount")
            try:
                event = PaymentRequested.from_body(record.body)
            except MalformedEvent as exc:
                return self._dead_letter(record, PoisonMessage("malformed_message", str(exc)))
            fields = {"order_id": event.order_id, "message_id": record.message_id, "receive_count": receive_count}
            try:
                result = self.gateway.charge(
                    ChargeRequest(
                        idempotency_key=f"order-{event.order_id}",  # until orders-service hands out attempt ids
                        order_id=event.order_id,
                        customer_id=event.customer_id,
                        amount_cents=event.amount_cents,
                    )
                )
                applied = self._record_outcome(event, result)
            except PoisonMessage as poison:
                return self._dead_letter(record, poison, **fields)
            except Exception as exc:
                count("PaymentTransientFailures")
                logger.warning("payment_retry_later", extra={**fields, "error": f"{type(exc).__name__}: {exc}"})
                raise
            count("PaymentsSucceeded" if result.outcome == "succeeded" else "PaymentsFailed")
            logger.info(
                "payment_outcome_recorded",
                extra={**fields, "outcome": result.outcome, "reason": result.reason, **applied},
            )
            return "recorded"

    def _record_outcome(self, event: PaymentRequested, result: PaymentResult) -> Mapping[str, Any]:
        payload = {"outcome": result.outcome, "payment_reference": result.reference}
        if result.reason:
            payload["reason"] = result.reason
        # Safe to resend: orders-service applies an order's outcome once.
        response = self.orders.request(
            "POST", f"/internal/orders/{event.order_id}/payment-outcome", json=payload, retry=True
        )
        status = response.status_code
        if 200 <= status < 300:
            body = response.json()
            return {"applied": body.get("applied"), "not_applied_reason": body.get("reason")}
        code = problem_code(response) or f"http_{status}"
        if status == 404:
            raise PoisonMessage("unknown_order", f"order {event.order_id} does not exist ({code})")
        if status == 409:
            raise PoisonMessage("invalid_order_state", f"order {event.order_id} cannot take a payment ({code})")
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
