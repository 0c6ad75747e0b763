"""Sweeper Lambda: re-publishing overdue payments, expiring reservations, purging keys."""

from __future__ import annotations

import orjson
import pytest

from orchestrator.config import load_settings
from orchestrator.local.lambda_context import LocalLambdaContext
from orchestrator.local.sweeper_timer import SweeperTimer, scheduled_event
from orchestrator.sweeper.handler import build_sweeper, lambda_handler, use_sweeper
from orchestrator.sweeper.sweeper import SweepIncomplete

from .conftest import QUEUE_URL, as_function
from .stubs import problem


def overdue(order_id: int) -> dict:
    return {
        "order_id": order_id,
        "customer_id": 3,
        "amount_cents": 100 * order_id,
        "confirmed_at": "2026-01-01T00:00:00Z",
    }


@pytest.fixture
def sweep(environ, service_keys, sqs):
    environ = {
        **as_function(environ, service_keys, "sweeper"),
        "PAYMENT_GRACE_SECONDS": "90",
        "PAYMENT_PROCESSING_GRACE_SECONDS": "240",
        "SWEEPER_BATCH_LIMIT": "2",
    }
    sweeper = build_sweeper(load_settings(environ), sqs_client=sqs)
    sweeper.publisher.sender.sleep = lambda _s: None
    use_sweeper(sweeper)
    yield lambda seconds=120.0: lambda_handler(
        scheduled_event(), LocalLambdaContext("SweeperFunction", timeout_seconds=seconds)
    )
    use_sweeper(None)


def paged_overdue(orders, count: int = 3, page_size: int = 2) -> None:
    """`count` overdue orders (ids 1..count), `page_size` to a page, cursors "p1", "p2", ..."""

    def answer(req, _m):
        page = int((req.query.get("cursor") or "p0")[1:])
        ids = range(1 + page * page_size, 1 + min(count, (page + 1) * page_size))
        cursor = f"p{page + 1}" if ids[-1] < count else None
        return 200, {"data": [overdue(i) for i in ids], "pagination": {"next_cursor": cursor, "limit": page_size}}

    orders.on("GET", "/internal/payments/overdue", answer)


def other_chores_answer(orders) -> None:
    orders.on("POST", "/internal/reservations/expire", (200, {"count": 0}))
    orders.on("POST", "/internal/idempotency-keys/purge", (200, {"purged": 0}))


def test_sweep_republishes_expires_and_purges(sweep, orders, sqs):
    paged_overdue(orders)
    orders.on("POST", "/internal/reservations/expire", (200, {"expired_order_ids": [7, 8], "count": 2}))
    orders.on("POST", "/internal/idempotency-keys/purge", (200, {"purged": 5}))

    report = sweep()

    assert report == {
        "overdue_found": 3,
        "overdue_pages": 2,
        "more_overdue": False,
        "payment_events_republished": 3,
        "payment_events_failed": 0,
        "reservations_expired": 2,
        "idempotency_keys_purged": 5,
        "failed_steps": [],
    }
    first_page = orders.calls("GET", "/internal/payments/overdue")[0]
    assert first_page.query == {"older_than_seconds": "90", "processing_older_than_seconds": "240", "limit": "2"}
    bodies = sqs.bodies(QUEUE_URL)
    assert [(b["order_id"], b["amount_cents"], b["type"]) for b in bodies] == [
        (1, 100, "payment.requested"),
        (2, 200, "payment.requested"),
        (3, 300, "payment.requested"),
    ]
    request_ids = {m["MessageAttributes"]["request_id"]["StringValue"] for m in sqs.sent}
    assert len(request_ids) == 1  # one id per sweep, also sent to orders-service
    assert first_page.headers["x-request-id"] in request_ids
    assert first_page.headers["authorization"].startswith("Bearer ")


def test_pages_follow_one_another_until_the_last_and_events_go_in_batches(sweep, orders, sqs):
    # 12 pages: more than any fixed number per run would need to be for a backlog this size.
    paged_overdue(orders, count=23, page_size=2)
    other_chores_answer(orders)
    report = sweep()
    assert (report["overdue_found"], report["overdue_pages"], report["more_overdue"]) == (23, 12, False)
    assert report["payment_events_republished"] == 23
    assert [b["order_id"] for b in sqs.bodies(QUEUE_URL)] == list(range(1, 24))
    assert sqs.batch_sizes == [2] * 11 + [1]  # one SendMessageBatch per page


def test_a_run_short_of_time_stops_paging_and_leaves_the_rest_to_the_next(sweep, orders, sqs):
    paged_overdue(orders, count=6, page_size=2)
    other_chores_answer(orders)
    # 8 s and a 1.5 s margin: time for the first page, not for another one and the chores after it.
    report = sweep(seconds=8.0)
    assert (report["overdue_pages"], report["more_overdue"], report["failed_steps"]) == (1, True, [])
    assert [b["order_id"] for b in sqs.bodies(QUEUE_URL)] == [1, 2]
    assert orders.calls("POST", "/internal/reservations/expire")
    assert orders.calls("POST", "/internal/idempotency-keys/purge")


def test_a_failed_step_does_not_stop_the_others_and_the_run_reports_it(sweep, orders, sqs):
    orders.on("GET", "/internal/payments/overdue", (503, problem(503, "not_ready")))
    orders.on("POST", "/internal/reservations/expire", (200, {"expired_order_ids": [], "count": 0}))
    orders.on("POST", "/internal/idempotency-keys/purge", (200, {"purged": 1}))
    with pytest.raises(SweepIncomplete, match="republish_overdue_payments"):
        sweep()
    assert orders.calls("POST", "/internal/idempotency-keys/purge")


def test_steps_are_not_started_without_time_left(sweep, orders, sqs):
    paged_overdue(orders)
    # 4 s in all and a 1.5 s margin: less than a step's reserve, so nothing is called.
    with pytest.raises(SweepIncomplete, match="republish_overdue_payments, expire_reservations, purge"):
        sweep(seconds=4.0)
    assert orders.requests == [] and sqs.sent == []


def test_publish_failures_are_counted(sweep, orders, sqs):
    paged_overdue(orders)
    other_chores_answer(orders)
    sqs.failures = 1000
    report = sweep()
    assert report["payment_events_failed"] == 3 and report["payment_events_republished"] == 0


def test_an_entry_sqs_refuses_is_counted_and_the_others_are_published(sweep, orders, sqs, log_lines):
    paged_overdue(orders, count=4)
    other_chores_answer(orders)
    sqs.refuse = lambda entry: (
        {"SenderFault": True, "Code": "InvalidParameterValue"} if '"order_id":3' in entry["MessageBody"] else None
    )
    report = sweep()
    assert (report["payment_events_republished"], report["payment_events_failed"]) == (3, 1)
    assert [b["order_id"] for b in sqs.bodies(QUEUE_URL)] == [1, 2, 4]
    (deferred,) = [line for line in log_lines() if line["message"] == "payment_event_deferred"]
    assert deferred["order_id"] == 3 and "InvalidParameterValue" in deferred["error"]


def test_sweep_logs_its_counts(sweep, orders, log_lines):
    orders.on("GET", "/internal/payments/overdue", (200, {"data": [], "pagination": {"next_cursor": None}}))
    orders.on("POST", "/internal/reservations/expire", (200, {"count": 4}))
    orders.on("POST", "/internal/idempotency-keys/purge", (200, {"purged": 0}))
    sweep()
    (line,) = [entry for entry in log_lines() if entry["message"] == "sweep_finished"]
    assert line["reservations_expired"] == 4 and line["request_id"]


def test_timer_keeps_ticking_after_a_failed_run():
    calls = []

    def handler(event, context):
        calls.append(event["detail-type"])
        if len(calls) == 1:
            raise RuntimeError("boom")
        if len(calls) == 3:
            timer.stop()
        return {"ok": True}

    timer = SweeperTimer(handler, interval_seconds=0.01)
    timer.run()
    assert calls == ["Scheduled Event"] * 3


def test_scheduled_event_shape():
    event = scheduled_event()
    assert event["source"] == "aws.events" and event["detail-type"] == "Scheduled Event"
    assert orjson.loads(orjson.dumps(event))["resources"][0].startswith("arn:aws:events:")
