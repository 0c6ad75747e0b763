"""The sweeper's three chores, each independent of the others' failures.

1. Re-publish the payment event of every order confirmed more than `PAYMENT_GRACE_SECONDS` ago
   whose payment is still `PENDING` (the BFF could not publish, or died after confirming), and of
   every order stuck in `PROCESSING` with no claim for `PAYMENT_PROCESSING_GRACE_SECONDS` (its
   consumer died, or its message went to the DLQ). Publishing twice is harmless: the payments
   Lambda claims before it charges, and the gateway charges an attempt once (docs/payments.md).
   Events go ten to a SendMessageBatch call, and pages follow one another while the run has
   time for another page and for the chores after it: a backlog (an SQS outage, orders
   confirmed past the BFF) is worked off at the queue's pace, not a fixed number per run. What
   one run cannot reach, the next one takes up.
2. Expire reservations of orders left `CREATED` too long (orders-service decides which).
3. Purge expired idempotency keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from servicekit.deadline import ensure_time_for, has_time_for
from servicekit.http_client import ServiceClient

from ..clients import ORDERS_SERVICE
from ..downstream import read_reply
from ..observability import count, logger
from ..payment_events import PaymentEventPublisher, PaymentRequested

# What a step needs left in the invocation to be started (one page, one call: usually milliseconds).
STEP_RESERVE_SECONDS = 3.0
# Another page of overdue payments is fetched only with time left for it and the two chores after.
NEXT_PAGE_RESERVE_SECONDS = 3 * STEP_RESERVE_SECONDS


@dataclass
class SweepReport:
    overdue_found: int = 0
    overdue_pages: int = 0
    more_overdue: bool = False  # the run's time ran out before the last page: the next run goes on
    payment_events_republished: int = 0
    payment_events_failed: int = 0
    reservations_expired: int = 0
    idempotency_keys_purged: int = 0
    failed_steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SweepIncomplete(RuntimeError):
    """A step failed; raised after every step ran, so the schedule's retry (all steps idempotent)
    and the function's Errors metric both see it."""


class Sweeper:
    def __init__(
        self,
        *,
        orders: ServiceClient,
        publisher: PaymentEventPublisher,
        grace_seconds: int,
        processing_grace_seconds: int,
        page_limit: int,
    ) -> None:
        self.orders = orders
        self.publisher = publisher
        self.grace_seconds = grace_seconds
        self.processing_grace_seconds = processing_grace_seconds
        self.page_limit = page_limit

    def run(self) -> SweepReport:
        report = SweepReport()
        for name, step in (
            ("republish_overdue_payments", self._republish_overdue_payments),
            ("expire_reservations", self._expire_reservations),
            ("purge_idempotency_keys", self._purge_idempotency_keys),
        ):
            try:
                ensure_time_for(name, STEP_RESERVE_SECONDS)
                step(report)
            except Exception as exc:  # one broken chore must not stop the others
                report.failed_steps.append(name)
                logger.error("sweep_step_failed", extra={"step": name, "error": f"{type(exc).__name__}: {exc}"})
        for metric, value in (
            ("OverduePaymentsFound", report.overdue_found),
            ("PaymentEventsRepublished", report.payment_events_republished),
            ("PaymentEventsRepublishFailed", report.payment_events_failed),
            ("ReservationsExpired", report.reservations_expired),
            ("IdempotencyKeysPurged", report.idempotency_keys_purged),
            ("SweepStepsFailed", len(report.failed_steps)),
        ):
            count(metric, value)
        logger.info("sweep_finished", extra=report.as_dict())
        return report

    def _republish_overdue_payments(self, report: SweepReport) -> None:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {
                "older_than_seconds": self.grace_seconds,
                "processing_older_than_seconds": self.processing_grace_seconds,
                "limit": self.page_limit,
            }
            if cursor:
                params["cursor"] = cursor
            page = read_reply(self.orders.request("GET", "/internal/payments/overdue", params=params), ORDERS_SERVICE)
            report.overdue_pages += 1
            events = [
                PaymentRequested.for_order(
                    {
                        "id": overdue["order_id"],
                        "customer_id": overdue["customer_id"],
                        "total_cents": overdue["amount_cents"],
                    },
                    correlation_id=f"sweeper-{overdue['order_id']}",
                )
                for overdue in page.body.get("data") or []
            ]
            report.overdue_found += len(events)
            for result in self.publisher.publish_all(events):
                if result.published:
                    report.payment_events_republished += 1
                else:
                    report.payment_events_failed += 1
            cursor = (page.body.get("pagination") or {}).get("next_cursor")
            if not cursor:
                return
            if not has_time_for(NEXT_PAGE_RESERVE_SECONDS):
                report.more_overdue = True
                return

    def _expire_reservations(self, report: SweepReport) -> None:
        reply = read_reply(
            self.orders.request("POST", "/internal/reservations/expire", json={"limit": self.page_limit}, retry=True),
            ORDERS_SERVICE,
        )
        report.reservations_expired = int(reply.body.get("count") or 0)

    def _purge_idempotency_keys(self, report: SweepReport) -> None:
        reply = read_reply(
            self.orders.request("POST", "/internal/idempotency-keys/purge", json={}, retry=True), ORDERS_SERVICE
        )
        report.idempotency_keys_purged = int(reply.body.get("purged") or 0)
