"""Payments Lambda: claim before charge, one charge per attempt, partial batch failures, poison
messages to the DLQ, the time budget (the HTTP gateway itself: test_http_gateway.py)."""

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

from .conftest import DLQ_URL, as_function
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


class OrdersPayments:
    """orders-service's payment endpoints: a claim moves a CONFIRMED order to PROCESSING and hands out
    its attempt id (the same every time); an outcome is applied once, for that attempt only."""

    def __init__(
        self,
        orders,
        *,
        amounts: dict[int, int] | None = None,
        unknown=(),
        created=(),
        settled=(),
        canceled=(),
        statuses: dict[int, int] | None = None,
    ) -> None:
        self.applied: dict[int, dict[str, Any]] = {}
        self.claims: dict[int, int] = {}
        self.lock = threading.Lock()
        amounts = amounts or {}
        statuses = statuses or {}

        def refuse(order_id: int):
            if order_id in statuses:
                return statuses[order_id], problem(statuses[order_id], "whatever")
            if order_id in unknown:
                return 404, problem(404, "not_found", resource="order")
            if order_id in created:
                return 409, problem(409, "invalid_state_transition", current_status="CREATED")
            return None

        def claim(req, match):
            order_id = int(match[1])
            refused = refuse(order_id)
            if refused:
                return refused
            with self.lock:
                self.claims[order_id] = self.claims.get(order_id, 0) + 1
                if order_id in settled or order_id in self.applied:
                    return 200, {"claimed": False, "reason": "already_settled", "payment": None, "order": {}}
            if order_id in canceled:
                return 200, {"claimed": False, "reason": "order_canceled", "payment": None, "order": {}}
            payment = {
                "attempt_id": f"pay_{order_id}",
                "order_id": order_id,
                "customer_id": 1,
                "amount_cents": amounts.get(order_id, 500),
                "currency": "usd",
            }
            return 200, {"claimed": True, "reason": None, "payment": payment, "order": {"id": order_id}}

        def record(req, match):
            order_id = int(match[1])
            refused = refuse(order_id)
            if refused:
                return refused
            assert req.body["payment_attempt_id"] == f"pay_{order_id}", req.body
            with self.lock:
                if order_id in self.applied:
                    return 200, {"applied": False, "reason": "already_settled", "order": {"id": order_id}}
                self.applied[order_id] = req.body
            return 200, {"applied": True, "reason": None, "order": {"id": order_id}}

        orders.on("POST", r"/internal/orders/(\d+)/payment-claim", claim)
        orders.on("POST", r"/internal/orders/(\d+)/payment-outcome", record)


@pytest.fixture
def dlq() -> FakeSqs:
    return FakeSqs()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


def context(seconds: float = 30.0) -> LocalLambdaContext:
    return LocalLambdaContext("PaymentsFunction", timeout_seconds=seconds)


@pytest.fixture
def payments(environ, service_keys, dlq, gateway):
    """Invoke the payments Lambda handler with records; its processor talks to the stubs."""
    settings = load_settings(as_function(environ, service_keys, "payments"))
    processor = build_processor(settings, sqs_client=dlq, gateway=gateway)
    processor.dead_letters.sender.sleep = lambda _s: None
    use_processor(processor)

    def invoke(*records: dict[str, Any], seconds: float = 30.0) -> dict[str, Any]:
        return lambda_handler({"Records": list(records)}, context(seconds))

    yield invoke
    use_processor(None)


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_claim_charge_record_with_the_attempt_id_and_the_claimed_amount(payments, orders, gateway):
    store = OrdersPayments(orders, amounts={1: 12_345})
    assert payments(message(payment(1, amount_cents=1))) == {"batchItemFailures": []}
    ((charged, deadline),) = gateway.calls
    # The amount comes from orders-service's rows; the message's (1 cent) is ignored.
    assert (charged.idempotency_key, charged.amount_cents, charged.order_id) == ("pay_1", 12_345, 1)
    assert deadline is not None  # the invocation's budget reaches the gateway call
    assert store.applied[1] == {"outcome": "succeeded", "payment_attempt_id": "pay_1", "payment_reference": "ch_pay_1"}
    paths = [r.path for r in orders.requests]
    assert paths == ["/internal/orders/1/payment-claim", "/internal/orders/1/payment-outcome"]


def test_a_declined_charge_is_recorded_as_failed(payments, orders, gateway):
    store = OrdersPayments(orders)
    gateway.declined.add(3)
    assert payments(message(payment(3))) == {"batchItemFailures": []}
    assert store.applied[3]["outcome"] == "failed" and store.applied[3]["reason"] == "card_declined"


def test_settled_or_canceled_orders_are_acknowledged_and_never_charged(payments, orders, gateway, dlq):
    store = OrdersPayments(orders, settled={5}, canceled={6})
    assert payments(message(payment(5)), message(payment(6))) == {"batchItemFailures": []}
    assert gateway.calls == [] and store.applied == {} and dlq.sent == []
    assert not orders.calls("POST", r"/internal/orders/\d+/payment-outcome")


def test_poison_messages_go_to_the_dlq_while_the_rest_succeed(payments, orders, dlq, gateway):
    store = OrdersPayments(orders, unknown={404}, created={409})
    gateway.rejected.add(77)
    good = message(payment(1))
    malformed = message("{not json", request_id="req-bad")
    wrong_shape = message({"type": "payment.requested", "order_id": "1"})
    unknown = message(payment(404))
    not_confirmed = message(payment(409))
    refused_by_gateway = message(payment(77))
    response = payments(good, malformed, wrong_shape, unknown, not_confirmed, refused_by_gateway)

    assert response == {"batchItemFailures": []}  # dead-lettered messages count as handled
    assert set(store.applied) == {1}
    reasons = [m["MessageAttributes"]["dlq_reason"]["StringValue"] for m in dlq.sent]
    assert reasons == [
        "malformed_message",
        "malformed_message",
        "unknown_order",
        "invalid_order_state",
        "gateway_rejected",
    ]
    assert {m["QueueUrl"] for m in dlq.sent} == {DLQ_URL}
    first = dlq.sent[0]
    assert first["MessageBody"] == "{not json"  # body kept as received
    assert first["MessageAttributes"]["request_id"]["StringValue"] == "req-bad"
    assert first["MessageAttributes"]["source_message_id"]["StringValue"] == malformed["messageId"]
    assert [request.order_id for request, _ in gateway.calls] == [1, 77]  # nothing charged for the others


def test_transient_failures_are_reported_for_redelivery(payments, orders, dlq, gateway):
    OrdersPayments(orders, statuses={7: 503, 8: 429, 9: 422})
    ok, down, throttled, rejected = (message(payment(n)) for n in (1, 7, 8, 9))
    response = payments(ok, down, throttled, rejected)
    assert sorted(failed_ids(response)) == sorted([down["messageId"], throttled["messageId"]])
    assert [m["MessageAttributes"]["dlq_reason"]["StringValue"] for m in dlq.sent] == ["rejected"]
    assert [request.order_id for request, _ in gateway.calls] == [1]  # no claim, no charge


def test_orders_service_down_fails_every_record_without_raising(environ, dlq, gateway):
    environ = {**environ, "ORDERS_API_URL": "http://127.0.0.1:9", "DOWNSTREAM_RETRIES": "0"}
    use_processor(build_processor(load_settings(environ), sqs_client=dlq, gateway=gateway))
    try:
        records = [message(payment(1)), message(payment(2))]
        response = lambda_handler({"Records": records}, context())
    finally:
        use_processor(None)
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in records)
    assert dlq.sent == [] and gateway.calls == []


def test_a_dlq_that_cannot_be_reached_makes_the_poison_message_retry(payments, orders, dlq):
    dlq.failures = 100
    poison = message("nope")
    assert failed_ids(payments(poison)) == [poison["messageId"]]


@pytest.mark.parametrize("lose_answer", [False, True], ids=["gateway-down", "answer-lost"])
def test_a_gateway_failure_is_retried_with_the_same_key_and_charges_once(payments, orders, gateway, lose_answer):
    store = OrdersPayments(orders)
    gateway.unavailable, gateway.lose_answer = 1, lose_answer
    first = message(payment(42))
    assert failed_ids(payments(first)) == [first["messageId"]]
    assert store.applied == {}  # nothing recorded: the outcome is unknown
    assert len(gateway.charges) == (1 if lose_answer else 0)

    assert payments(message(payment(42), receive_count=2)) == {"batchItemFailures": []}
    assert [request.idempotency_key for request, _ in gateway.calls] == ["pay_42", "pay_42"]
    assert list(gateway.charges) == ["pay_42"] and store.applied[42]["outcome"] == "succeeded"


def test_redelivery_and_duplicates_end_in_one_charge_and_one_outcome(environ, orders, dlq, gateway):
    store = OrdersPayments(orders)
    use_processor(build_processor(load_settings(environ), sqs_client=dlq, gateway=gateway))
    try:
        for receive in (1, 2, 3):
            record = message(payment(42), receive_count=receive)
            assert lambda_handler({"Records": [record, message(payment(42))]}, context()) == {"batchItemFailures": []}
    finally:
        use_processor(None)
    # After the first, every delivery finds the order settled: no more charges, no more outcomes.
    assert len(gateway.charges) == 1 and len(gateway.calls) == 1
    assert len(store.applied) == 1 and store.claims[42] == 6 and dlq.sent == []


def test_records_are_not_started_when_the_invocation_runs_out_of_time(payments, orders, gateway):
    store = OrdersPayments(orders)
    records = [message(payment(n)) for n in (1, 2, 3)]
    # 4 s left, a 1.5 s margin: less than a record's reserve, so none is started, all come back.
    response = payments(*records, seconds=4.0)
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in records)
    assert orders.requests == [] and gateway.calls == [] and store.applied == {}
    assert payments(*records) == {"batchItemFailures": []} and set(store.applied) == {1, 2, 3}


def test_request_id_from_the_message_reaches_orders_service_and_the_logs(payments, orders, log_lines):
    OrdersPayments(orders)
    payments(message(payment(5), request_id="from-the-bff"))
    for path in (r"/internal/orders/5/payment-claim", r"/internal/orders/5/payment-outcome"):
        (call,) = orders.calls("POST", path)
        assert call.headers["x-request-id"] == "from-the-bff"
    recorded = [line for line in log_lines() if line["message"] == "payment_outcome_recorded"]
    assert recorded and recorded[0]["request_id"] == "from-the-bff" and recorded[0]["order_id"] == 5
    assert recorded[0]["payment_attempt_id"] == "pay_5"


def test_payments_call_orders_service_as_payments(payments, orders, service_keys):
    """Signed with the payments function's own key: verifiable as payments, and as no one else."""
    from servicekit.auth import InvalidToken, verify_service_token

    OrdersPayments(orders)
    payments(message(payment(5)))
    token = orders.requests[0].headers["authorization"].removeprefix("Bearer ")
    public = service_keys.public_keys()
    claims = verify_service_token(public, token, audience="orders-service", issuers=["payments"])
    assert claims["sub"] == "payments"
    with pytest.raises(InvalidToken):
        verify_service_token(public, token, audience="orders-service", issuers=["orchestrator", "sweeper"])
