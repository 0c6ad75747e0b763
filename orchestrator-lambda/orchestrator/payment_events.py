"""The `payment.requested` event (docs/payments.md): one definition for its producers and its consumer.

Body: `{"type": "payment.requested", "order_id", "customer_id", "amount_cents", "correlation_id",
"requested_at"}`; message attributes `request_id` and `correlation_id`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from servicekit.limits import BIGINT_MAX
from servicekit.request_id import get_request_id, new_request_id
from servicekit.timeutil import iso_utc

from .observability import logger
from .sqs import OutgoingMessage, SqsSender, SqsSendFailed, string_attributes

PAYMENT_REQUESTED = "payment.requested"


class MalformedEvent(ValueError):
    """The message can never be processed as a payment request."""


def _positive_int(data: Mapping[str, Any], name: str, *, minimum: int = 1) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= BIGINT_MAX:
        raise MalformedEvent(f"{name} must be an integer >= {minimum}")
    return value


@dataclass(frozen=True)
class PaymentRequested:
    order_id: int
    customer_id: int
    amount_cents: int
    correlation_id: str
    requested_at: str

    @classmethod
    def for_order(cls, order: Mapping[str, Any], correlation_id: str, now: datetime | None = None) -> PaymentRequested:
        return cls(
            order_id=int(order["id"]),
            customer_id=int(order["customer_id"]),
            amount_cents=int(order["total_cents"]),
            correlation_id=correlation_id,
            requested_at=iso_utc(now or datetime.now(UTC)) or "",
        )

    @classmethod
    def from_body(cls, body: str | None) -> PaymentRequested:
        try:
            data = orjson.loads(body or "")
        except orjson.JSONDecodeError as exc:
            raise MalformedEvent("body is not JSON") from exc
        if not isinstance(data, dict):
            raise MalformedEvent("body is not a JSON object")
        if data.get("type") != PAYMENT_REQUESTED:
            raise MalformedEvent(f"type must be {PAYMENT_REQUESTED!r}")
        correlation_id = data.get("correlation_id")
        requested_at = data.get("requested_at")
        if not isinstance(correlation_id, str) or not isinstance(requested_at, str):
            raise MalformedEvent("correlation_id and requested_at must be strings")
        return cls(
            order_id=_positive_int(data, "order_id"),
            customer_id=_positive_int(data, "customer_id"),
            amount_cents=_positive_int(data, "amount_cents", minimum=0),
            correlation_id=correlation_id,
            requested_at=requested_at,
        )

    def to_body(self) -> str:
        return orjson.dumps(
            {
                "type": PAYMENT_REQUESTED,
                "order_id": self.order_id,
                "customer_id": self.customer_id,
                "amount_cents": self.amount_cents,
                "correlation_id": self.correlation_id,
                "requested_at": self.requested_at,
            }
        ).decode()


@dataclass(frozen=True)
class PublishResult:
    published: bool
    message_id: str | None = None
    error: str | None = None

    def as_response_field(self) -> dict[str, Any]:
        """What the BFF tells its client about the event (see README: publish failures).

        No message id: a replay must answer the same body, and each attempt publishes anew."""
        if self.published:
            return {"status": "published"}
        return {
            "status": "deferred",
            "detail": "The payment request could not be queued now; the sweeper re-publishes it "
            "for orders still awaiting payment after the grace period. No action is needed.",
        }


class PaymentEventPublisher:
    def __init__(self, sender: SqsSender, queue_url: str) -> None:
        self.sender = sender
        self.queue_url = queue_url

    def publish(self, event: PaymentRequested) -> PublishResult:
        """Queue the event with bounded retries; never raises (a failure is reported, not thrown)."""
        try:
            message_id = self.sender.send(self.queue_url, event.to_body(), _attributes(event))
        except SqsSendFailed as exc:
            return _logged(event, PublishResult(False, error=str(exc)))
        return _logged(event, PublishResult(True, message_id=message_id))

    def publish_all(self, events: Sequence[PaymentRequested]) -> list[PublishResult]:
        """`publish` for many events, ten to a SendMessageBatch call; one result per event, in order."""
        messages = [OutgoingMessage(event.to_body(), _attributes(event)) for event in events]
        sent = self.sender.send_batch(self.queue_url, messages)
        return [
            _logged(event, PublishResult(result.message_id is not None, result.message_id, result.error))
            for event, result in zip(events, sent, strict=True)
        ]


def _attributes(event: PaymentRequested) -> dict[str, dict[str, str]]:
    return string_attributes(request_id=get_request_id() or new_request_id(), correlation_id=event.correlation_id)


def _logged(event: PaymentRequested, result: PublishResult) -> PublishResult:
    fields = {"order_id": event.order_id, "customer_id": event.customer_id}
    if result.published:
        logger.info("payment_event_published", extra={**fields, "message_id": result.message_id})
    else:
        logger.error("payment_event_deferred", extra={**fields, "error": result.error})
    return result
