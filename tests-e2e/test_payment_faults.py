"""Payments under faults: each order charged at most once, nothing lost (docs/payments.md).

One stack for the module: real processes on MariaDB, moto's SQS, the gateway simulator deciding
at random (70 % approved), a 2 s visibility timeout, a maxReceiveCount no retry storm reaches,
and a sweeper every second that re-publishes PENDING and PROCESSING payments after 1 s.

The chaos test runs 36 orders through the BFF while:
- every payment event is delivered three times (two copies published straight to the queue);
- the sweeper re-publishes anything not settled within a second;
- the gateway loses the answer of every third charge after recording it;
- the payments poller is SIGKILLed mid-batch and restarted;
- orders-service is restarted;
- some customers cancel right after ordering, racing the charge.
Then: every PAID order has exactly one charge in the gateway's ledger under one key, no CANCELED
order has a successful charge, nothing is left PENDING or PROCESSING, stock is conserved, and no
process logged a 500.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import pytest
import requests
from e2e_support import ROOT, Bff, E2eStack, running_stack, wait_for

from orchestrator.payment_events import PaymentRequested

T = TypeVar("T")
VISIBILITY_TIMEOUT = 2
LOSE_EVERY = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {
        "PAYMENT_SIMULATION_MODE": "random",
        "PAYMENT_SUCCESS_RATE": "0.7",
        "PAYMENT_GRACE_SECONDS": "1",
        "PAYMENT_PROCESSING_GRACE_SECONDS": "1",
        "GATEWAY_FAULT_LOSE_ANSWER_EVERY_N": str(LOSE_EVERY),
        # A client retries a 503 with its key; a restarted orders-service must not be a long wait.
        "DOWNSTREAM_RETRIES": "2",
    }
    with running_stack(
        tmp_path_factory.mktemp("payment-faults") / "log",
        env=env,
        max_receive_count=1000,
        visibility_timeout_seconds=VISIBILITY_TIMEOUT,
        sweeper_interval_seconds=1.0,
    ) as stack:
        yield stack


@pytest.fixture(autouse=True)
def whole_stack_and_default_faults(stack: E2eStack):
    stack.ensure_running("orders-service", "payments", "sweeper", "gateway")
    stack.gateway.set_faults(lose_answer_every_n=LOSE_EVERY)
    yield
    stack.ensure_running("orders-service", "payments", "sweeper", "gateway")


def place_until_answered(client: Bff, items: list[dict[str, int]], key: str, deadline_seconds: float = 60) -> dict:
    """What a careful client does: resend with the same key until the BFF answers 201."""
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            answer = client.place(items, key=key)
        except requests.RequestException:
            answer = None
        if answer is not None and answer.status_code == 201:
            return answer.json()
        if answer is not None:
            assert answer.status_code == 503, answer.text  # a dependency restarting: retry
            assert answer.headers.get("Retry-After"), answer.headers
        assert time.monotonic() < deadline, f"no 201 for key {key}"
        time.sleep(0.3)


def settled_orders(client: Bff, order_ids: list[int], timeout: float) -> dict[int, dict[str, Any]]:
    def all_final() -> dict[int, dict[str, Any]] | None:
        orders = {order_id: client.order(order_id) for order_id in order_ids}
        if all(o["status"] in ("PAID", "CANCELED") and o["payment_status"] != "PROCESSING" for o in orders.values()):
            return orders
        return None

    return wait_for(all_final, timeout=timeout, interval=0.5, what="every order to be PAID or CANCELED")


def successful(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in charges if c["outcome"] == "succeeded"]


def assert_no_500_logged(stack: E2eStack) -> None:
    for name in stack.stack.processes:
        for record in stack.records(name):
            assert record.get("status") != 500, (name, record)
            assert record.get("message") not in ("unhandled_exception", "payment_succeeded_after_cancel"), (
                name,
                record,
            )


def run_beside(faults: Callable[[], None], work: Callable[[T], None], items: list[T]) -> None:
    """`work` on every item from four client threads, while `faults` runs on a thread of its own."""
    chaos = threading.Thread(target=faults, name="chaos", daemon=True)
    chaos.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, items))
    chaos.join(timeout=120)
    assert not chaos.is_alive()


def kill_group(stack: E2eStack, name: str) -> None:
    """SIGKILL a process and everything in its process group: no goodbye, no cleanup."""
    process = stack.stack.processes[name]
    os.killpg(process.pid, signal.SIGKILL)
    process.stop()  # reaps what is left


# --- cancel racing a charge -------------------------------------------------------------------


def test_a_cancel_before_the_claim_wins_and_nothing_is_charged(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.stack.stop_process("sweeper")
    stack.stack.stop_process("payments")  # the events wait in the queue
    placed = [place_until_answered(user, [{"product_id": product["id"], "qty": 1}], uuid.uuid4().hex) for _ in range(4)]
    canceled, kept = placed[:2], placed[2:]
    for body in canceled:
        answer = user.request(
            "POST", f"/orders/{body['data']['order']['id']}/cancel", headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        assert answer.status_code == 200 and answer.json()["status"] == "CANCELED", answer.text
    stack.gateway.set_faults()  # every outcome answered, so the kept ones settle at once
    stack.stack.start_process("payments")
    stack.stack.start_process("sweeper")

    ids = [body["data"]["order"]["id"] for body in placed]
    final = settled_orders(user, ids, timeout=30)
    for body in canceled:
        order_id = body["data"]["order"]["id"]
        assert (final[order_id]["status"], final[order_id]["cancel_reason"]) == ("CANCELED", "requested")
        assert stack.gateway.charges(order_id) == []  # its message was delivered, and refused at the claim
    for body in kept:
        order_id = body["data"]["order"]["id"]
        assert len(stack.gateway.charges(order_id)) == 1
    assert admin.stock(product["id"]) == 10 - sum(1 for o in final.values() if o["status"] == "PAID")


def test_a_cancel_during_the_charge_is_409_and_the_order_is_paid_once(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.gateway.set_faults(slow_seconds=3)  # the charge takes 3 s: a window to cancel in
    body = place_until_answered(user, [{"product_id": product["id"], "qty": 2}], uuid.uuid4().hex)
    order_id = body["data"]["order"]["id"]
    wait_for(
        lambda: user.order(order_id)["payment_status"] == "PROCESSING",
        timeout=20,
        interval=0.05,
        what="the payments Lambda to claim the order",
    )
    answer = user.request("POST", f"/orders/{order_id}/cancel", headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 409 and answer.json()["code"] == "payment_in_progress", answer.text
    final = settled_orders(user, [order_id], timeout=30)[order_id]
    charges = stack.gateway.charges(order_id)
    assert len(charges) == 1
    if final["status"] == "PAID":
        assert charges[0]["outcome"] == "succeeded" and admin.stock(product["id"]) == 8
    else:  # the random decision declined it: canceled by the payment, stock back, nothing taken
        assert final["cancel_reason"] == "payment_failed" and charges[0]["outcome"] == "failed"
        assert admin.stock(product["id"]) == 10


def test_cancels_racing_charges_never_leave_a_canceled_order_charged(stack, admin, user):
    product = admin.new_product(stock=50)
    rng = random.Random(8)
    results: list[tuple[int, int, str | None]] = []

    def order_and_cancel(delay: float) -> None:
        body = place_until_answered(user, [{"product_id": product["id"], "qty": 1}], uuid.uuid4().hex)
        order_id = body["data"]["order"]["id"]
        time.sleep(delay)
        answer = user.request("POST", f"/orders/{order_id}/cancel", headers={"Idempotency-Key": uuid.uuid4().hex})
        results.append((order_id, answer.status_code, answer.json().get("code")))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(order_and_cancel, [rng.uniform(0, 1.5) for _ in range(12)]))
    final = settled_orders(user, [order_id for order_id, _, _ in results], timeout=40)
    for order_id, status, code in results:
        order, charges = final[order_id], stack.gateway.charges(order_id)
        if status == 200:
            assert order["status"] == "CANCELED" and order["cancel_reason"] == "requested"
            assert charges == []
        else:
            assert status == 409 and code in ("payment_in_progress", "invalid_state_transition"), code
            assert len(charges) == 1
            assert order["status"] == ("PAID" if charges[0]["outcome"] == "succeeded" else "CANCELED")
    assert admin.stock(product["id"]) == 50 - sum(1 for o in final.values() if o["status"] == "PAID")


# --- chaos -------------------------------------------------------------------------------------


def test_chaos_every_order_charged_at_most_once_and_settled(stack, admin, user):
    products = [admin.new_product(stock=200, price_cents=100 + 11 * n) for n in range(3)]
    product_ids = [p["id"] for p in products]
    sqs = stack.sqs()
    rng = random.Random(20261202)
    plan = [
        (
            [{"product_id": pid, "qty": rng.randint(1, 4)} for pid in rng.sample(product_ids, rng.randint(1, 3))],
            n % 6 == 0,  # one order in six: its customer cancels at once, racing the charge
        )
        for n in range(36)
    ]
    placed: dict[int, dict[str, Any]] = {}
    cancels: dict[int, int] = {}
    lock = threading.Lock()
    progress = threading.Semaphore(0)

    def run(step: tuple[list[dict[str, int]], bool]) -> None:
        items, cancel = step
        body = place_until_answered(user, items, uuid.uuid4().hex)
        order = body["data"]["order"]
        event = PaymentRequested.for_order(order, body["correlation_id"]).to_body()
        for _ in range(2):  # two more deliveries of the same event, straight to the queue
            sqs.send_message(QueueUrl=stack.queue_url, MessageBody=event)
        if cancel:
            answer = user.request(
                "POST", f"/orders/{order['id']}/cancel", headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            assert answer.status_code in (200, 409, 503), answer.text
            with lock:
                cancels[order["id"]] = answer.status_code
        with lock:
            placed[order["id"]] = {"items": items}
        progress.release()

    def faults() -> None:
        for _ in range(10):
            progress.acquire()
        # Mid-batch: with every charge slowed, the poller spends its time inside batches.
        stack.gateway.set_faults(lose_answer_every_n=LOSE_EVERY, slow_seconds=0.4)
        wait_for(
            lambda: any(r.get("message") == "payment_charged" for r in stack.records("payments")),
            timeout=30,
            what="a charge to be under way",
        )
        time.sleep(0.6)
        kill_group(stack, "payments")
        stack.stack.start_process("payments")
        stack.gateway.set_faults(lose_answer_every_n=LOSE_EVERY)
        for _ in range(10):
            progress.acquire()
        stack.stack.restart("orders-service")

    run_beside(faults, run, plan)

    final = settled_orders(admin, list(placed), timeout=120)
    # Let the last duplicates and re-publishes drain: nothing may change any more.
    wait_for(
        lambda: (
            sum(
                int(v)
                for v in sqs.get_queue_attributes(
                    QueueUrl=stack.queue_url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"].values()
            )
            == 0
        ),
        timeout=60,
        interval=0.5,
        what="the payments queue to drain",
    )
    assert {order_id: admin.order(order_id)["status"] for order_id in final} == {
        order_id: order["status"] for order_id, order in final.items()
    }

    statuses = Counter(order["status"] for order in final.values())
    assert set(statuses) <= {"PAID", "CANCELED"} and statuses["PAID"] >= 5, statuses
    for order_id, order in final.items():
        charges = stack.gateway.charges(order_id)
        if order["status"] == "PAID":
            assert len(charges) == 1 and charges[0]["outcome"] == "succeeded", (order_id, charges)
            assert charges[0]["amount_cents"] == order["total_cents"]
        else:
            assert successful(charges) == [], (order_id, charges)
            assert len(charges) <= 1
            if cancels.get(order_id) == 200:
                assert order["cancel_reason"] == "requested" and charges == []
    # Every charge the gateway made belongs to one of our orders and was settled by it.
    ledger = [c for c in stack.gateway.all_charges() if c["order_id"] in final]
    assert len({c["idempotency_key"] for c in ledger}) == len(ledger) == len({c["order_id"] for c in ledger})

    # Stock conserved: each product's stock is what was received minus what PAID orders hold.
    for product in products:
        held = sum(
            line["qty"]
            for order_id, order in final.items()
            if order["status"] != "CANCELED"
            for line in placed[order_id]["items"]
            if line["product_id"] == product["id"]
        )
        assert admin.stock(product["id"]) == 200 - held

    # The faults really happened.
    assert any("lose_answer" in (r.get("fault") or "") for r in stack.records("gateway")), "no answer was lost"
    refused = sum(1 for r in stack.records("payments") if r.get("message") == "payment_not_needed")
    assert refused >= len(final) // 2  # duplicates reached the consumer and were acknowledged unpaid
    assert queue_depth_dlq(stack) == 0
    assert_no_500_logged(stack)


def test_placements_cut_by_a_killed_orders_service_make_one_confirmed_order_per_key(stack, admin, user):
    """orders-service SIGKILLed while placements (`POST /internal/placements`: create and confirm
    in one transaction) are in flight, then started again. Each client key, resent until
    answered, made exactly one order, confirmed, and no stray order holds stock: the product lost
    exactly what the settled orders hold."""
    product = admin.new_product(stock=500)
    items = [{"product_id": product["id"], "qty": 2}]
    keys = [uuid.uuid4().hex for _ in range(24)]
    answers: dict[str, dict[str, Any]] = {}
    failures_before = _placement_failures(stack)
    started = threading.Semaphore(0)

    def run(key: str) -> None:
        started.release()
        answers[key] = place_until_answered(user, items, key)

    def kill_and_restart() -> None:
        for _ in range(6):
            started.acquire()
        kill_group(stack, "orders-service")
        time.sleep(0.5)
        stack.stack.start_process("orders-service")

    run_beside(kill_and_restart, run, keys)
    assert _placement_failures(stack) > failures_before, "no placement met the killed orders-service"

    order_ids = [answers[key]["data"]["order"]["id"] for key in keys]
    assert len(set(order_ids)) == len(keys)  # one order per key, none doubled
    assert all(answers[key]["data"]["order"]["status"] == "CONFIRMED" for key in keys)
    for key in keys[:3]:  # and each key keeps answering its own order
        assert place_until_answered(user, items, key)["data"]["order"]["id"] == answers[key]["data"]["order"]["id"]
    final = settled_orders(admin, order_ids, timeout=120)
    paid = sum(1 for order in final.values() if order["status"] == "PAID")
    # No stray order holds stock: the product lost exactly what the PAID orders hold.
    assert admin.stock(product["id"]) == 500 - 2 * paid
    assert_no_500_logged(stack)


def _placement_failures(stack: E2eStack) -> int:
    """Placements the BFF could not answer with a 201 so far (503s while orders-service was down)."""
    return sum(
        1
        for r in stack.records("bff")
        if r.get("message") == "http_request"
        and r.get("path") == "/orchestrator/create-and-confirm-order"
        and r.get("status") != 201
    )


def queue_depth_dlq(stack: E2eStack) -> int:
    attributes = stack.sqs().get_queue_attributes(
        QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_payment_events_carry_no_authority(stack, admin, user):
    """A forged or stale message (wrong amount, unknown order) charges nothing it should not."""
    product = admin.new_product(stock=5, price_cents=700)
    stack.stack.stop_process("payments")
    body = place_until_answered(user, [{"product_id": product["id"], "qty": 1}], uuid.uuid4().hex)
    order = body["data"]["order"]
    forged = orjson.loads(PaymentRequested.for_order(order, "forged").to_body())
    forged["amount_cents"] = 1
    stack.sqs().send_message(QueueUrl=stack.queue_url, MessageBody=orjson.dumps(forged).decode())
    stack.stack.start_process("payments")
    settled_orders(user, [order["id"]], timeout=30)
    (charge,) = stack.gateway.charges(order["id"])
    assert charge["amount_cents"] == 700  # from the order's rows, not the message


def test_the_payments_consumer_can_be_held_and_released(stack, admin, user):
    """`scripts/payments_consumer.py hold|release` (make payments-hold / payments-release):
    events wait in the queue while held, and settle once released."""
    var_dir = stack.stack.config.log_dir.parent

    def consumer(action: str) -> None:
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "payments_consumer.py"), action, "--var-dir", str(var_dir)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert f"payments consumer (pid {stack.stack.processes['payments'].pid}): {action}" in result.stdout

    product = admin.new_product(stock=5)
    consumer("hold")
    try:
        wait_for(
            lambda: any(r.get("message") == "sqs_poller_held" for r in stack.records("payments")),
            timeout=20,
            what="the poller to say it is held",
        )
        body = place_until_answered(user, [{"product_id": product["id"], "qty": 1}], uuid.uuid4().hex)
        order_id = body["data"]["order"]["id"]
        time.sleep(3)  # the sweeper re-publishes it every second meanwhile: still nothing is taken
        assert user.order(order_id)["payment_status"] == "PENDING"
        assert stack.gateway.charges(order_id) == []
    finally:
        consumer("release")
    settled_orders(user, [order_id], timeout=30)
    assert len(stack.gateway.charges(order_id)) == 1
