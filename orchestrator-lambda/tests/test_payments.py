"""Payments Lambda: partial batch failures, poison messages to the DLQ, one charge key per order."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson
import pytest

from orchestrator.config import load_settings
from orchestrator.local.lambda_context import LocalLambdaContext
from orchestrator.payment_events import PaymentRequested
from orchestrator.payments.handler import build_processor, lambda_handler, use_processor

from .conftest import DLQ_URL
from .fake_gateway import FakeGateway
from .stubs import FakeSqs, problem


def message(body: Any, *, request_id: str | None = "req-1", receive_count: int = 1) -> dict[str, Any]:
    """One SQS record as Lambda delivers it."""
    attributes = {}
    if request_id:
        attributes["request_id"] = {"stringValue": request_id, "dataType": "String", "stringListValues": []}
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else orjson.dumps(body).decode(),
        "attributes": {"ApproximateReceiveCount": str(receive_count), "SentTimestamp": "1"},
        "messageAttributes": attributes,
        "md5OfBody": "x",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:payments",
        "awsRegion": "us-east-1",
    }


def payment(order_id: int, amount_cents: int = 500) -> dict[str, Any]:
    return PaymentRequested(order_id, 1, amount_cents, f"c-{order_id}", "2026-01-01T00:00:00.000Z").__dict__ | {
        "type": "payment.requested"
    }


class OutcomeStore:
    """orders-service's payment-outcome endpoint: applies an order's first outcome only."""

    def __init__(self, orders, *, unknown=(), created=(), statuses: dict[int, int] | None = None) -> None:
        self.applied: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()
        statuses = statuses or {}

        def record(req, match):
            order_id = int(match[1])
            if order_id in statuses:
                return statuses[order_id], problem(statuses[order_id], "whatever")
            if order_id in unknown:
                return 404, problem(404, "not_found", resource="order")
            if order_id in created:
                return 409, problem(409, "invalid_state_transition", current_status="CREATED")
            with self.lock:
                if order_id in self.applied:
                    return 200, {"applied": False, "reason": "already_settled", "order": {"id": order_id}}
                self.applied[order_id] = req.body
            return 200, {"applied": True, "reason": None, "order": {"id": order_id}}

        orders.on("POST", r"/internal/orders/(\d+)/payment-outcome", record)


@pytest.fixture
def dlq() -> FakeSqs:
    return FakeSqs()


@pytest.fixture
def payments(environ, dlq):
    """Invoke the payments Lambda handler with records; its processor talks to the stubs."""
    processor = build_processor(load_settings(environ), sqs_client=dlq, gateway=FakeGateway())
    processor.dead_letters.sender.sleep = lambda _s: None
    use_processor(processor)

    def invoke(*records: dict[str, Any]) -> dict[str, Any]:
        return lambda_handler({"Records": list(records)}, LocalLambdaContext("PaymentsFunction"))

    yield invoke
    use_processor(None)


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_poison_messages_go_to_the_dlq_while_the_rest_succeed(payments, orders, dlq):
    store = OutcomeStore(orders, unknown={404}, created={409})
    good = message(payment(1))
    malformed = message("{not json", request_id="req-bad")
    wrong_shape = message({"type": "payment.requested", "order_id": "1"})
    unknown = message(payment(404))
    not_confirmed = message(payment(409))
    response = payments(good, malformed, wrong_shape, unknown, not_confirmed)

    assert response == {"batchItemFailures": []}  # dead-lettered messages count as handled
    assert store.applied == {1: {"outcome": "succeeded", "payment_reference": store.applied[1]["payment_reference"]}}
    reasons = [m["MessageAttributes"]["dlq_reason"]["StringValue"] for m in dlq.sent]
    assert reasons == ["malformed_message", "malformed_message", "unknown_order", "invalid_order_state"]
    assert {m["QueueUrl"] for m in dlq.sent} == {DLQ_URL}
    first = dlq.sent[0]
    assert first["MessageBody"] == "{not json"  # body kept as received
    assert first["MessageAttributes"]["request_id"]["StringValue"] == "req-bad"
    assert first["MessageAttributes"]["source_message_id"]["StringValue"] == malformed["messageId"]


def test_transient_failures_are_reported_for_redelivery(payments, orders, dlq):
    OutcomeStore(orders, statuses={7: 503, 8: 429, 9: 422})
    ok, down, throttled, rejected = (message(payment(n)) for n in (1, 7, 8, 9))
    response = payments(ok, down, throttled, rejected)
    assert sorted(failed_ids(response)) == sorted([down["messageId"], throttled["messageId"]])
    assert [m["MessageAttributes"]["dlq_reason"]["StringValue"] for m in dlq.sent] == ["rejected"]


def test_orders_service_down_fails_every_record_without_raising(environ, dlq):
    environ = {**environ, "ORDERS_API_URL": "http://127.0.0.1:9", "DOWNSTREAM_RETRIES": "0"}
    use_processor(build_processor(load_settings(environ), sqs_client=dlq, gateway=FakeGateway()))
    try:
        records = [message(payment(1)), message(payment(2))]
        response = lambda_handler({"Records": records}, LocalLambdaContext("PaymentsFunction"))
    finally:
        use_processor(None)
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in records)
    assert dlq.sent == []


def test_a_dlq_that_cannot_be_reached_makes_the_poison_message_retry(payments, orders, dlq):
    dlq.failures = 100
    poison = message("nope")
    assert failed_ids(payments(poison)) == [poison["messageId"]]


def test_redelivery_gets_the_same_decision_and_is_applied_once(environ, orders, dlq):
    store = OutcomeStore(orders)
    # A provider that would decide differently each time it is asked anew: the same key keeps it.
    gateway = FakeGateway(decline=lambda _request: "declined" if len(gateway.requests) % 2 == 0 else None)
    use_processor(build_processor(load_settings(environ), sqs_client=dlq, gateway=gateway))
    try:
        for receive in (1, 2, 3):
            record = message(payment(42), receive_count=receive)
            assert lambda_handler({"Records": [record]}, LocalLambdaContext("PaymentsFunction")) == {
                "batchItemFailures": []
            }
    finally:
        use_processor(None)
    sent = [r.body for r in orders.calls("POST", r"/internal/orders/42/payment-outcome")]
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]  # the outcome never flips
    assert len(store.applied) == 1 and dlq.sent == []
    assert len({request.idempotency_key for request in gateway.requests}) == 1 and len(gateway.results) == 1


def test_request_id_from_the_message_reaches_orders_service_and_the_logs(payments, orders, log_lines):
    OutcomeStore(orders)
    payments(message(payment(5), request_id="from-the-bff"))
    (call,) = orders.calls("POST", r"/internal/orders/5/payment-outcome")
    assert call.headers["x-request-id"] == "from-the-bff"
    recorded = [line for line in log_lines() if line["message"] == "payment_outcome_recorded"]
    assert recorded and recorded[0]["request_id"] == "from-the-bff" and recorded[0]["order_id"] == 5


def test_payments_call_orders_service_as_payments(payments, orders, tokens, key_rings):
    from servicekit.auth import KeyRing, verify

    OutcomeStore(orders)
    payments(message(payment(5)))
    token = orders.requests[0].headers["authorization"].removeprefix("Bearer ")
    claims = verify(
        KeyRing.parse(key_rings["SERVICE_JWT_KEYS"]), token, audience="orders-service", issuers=["payments"]
    )
    assert claims["sub"] == "payments"
