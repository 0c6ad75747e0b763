"""BFF: placing orders end to end (create-and-confirm, checkout, cancel), idempotency, failures."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import orjson
import pytest

from orchestrator.bff import handler as bff_handler_module
from orchestrator.bff.idempotency import derive_key
from orchestrator.payment_events import PAYMENT_REQUESTED
from orchestrator.sqs import SqsSender
from servicekit.http_client import keep_alive_pool
from servicekit.testing import free_port

from .conftest import QUEUE_URL
from .stubs import StubService, call_handler, problem

PLACE = "/orchestrator/create-and-confirm-order"
PLACEMENTS = "/internal/placements"
bff_handler = bff_handler_module.lambda_handler
ITEMS = [{"product_id": 1, "qty": 2}, {"product_id": 2, "qty": 1}]


class OrdersBackend:
    """Enough of orders-service: placements, orders, confirm, replay of idempotency keys (a
    placement and a create share one key scope, as there), stored answers."""

    def __init__(self, stub: StubService) -> None:
        self.orders: dict[int, dict[str, Any]] = {}
        self.responses: dict[str, tuple[int, Any]] = {}
        self.stored: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        stub.on("GET", r"/internal/stored-responses/(\w+)", lambda _req, m: self._lookup(m[1]))
        stub.on("PUT", r"/internal/stored-responses/(\w+)", lambda req, m: self._store(m[1], req.body))
        stub.on("POST", PLACEMENTS, lambda req, _m: self._keyed(req, lambda: self._place(req.body)))
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

    def _lookup(self, key: str):
        with self.lock:
            if key not in self.stored:
                return 404, problem(404, "not_found", resource="stored_response")
            return 200, {**self.stored[key], "replayed": True}

    def _store(self, key: str, body: dict[str, Any]):
        with self.lock:
            if key in self.stored:
                if self.stored[key]["fingerprint"] != body["fingerprint"]:
                    return 422, problem(422, "idempotency_key_mismatch")
                return 200, {**self.stored[key], "replayed": True}
            self.stored[key] = {"key": key, **body}
            return 201, {**self.stored[key], "replayed": False}

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        order_id = len(self.orders) + 1
        items = body.get("items") or [{"product_id": 1, "qty": 1}]
        total = sum(item["qty"] * 250 for item in items)
        order = {"id": order_id, "customer_id": body["customer_id"], "status": "CREATED", "total_cents": total}
        self.orders[order_id] = order
        return 201, dict(order)

    def _place(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        _, order = self._create(body)
        return 201, self._confirm(order["id"])[1]

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
    assert orders.calls("POST", PLACEMENTS)[0].body == {"customer_id": 1, "items": ITEMS}

    (message,) = sqs.sent
    assert message["QueueUrl"] == QUEUE_URL
    body = orjson.loads(message["MessageBody"])
    assert set(body) == {"type", "order_id", "customer_id", "amount_cents", "correlation_id", "requested_at"}
    assert body["type"] == PAYMENT_REQUESTED
    assert (body["order_id"], body["customer_id"], body["amount_cents"]) == (1, 1, 750)
    assert body["correlation_id"] == "corr-9" and body["requested_at"].endswith("Z")
    assert message["MessageAttributes"]["request_id"]["StringValue"] == answer.header("X-Request-Id")
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "corr-9"


def test_one_call_creates_and_confirms_with_a_key_derived_per_user(bff, tokens, backend, orders):
    place(bff, tokens.admin(user_id=7), key="client-key")
    (placement,) = orders.calls("POST", PLACEMENTS)
    create_key = placement.headers["idempotency-key"]
    expected = hashlib.sha256(b"user:7|create-and-confirm-order:create|client-key").hexdigest()
    assert create_key == expected == derive_key("user:7", "create-and-confirm-order:create", "client-key")
    assert derive_key("user:8", "create-and-confirm-order:create", "client-key") != create_key
    assert orders.calls("POST", "/orders") == [] and orders.calls("POST", r"/orders/\d+/confirm") == []


def test_an_order_a_plain_create_made_under_the_key_is_confirmed_with_its_own_key(bff, tokens, backend, orders, sqs):
    """A retry of an attempt that began before placements existed: its create key already made a
    CREATED order, which the placement replays; the BFF confirms it as the old code would have."""
    create_key = derive_key("user:7", "create-and-confirm-order:create", "old")
    backend.responses[create_key] = backend._create({"customer_id": 1, "items": ITEMS})
    answer = place(bff, tokens.admin(user_id=7), key="old")
    assert answer.status == 201 and answer.body["data"]["order"]["status"] == "CONFIRMED"
    (confirm,) = orders.calls("POST", r"/orders/1/confirm")
    assert confirm.headers["idempotency-key"] == derive_key("user:7", "create-and-confirm-order:confirm", "old")
    assert len(backend.orders) == 1 and [b["order_id"] for b in sqs.bodies()] == [1]
    assert place(bff, tokens.admin(user_id=7), key="old").body == answer.body
    assert len(orders.calls("POST", r"/orders/\d+/confirm")) == 1


def test_a_placement_whose_answer_is_lost_is_resent_with_its_key_and_makes_one_order(bff, tokens, backend, orders, sqs):
    """orders-service placed the order, then its answer was lost (a 502 from what stands between):
    the BFF resends the placement with the same key, gets the replay, and there is one order and
    one payment event."""
    answers = {"n": 0}

    def place_then_lose_the_first_answer(req, _match):
        answer = backend._keyed(req, lambda: backend._place(req.body))
        answers["n"] += 1
        return (502, None) if answers["n"] == 1 else answer

    orders.on("POST", PLACEMENTS, place_then_lose_the_first_answer)
    answer = place(bff, tokens.admin())
    assert answer.status == 201 and answer.body["data"]["order"]["status"] == "CONFIRMED"
    sent = orders.calls("POST", PLACEMENTS)
    assert len(sent) == 2 and len({r.headers["idempotency-key"] for r in sent}) == 1
    assert len(backend.orders) == 1 and [b["order_id"] for b in sqs.bodies()] == [1]


def test_a_retry_with_the_same_key_replays_one_order(bff, tokens, backend, orders, sqs):
    first = place(bff, tokens.customer(1), key="same")
    second = place(bff, tokens.customer(1), key="same")
    assert first.status == second.status == 201
    assert first.body == second.body  # same order, same correlation id, same everything
    assert second.header("Idempotent-Replayed") == "true"
    assert len(backend.orders) == 1
    assert {r.headers["idempotency-key"] for r in orders.calls("POST", PLACEMENTS)} == {
        derive_key("user:100", "create-and-confirm-order:create", "same")
    }
    # The retry is answered from the stored answer: no second payment event.
    assert len(orders.calls("POST", PLACEMENTS)) == 2 and orders.calls("POST", r"/orders/\d+/confirm") == []
    assert [b["order_id"] for b in sqs.bodies()] == [1]
    (stored,) = backend.stored.values()
    assert stored["status"] == 201 and stored["body"] == first.body


@pytest.mark.parametrize(("caller", "customers_now"), [("admin", "deleted"), ("admin", "down"), ("customer", "down")])
def test_a_replay_answers_the_stored_201_whatever_happened_to_the_customer(
    bff, tokens, backend, customers, orders, sqs, caller, customers_now
):
    token = tokens.admin() if caller == "admin" else tokens.customer(1)
    first = place(bff, token, key="keep")
    assert first.status == 201
    if customers_now == "deleted":
        customers.on("GET", r"/internal/customers/(\d+)", (404, problem(404, "not_found", resource="customer")))
    else:  # what a dead upstream looks like through a load balancer
        customers.on("GET", r"/internal/customers/(\d+)", (503, None))
    again = place(bff, token, key="keep")
    assert again.status == 201 and again.body == first.body
    assert again.header("Idempotent-Replayed") == "true"
    assert len(orders.calls("POST", PLACEMENTS)) == 1 and len(sqs.sent) == 1
    # A new key is a new order, and now the customer's state decides.
    fresh = place(bff, token, key="new")
    assert fresh.status == (404 if customers_now == "deleted" else 503)
    assert len(backend.orders) == 1


def test_a_deleted_customers_own_token_is_refused_even_for_a_replay(bff, tokens, backend, customers, orders, sqs):
    """Its customer gone, a customer user's token is refused (401), stored answer or not."""
    assert place(bff, tokens.customer(1), key="keep").status == 201
    customers.on("GET", r"/internal/customers/(\d+)", (404, problem(404, "not_found", resource="customer")))
    for key in ("keep", "new"):
        answer = place(bff, tokens.customer(1), key=key)
        assert answer.status == 401 and answer.body["code"] == "invalid_token", answer.body
        assert "deleted" in answer.body["detail"]
    assert len(orders.calls("POST", PLACEMENTS)) == 1 and len(sqs.sent) == 1


def test_a_key_reused_for_another_order_is_a_422(bff, tokens, backend, customers, orders):
    assert place(bff, tokens.admin(), key="once").status == 201
    customers.on("GET", r"/internal/customers/(\d+)", (404, problem(404, "not_found", resource="customer")))
    other = place(bff, tokens.admin(), key="once", body={"customer_id": 1, "items": [ITEMS[0]]})
    assert other.status == 422 and other.body["code"] == "idempotency_key_mismatch"
    assert len(backend.orders) == 1


def test_parallel_twins_answer_the_same_stored_body(bff, tokens, backend, orders, sqs):
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(place(bff, tokens.admin(), key="twin"))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {answer.status for answer in results} == {201}
    assert all(answer.body == results[0].body for answer in results)
    assert len(backend.orders) == 1 and len(backend.stored) == 1


def test_an_answer_that_cannot_be_stored_is_still_given(bff, tokens, backend, orders):
    orders.on("PUT", r"/internal/stored-responses/(\w+)", (503, problem(503, "database_unavailable")))
    answer = place(bff, tokens.admin(), key="unstored")
    assert answer.status == 201 and answer.body["data"]["order"]["status"] == "CONFIRMED"
    assert backend.stored == {}


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
    assert orders.calls("POST", PLACEMENTS)[0].headers["idempotency-key"] == derive_key(
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
    padded = {"customer_id": 1, "items": ITEMS, "idempotency_key": " padded"}  # printable ASCII, no outer spaces
    assert place(bff, tokens.admin(), key=None, body=padded).status == 400
    assert orders.calls("POST", PLACEMENTS) == []


def test_an_admin_missing_customer_id_is_listed_with_every_other_error(bff, tokens, backend, orders):
    answer = place(bff, tokens.admin(), key="k1", body={"correlation_id": "c1"})
    assert answer.status == 400 and set(answer.body["errors"]) == {"items", "customer_id"}
    answer = place(bff, tokens.admin(), key="k2", body={"items": [{"product_id": 1, "qty": 0}]})
    assert set(answer.body["errors"]) == {"items.0.qty", "customer_id"}
    assert orders.calls("POST", PLACEMENTS) == []


def test_in_flight_twin_is_waited_for_then_replayed(bff, tokens, backend, orders, clock):
    attempts = {"n": 0}
    in_flight = problem(409, "idempotency_in_flight")

    def busy_then_done(req, match):
        attempts["n"] += 1
        if attempts["n"] <= 2:
            return 409, in_flight, {"Retry-After": "1"}
        return backend._keyed(req, lambda: backend._place(req.body))

    orders.on("POST", PLACEMENTS, busy_then_done)
    answer = place(bff, tokens.admin())
    assert answer.status == 201
    assert attempts["n"] == 3 and clock.sleeps == [1.0, 1.0]


def test_in_flight_wait_is_bounded_then_passed_through(bff, tokens, backend, orders, clock):
    orders.on("POST", PLACEMENTS, (409, problem(409, "idempotency_in_flight"), {"Retry-After": "2"}))
    answer = place(bff, tokens.admin())
    assert answer.status == 409 and answer.body["code"] == "idempotency_in_flight"
    assert answer.header("Retry-After") == "2"
    assert sum(clock.sleeps) <= 3.0  # IDEMPOTENCY_IN_FLIGHT_MAX_WAIT_SECONDS
    assert orders.calls(r"POST", r"/orders/\d+/confirm") == []


def test_downstream_problem_keeps_status_and_body_with_our_request_id(bff, tokens, backend, orders, sqs):
    stock = problem(409, "insufficient_stock", product_id=2, requested=5, available=1, request_id="theirs")
    orders.on("POST", PLACEMENTS, (409, stock))
    answer = place(bff, tokens.admin(), headers={"X-Request-Id": "ours-1"})
    assert answer.status == 409
    assert answer.body == {**stock, "request_id": "ours-1"}
    assert answer.header("Content-Type") == "application/problem+json"
    assert sqs.sent == []


def test_unknown_customer_is_a_404_and_nothing_is_ordered(bff, tokens, backend, customers, orders):
    customers.on("GET", r"/internal/customers/\d+", (404, problem(404, "not_found", resource="customer")))
    answer = place(bff, tokens.admin())
    assert answer.status == 404 and answer.body["resource"] == "customer"
    assert orders.calls("POST", PLACEMENTS) == []


def test_a_down_dependency_is_a_quick_503(bff_deps, bff, tokens, backend, monkeypatch):
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(bff_deps.customers, "pool", keep_alive_pool(closed, 1))
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
    assert orders.calls("POST", PLACEMENTS)[0].body == {"customer_id": 3, "from_cart": True}
    assert orders.calls("POST", PLACEMENTS)[0].headers["idempotency-key"] == derive_key(
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


def test_restock_without_a_key_is_not_resent_after_a_dropped_answer(bff, tokens, orders):
    orders.on("POST", r"/products/\d+/restock", (503, None))
    answer = bff("POST", "/products/1/restock", token=tokens.admin(), body={"qty": 5})
    assert answer.status == 503
    (sent,) = orders.calls("POST", r"/products/1/restock")
    assert "idempotency-key" not in sent.headers


def test_restock_with_a_key_sends_a_derived_key_and_is_resent(bff, tokens, orders):
    answers = iter([(503, None), (200, {"id": 1, "stock": 9})])
    orders.on("POST", r"/products/\d+/restock", lambda _req, _m: next(answers))
    answer = bff(
        "POST", "/products/1/restock", token=tokens.admin(user_id=3), body={"qty": 5}, headers={"Idempotency-Key": "r1"}
    )
    assert answer.status == 200 and answer.body["stock"] == 9
    sent = orders.calls("POST", r"/products/1/restock")
    assert [r.headers["idempotency-key"] for r in sent] == [derive_key("user:3", "restock", "r1")] * 2
    bad = bff("POST", "/products/1/restock", token=tokens.admin(), body={"qty": 5}, headers={"Idempotency-Key": ""})
    assert bad.status == 400


def test_a_slow_dependency_ends_in_a_problem_inside_the_lambda_timeout(bff, tokens, backend, customers, orders):
    def slow(_req, _m):
        time.sleep(3)
        return 200, {"id": 1}

    customers.on("GET", r"/internal/customers/(\d+)", slow)
    started = time.monotonic()
    # 3.5 s left and a 1.5 s margin: 2 s for the whole placement, though one call alone may take 2+3 s.
    answer = call_handler(
        bff_handler,
        "POST",
        PLACE,
        token=tokens.admin(),
        body={"customer_id": 1, "items": ITEMS},
        headers={"Idempotency-Key": "slow"},
        timeout_seconds=3.5,
    )
    elapsed = time.monotonic() - started
    assert answer.status == 503 and answer.header("Retry-After")
    assert answer.body["code"] in ("dependency_unavailable", "time_budget_exhausted")
    assert elapsed < 3.5  # answered by us, before the function would have been killed
    assert orders.calls("POST", PLACEMENTS) == []


def test_sender_backs_off_between_attempts():
    from .stubs import FakeSqs

    sleeps: list[float] = []
    sender = SqsSender(FakeSqs(failures=2), max_retries=3, backoff_seconds=0.1, sleep=sleeps.append)
    assert sender.send(QUEUE_URL, "{}") == "msg-1"
    assert sleeps == [0.1, 0.2]
