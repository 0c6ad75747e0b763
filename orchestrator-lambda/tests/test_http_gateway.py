"""`HttpPaymentGateway` against the real gateway simulator process: a lost answer, a slow answer
and 5xx are retried under the same key and end in exactly one charge (counted in the simulator's
ledger); declines, credentials, rejections and the deadline map to the interface's answers. The
status mapping for answers the simulator never gives (429, 403...) uses the HTTP stub."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator

import pytest

from gateway_simulator.testing import SimulatorProcess, free_port
from orchestrator.config import load_settings
from orchestrator.payments.gateway import ChargeRequest, GatewayRejected, GatewayUnavailable, PaymentResult
from orchestrator.payments.handler import build_processor
from orchestrator.payments.http_gateway import HttpPaymentGateway
from servicekit.config import ConfigError
from servicekit.request_id import current_request_id

from .fake_gateway import FakeGateway
from .stubs import FakeSqs, StubService


def new_request(amount_cents: int = 1_250) -> ChargeRequest:
    # Keys and order ids of their own: the session's simulator keeps its ledger across tests.
    return ChargeRequest(
        idempotency_key=f"test-{uuid.uuid4().hex}",
        order_id=random.randrange(10**9, 10**12),
        customer_id=3,
        amount_cents=amount_cents,
    )


@pytest.fixture
def simulator(gateway_simulator: SimulatorProcess) -> Iterator[SimulatorProcess]:
    gateway_simulator.set_faults()
    yield gateway_simulator
    gateway_simulator.set_faults()


def client(gateway: SimulatorProcess, **options) -> HttpPaymentGateway:
    options.setdefault("timeout_seconds", 5)
    options.setdefault("retries", 3)
    options.setdefault("backoff_seconds", 0.05)
    return HttpPaymentGateway(gateway.base_url, gateway.api_key, **options)


def log_records(gateway: SimulatorProcess, idempotency_key: str, count: int) -> list[dict]:
    return gateway.log_records(count, {"idempotency_key": idempotency_key})


# --- through the simulator ----------------------------------------------------------------------


def test_a_charge_and_a_repeat_of_its_key_are_one_charge(simulator):
    request = new_request()
    first = client(simulator).charge(request)
    again = client(simulator).charge(request)
    assert (first.outcome, first.replayed, first.reason) == ("succeeded", False, None)
    assert again == PaymentResult("succeeded", first.reference, replayed=True)
    (entry,) = simulator.charges(request.order_id)
    assert (entry["id"], entry["idempotency_key"], entry["amount_cents"]) == (
        first.reference,
        request.idempotency_key,
        1_250,
    )
    assert entry["outcome"] == "succeeded" and entry["customer_id"] == 3


def test_a_lost_answer_is_retried_under_the_same_key_and_charged_once(simulator, log_lines):
    simulator.set_faults(lose_answer_every_n=1)
    request = new_request()
    token = current_request_id.set("req-lost-answer")
    try:
        result = client(simulator).charge(request)
    finally:
        current_request_id.reset(token)
    assert (result.outcome, result.replayed) == ("succeeded", True)  # the answer came from the replay
    (entry,) = simulator.charges(request.order_id)
    assert entry["id"] == result.reference
    counters = simulator.faults()["counters"]
    assert (counters["charge_requests"], counters["committed_charges"]) == (2, 1)
    # Both attempts under our key and request id; the first has no status: it was never answered.
    records = log_records(simulator, request.idempotency_key, 2)
    assert [(r["status"], r.get("fault"), r["request_id"]) for r in records] == [
        (None, "lose_answer", "req-lost-answer"),
        (200, None, "req-lost-answer"),
    ]
    (failed,) = [line for line in log_lines() if line["message"] == "payment_gateway_attempt_failed"]
    assert (failed["attempt"], failed["error"], failed["order_id"]) == (1, "ConnectionError", request.order_id)
    assert failed["request_id"] == "req-lost-answer"


def test_a_slow_answer_that_times_out_is_retried_and_charged_once(simulator):
    simulator.set_faults(slow_seconds=1.5)
    request = new_request()
    result = client(simulator, timeout_seconds=0.3, retries=10, backoff_seconds=0.1).charge(request)
    assert (result.outcome, result.replayed) == ("succeeded", True)
    (entry,) = simulator.charges(request.order_id)
    assert entry["id"] == result.reference
    assert simulator.faults()["counters"]["new_charges"] == 1  # no retry became a second charge
    statuses = [r["status"] for r in log_records(simulator, request.idempotency_key, 2)]
    assert statuses[-1] == 200 and 409 in statuses  # a retry met the first attempt still in flight


def test_a_5xx_is_retried_and_the_retry_charges(simulator):
    simulator.set_faults(error_every_n=2)
    client(simulator).charge(new_request())  # request 1 of the fault's count
    request = new_request()
    result = client(simulator).charge(request)  # request 2 fails, its retry (3) charges
    assert (result.outcome, result.replayed) == ("succeeded", False)  # the 500 charged nothing
    assert [e["id"] for e in simulator.charges(request.order_id)] == [result.reference]
    assert [r["status"] for r in log_records(simulator, request.idempotency_key, 2)] == [500, 200]


def test_a_gateway_failing_every_attempt_is_unavailable_after_bounded_retries(simulator):
    simulator.set_faults(error_every_n=1, error_status=503)
    request = new_request()
    with pytest.raises(GatewayUnavailable, match="HTTP 503"):
        client(simulator, retries=2).charge(request)
    assert simulator.faults()["counters"]["charge_requests"] == 3
    assert simulator.charges(request.order_id) == []


def test_the_same_key_with_other_parameters_is_rejected(simulator):
    request = new_request()
    first = client(simulator).charge(request)
    other = ChargeRequest(request.idempotency_key, request.order_id, request.customer_id, request.amount_cents + 1)
    with pytest.raises(GatewayRejected, match="idempotency_key_reused"):
        client(simulator).charge(other)
    assert [e["id"] for e in simulator.charges(request.order_id)] == [first.reference]


def test_a_wrong_api_key_is_unavailable_not_rejected(simulator):
    request = new_request()
    with pytest.raises(GatewayUnavailable, match="credentials"):
        HttpPaymentGateway(simulator.base_url, "sk_test_not_the_right_key").charge(request)
    assert [r["status"] for r in log_records(simulator, request.idempotency_key, 0)] == []  # 401 before the key
    assert simulator.charges(request.order_id) == []


def test_the_deadline_caps_timeouts_and_retries(simulator):
    simulator.set_faults(slow_seconds=3)
    request = new_request()
    # Without the deadline this would wait out the slow answer (timeout 10 s) and succeed.
    with pytest.raises(GatewayUnavailable):
        client(simulator, timeout_seconds=10, retries=5).charge(request, deadline=time.monotonic() + 0.5)
    before = simulator.faults()["counters"]["charge_requests"]
    with pytest.raises(GatewayUnavailable):
        client(simulator).charge(new_request(), deadline=time.monotonic() - 1)
    assert simulator.faults()["counters"]["charge_requests"] == before  # no time left: no attempt


def test_an_unreachable_gateway_is_unavailable():
    gateway = HttpPaymentGateway(
        f"http://127.0.0.1:{free_port()}", "sk_test_whatever", retries=1, sleep=lambda _s: None
    )
    with pytest.raises(GatewayUnavailable, match="ConnectionError"):
        gateway.charge(new_request())


@pytest.fixture(scope="module")
def declining_simulator(tmp_path_factory) -> Iterator[SimulatorProcess]:
    with SimulatorProcess(tmp_path_factory.mktemp("declining") / "ledger.db", mode="always_fail") as gateway:
        yield gateway


def test_a_decline_is_a_failed_result_with_the_charge_and_its_code(declining_simulator):
    request = new_request()
    result = client(declining_simulator).charge(request)
    assert result == PaymentResult("failed", result.reference, reason="simulated_decline")
    assert result.reference.startswith("ch_")
    assert client(declining_simulator).charge(request) == PaymentResult(
        "failed", result.reference, reason="simulated_decline", replayed=True
    )
    (entry,) = declining_simulator.charges(request.order_id)
    assert (entry["id"], entry["outcome"], entry["decline_code"]) == (result.reference, "failed", "simulated_decline")


# --- answers the simulator does not give, from the stub ---------------------------------------------


@pytest.fixture
def provider() -> Iterator[StubService]:
    stub = StubService()
    yield stub
    stub.close()


CHARGE = {"id": "ch_stub", "object": "charge", "status": "succeeded", "amount": 1250}


@pytest.mark.parametrize(
    ("status", "raised", "attempts"),
    [
        (401, GatewayUnavailable, 1),
        (403, GatewayUnavailable, 1),
        (429, GatewayUnavailable, 3),
        (409, GatewayUnavailable, 3),
        (502, GatewayUnavailable, 3),
        (400, GatewayRejected, 1),
        (404, GatewayRejected, 1),
        (422, GatewayRejected, 1),
    ],
)
def test_status_mapping(provider, status, raised, attempts):
    provider.on("POST", "/v1/charges", (status, {"error": {"type": "x", "code": f"code_{status}"}}))
    gateway = HttpPaymentGateway(provider.url, "sk_test_stub", retries=2, sleep=lambda _s: None)
    with pytest.raises(raised, match=f"HTTP {status} code_{status}"):
        gateway.charge(new_request())
    assert len(provider.calls("POST", "/v1/charges")) == attempts


def test_every_attempt_carries_the_same_key_and_form_and_retry_after_is_honoured(provider):
    answers = iter([(429, {"error": {"type": "rate_limit_error"}}, {"Retry-After": "1"}), (500, {}), (200, CHARGE)])
    provider.on("POST", "/v1/charges", lambda _request, _match: next(answers))
    sleeps: list[float] = []
    gateway = HttpPaymentGateway(provider.url, "sk_test_stub", retries=2, backoff_seconds=0.01, sleep=sleeps.append)
    request = new_request()
    assert gateway.charge(request) == PaymentResult("succeeded", "ch_stub")
    calls = provider.calls("POST", "/v1/charges")
    assert {c.headers["idempotency-key"] for c in calls} == {request.idempotency_key}
    assert {c.headers["authorization"] for c in calls} == {"Bearer sk_test_stub"}
    assert calls[0].body == {
        "amount": "1250",
        "currency": "usd",
        "metadata[order_id]": str(request.order_id),
        "metadata[customer_id]": "3",
    }
    assert len(sleeps) == 2 and sleeps[0] >= 1.0 > sleeps[1]  # Retry-After first, then our backoff


@pytest.mark.parametrize(
    "answer",
    [
        (200, "not a charge"),
        (200, {"id": "ch_x", "status": "pending"}),
        (402, {"error": {"type": "card_error", "code": "card_declined"}}),  # no charge id
    ],
    ids=["not an object", "not final", "decline without a charge"],
)
def test_an_unreadable_answer_is_unavailable(provider, answer):
    provider.on("POST", "/v1/charges", answer)
    with pytest.raises(GatewayUnavailable):
        HttpPaymentGateway(provider.url, "sk_test_stub", sleep=lambda _s: None).charge(new_request())


# --- wiring ---------------------------------------------------------------------------------


def test_the_payments_lambda_charges_through_the_configured_http_gateway(environ):
    settings = load_settings(
        {**environ, "PAYMENT_GATEWAY_URL": "https://pay.example/", "PAYMENT_GATEWAY_API_KEY": "sk_live_secret_value"}
    )
    gateway = build_processor(settings, sqs_client=FakeSqs()).gateway
    assert isinstance(gateway, HttpPaymentGateway) and gateway.url == "https://pay.example/v1/charges"
    assert "sk_live" not in repr(gateway)
    fake = FakeGateway()
    assert build_processor(settings, sqs_client=FakeSqs(), gateway=fake).gateway is fake
    with pytest.raises(ConfigError, match="PAYMENT_GATEWAY_API_KEY"):
        build_processor(load_settings(environ), sqs_client=FakeSqs())
