"""BFF: placing orders end to end (create-and-confirm, checkout, cancel), idempotency, failures."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import orjson
import pytest

from orchestrator.bff.idempotency import derive_key
from orchestrator.payment_events import PAYMENT_REQUESTED
from orchestrator.sqs import SqsSender
from servicekit.testing import free_port

from .conftest import QUEUE_URL
from .stubs import StubService, problem

PLACE = "/orchestrator/create-and-confirm-order"
ITEMS = [{"product_id": 1, "qty": 2}, {"product_id": 2, "qty": 1}]


class OrdersBackend:
    """Enough of orders-service: orders, confirm, and replay of idempotency keys."""

    def __init__(self, stub: StubService) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.responses: dict[str, tuple[int, Any]] = {}
        self.lock = threading.Lock()
        stub.on("POST", "/orders", lambda req, _m: self._keyed(req, lambda: self._create(req.body)))
        stub.on("POST", r"/orders/(\d+)/confirm", lambda req, m: self._keyed(req, lambda: self._confirm(int(m[1]))))
        stub.on("GET", r"/orders/(\d+)", lambda _req, m: (200, self.orders[int(m[1])]))

    def _keyed(self, request, compute):
        key = request.headers.get("idempotency-key")
        with self.lock:
            if key in self.responses:
                status, body = self.responses[key]
                return status, body, {"Idempotent-Replayed": "true"}
            status, body = compute()
            self.responses[key] = (status, body)
            return status, body

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        order_id = len(self.orders) + 1
        items = body.get("items") or [{"product_id": 1, "qty": 1}]
        total = sum(item["qty"] * 250 for item in items)
        order = {"id": order_id, "customer_id": body["customer_id"], "status": "CREATED", "total_cents": total}
        self.orders[order_id] = order
        return 201, dict(order)

    def _confirm(self, order_id: int) -> tuple[int, dict[str, Any]]:
        self.orders[order_id].update(status="CONFIRMED", payment_status="PENDING")
        return 200, dict(self.orders[order_id])


@pytest.fixture
def backend(orders, customers) -> OrdersBackend:
    customers.on("GET", r"/internal/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1]), "name": "Acme"}))
    return OrdersBackend(orders)


def place(bff, token, *, key: str | None = "key-1", body: dict[str, Any] | None = None, headers=None):
    all_headers = {**({"Idempotency-Key": key} if key else {}), **(headers or {})}
    return bff("POST", PLACE, token=token, body=body or {"customer_id": 1, "items": ITEMS}, headers=all_headers)


def test_create_and_confirm_places_confirms_and_publishes(bff, tokens, backend, orders, customers, sqs):
    answer = place(bff, tokens.admin(), body={"customer_id": 1, "items": ITEMS, "correlation_id": "corr-9"})
    assert answer.status == 201
    assert answer.body["success"] is True and answer.body["correlation_id"] == "corr-9"
    assert answer.body["data"]["customer"] == {"id": 1, "name": "Acme"}
    assert answer.body["data"]["order"]["status"] == "CONFIRMED"
    assert answer.body["payment_event"] == {"status": "published"}
    assert customers.calls("GET", "/internal/customers/1")
    assert orders.calls("POST", "/orders")[0].body == {"customer_id": 1, "items": ITEMS}

    (message,) = sqs.sent
    assert message["QueueUrl"] == QUEUE_URL
    body = orjson.loads(message["MessageBody"])
    assert set(body) == {"type", "order_id", "customer_id", "amount_cents", "correlation_id", "requested_at"}
    assert body["type"] == PAYMENT_REQUESTED
    assert (body["order_id"], body["customer_id"], body["amount_cents"]) == (1, 1, 750)
    assert body["correlation_id"] == "corr-9" and body["requested_at"].endswith("Z")
    assert message["MessageAttributes"]["request_id"]["StringValue"] == answer.header("X-Request-Id")
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "corr-9"


def test_downstream_keys_are_derived_per_user_and_step(bff, tokens, backend, orders):
    place(bff, tokens.admin(user_id=7), key="client-key")
    create_key = orders.calls("POST", "/orders")[0].headers["idempotency-key"]
    confirm_key = orders.calls("POST", r"/orders/\d+/confirm")[0].headers["idempotency-key"]
    expected = hashlib.sha256(b"user:7|create-and-confirm-order:create|client-key").hexdigest()
    assert create_key == expected == derive_key("user:7", "create-and-confirm-order:create", "client-key")
    assert confirm_key == derive_key("user:7", "create-and-confirm-order:confirm", "client-key")
    assert derive_key("user:8", "create-and-confirm-order:create", "client-key") != create_key


def test_a_retry_with_the_same_key_replays_one_order(bff, tokens, backend, orders, sqs):
    first = place(bff, tokens.customer(1), key="same")
    second = place(bff, tokens.customer(1), key="same")
    assert first.status == second.status == 201
    assert first.body == second.body  # same order, same correlation id, same everything
    assert second.header("Idempotent-Replayed") == "true"
    assert len(backend.orders) == 1
    assert {r.headers["idempotency-key"] for r in orders.calls("POST", "/orders")} == {
        derive_key("user:100", "create-and-confirm-order:create", "same")
    }
    # Every attempt that reaches a confirmed order publishes; the consumer applies it once.
    assert [b["order_id"] for b in sqs.bodies()] == [1, 1]


@pytest.mark.parametrize(
    "where",
    [
        {"headers": {"X-Idempotency-Key": "alias"}},
        {"body_key": "alias"},
        {"headers": {"Idempotency-Key": "alias", "X-Idempotency-Key": "alias"}, "body_key": "alias"},
    ],
)
def test_key_from_alias_header_or_body(bff, tokens, backend, orders, where):
    body = {"customer_id": 1, "items": ITEMS}
    if "body_key" in where:
        body["idempotency_key"] = where["body_key"]
    answer = place(bff, tokens.admin(), key=None, body=body, headers=where.get("headers"))
    assert answer.status == 201
    assert orders.calls("POST", "/orders")[0].headers["idempotency-key"] == derive_key(
        "user:1", "create-and-confirm-order:create", "alias"
    )


def test_missing_conflicting_or_long_keys_are_400s(bff, tokens, backend, orders):
    missing = place(bff, tokens.admin(), key=None)
    assert missing.status == 400 and missing.body["code"] == "idempotency_key_required"
    conflicting = place(bff, tokens.admin(), key="a", body={"customer_id": 1, "items": ITEMS, "idempotency_key": "b"})
    assert conflicting.status == 400 and conflicting.body["code"] == "validation_error"
    assert place(bff, tokens.admin(), key="k" * 256).status == 400
    assert bff("POST", "/checkout", token=tokens.customer(1)).body["code"] == "idempotency_key_required"
    assert bff("POST", "/orders/1/cancel", token=tokens.customer(1)).body["code"] == "idempotency_key_required"
    assert orders.calls("POST", "/orders") == []


def test_in_flight_twin_is_waited_for_then_replayed(bff, tokens, backend, orders, clock):
    attempts = {"n": 0}
    in_flight = problem(409, "idempotency_in_flight")

    def busy_then_done(req, match):
        attempts["n"] += 1
        if attempts["n"] <= 2:
            return 409, in_flight, {"Retry-After": "1"}
        return backend._keyed(req, lambda: backend._create(req.body))

    orders.on("POST", "/orders", busy_then_done)
    answer = place(bff, tokens.admin())
    assert answer.status == 201
    assert attempts["n"] == 3 and clock.sleeps == [1.0, 1.0]


def test_in_flight_wait_is_bounded_then_passed_through(bff, tokens, backend, orders, clock):
    orders.on("POST", "/orders", (409, problem(409, "idempotency_in_flight"), {"Retry-After": "2"}))
    answer = place(bff, tokens.admin())
    assert answer.status == 409 and answer.body["code"] == "idempotency_in_flight"
    assert answer.header("Retry-After") == "2"
    assert sum(clock.sleeps) <= 3.0  # IDEMPOTENCY_IN_FLIGHT_MAX_WAIT_SECONDS
    assert orders.calls(r"POST", r"/orders/\d+/confirm") == []


def test_downstream_problem_keeps_status_and_body_with_our_request_id(bff, tokens, backend, orders, sqs):
    stock = problem(409, "insufficient_stock", product_id=2, requested=5, available=1, request_id="theirs")
    orders.on("POST", "/orders", (409, stock))
    answer = place(bff, tokens.admin(), headers={"X-Request-Id": "ours-1"})
    assert answer.status == 409
    assert answer.body == {**stock, "request_id": "ours-1"}
    assert answer.header("Content-Type") == "application/problem+json"
    assert sqs.sent == []


def test_unknown_customer_is_a_404_and_nothing_is_ordered(bff, tokens, backend, customers, orders):
    customers.on("GET", r"/internal/customers/\d+", (404, problem(404, "not_found", resource="customer")))
    answer = place(bff, tokens.admin())
    assert answer.status == 404 and answer.body["resource"] == "customer"
    assert orders.calls("POST", "/orders") == []


def test_a_down_dependency_is_a_quick_503(bff_deps, bff, tokens, backend):
    closed = f"http://127.0.0.1:{free_port()}"
    bff_deps.customers.base_url = closed
    started = time.monotonic()
    answer = place(bff, tokens.admin())
    assert answer.status == 503
    assert answer.body["code"] == "dependency_unavailable"
    assert answer.header("Retry-After")
    assert time.monotonic() - started < 5


def test_garbage_from_a_dependency_is_a_503(bff, tokens, orders):
    orders.on("GET", "/products", (500, None))
    answer = bff("GET", "/products", token=tokens.admin())
    assert answer.status == 503 and answer.body["dependency"] == "orders-service"


def test_a_refused_service_token_is_our_fault_not_the_clients(bff, tokens, orders):
    orders.on("GET", "/products", (401, problem(401, "invalid_token")))
    answer = bff("GET", "/products", token=tokens.admin())
    assert answer.status == 500 and answer.body["code"] == "internal_error"


def test_publish_failure_still_answers_201_and_defers_to_the_sweeper(bff_deps, bff, tokens, backend, sqs):
    sqs.failures = 100
    answer = place(bff, tokens.admin())
    assert answer.status == 201
    assert answer.body["data"]["order"]["status"] == "CONFIRMED"
    assert answer.body["payment_event"]["status"] == "deferred"
    assert "sweeper" in answer.body["payment_event"]["detail"]
    assert sqs.attempts == 1 + 2  # SQS_SEND_MAX_RETRIES=2
    assert len(backend.orders) == 1


def test_publish_recovers_within_its_retries(bff, tokens, backend, sqs):
    sqs.failures = 2
    answer = place(bff, tokens.admin())
    assert answer.body["payment_event"] == {"status": "published"}
    assert len(sqs.sent) == 1


def test_checkout_orders_the_cart(bff, tokens, backend, orders, sqs):
    answer = bff("POST", "/checkout", token=tokens.customer(3), headers={"Idempotency-Key": "cart-1"})
    assert answer.status == 201
    assert orders.calls("POST", "/orders")[0].body == {"customer_id": 3, "from_cart": True}
    assert orders.calls("POST", "/orders")[0].headers["idempotency-key"] == derive_key(
        "user:100", "checkout:create", "cart-1"
    )
    assert sqs.bodies()[0]["customer_id"] == 3


def test_cancel_checks_the_order_and_sends_a_derived_key(bff, tokens, backend, orders):
    place(bff, tokens.customer(1))
    orders.on("POST", r"/orders/(\d+)/cancel", lambda _req, m: (200, {"id": int(m[1]), "status": "CANCELED"}))
    answer = bff("POST", "/orders/1/cancel", token=tokens.customer(1), headers={"Idempotency-Key": "c-1"})
    assert answer.status == 200 and answer.body["status"] == "CANCELED"
    (sent,) = orders.calls("POST", "/orders/1/cancel")
    assert sent.headers["idempotency-key"] == derive_key("user:100", "cancel", "c-1")


def test_restock_is_not_resent_after_a_dropped_answer(bff, tokens, orders):
    orders.on("POST", r"/products/\d+/restock", (503, None))
    answer = bff("POST", "/products/1/restock", token=tokens.admin(), body={"qty": 5})
    assert answer.status == 503
    assert len(orders.calls("POST", r"/products/1/restock")) == 1


def test_sender_backs_off_between_attempts():
    from .stubs import FakeSqs

    sleeps: list[float] = []
    sender = SqsSender(FakeSqs(failures=2), max_retries=3, backoff_seconds=0.1, sleep=sleeps.append)
    assert sender.send(QUEUE_URL, "{}") == "msg-1"
    assert sleeps == [0.1, 0.2]
