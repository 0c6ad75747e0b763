"""Failures between the processes: SQS unreachable for the publishers, orders-service down while
payments wait in the queue, poison messages, the DLQ and its re-drive.

One stack for the module, with a fault-injecting TCP proxy between the BFF/sweeper and moto
(moto keeps its queues in memory, so it is never restarted), a 2 s visibility timeout, a high
maxReceiveCount (lowered on the queue for the re-drive test), a 2 s payment grace period and a 1 s
sweeper.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from e2e_support import ROOT, Bff, E2eStack, FaultyProxy, applied_outcomes, running_stack, wait_for

MAX_RECEIVE_COUNT = 20
VISIBILITY_TIMEOUT = 2
GRACE_SECONDS = 2


@pytest.fixture(scope="module")
def proxy():
    holder: dict[str, FaultyProxy] = {}

    def endpoint(sqs_port: int) -> str:
        holder["proxy"] = FaultyProxy(sqs_port).start()
        return holder["proxy"].url

    yield holder, endpoint
    if "proxy" in holder:
        holder["proxy"].stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, proxy):
    holder, endpoint = proxy
    env = {"PAYMENT_GRACE_SECONDS": str(GRACE_SECONDS), "RESERVATION_TTL_SECONDS": "900"}
    with running_stack(
        tmp_path_factory.mktemp("resilience") / "log",
        env=env,
        sqs_endpoint_for_publishers=endpoint,
        max_receive_count=MAX_RECEIVE_COUNT,
        visibility_timeout_seconds=VISIBILITY_TIMEOUT,
    ) as stack:
        stack.proxy = holder["proxy"]
        yield stack


@pytest.fixture(autouse=True)
def everything_running_again(stack: E2eStack):
    """Whatever a test stopped or cut, the next one starts from a whole stack."""
    yield
    stack.proxy.heal()
    stack.ensure_running("orders-service", "payments", "sweeper")


def queue_depth(stack: E2eStack, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = stack.sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(attributes[name]) for name in names)


def place(user: Bff, product_id: int, qty: int = 1) -> dict:
    answer = user.place([{"product_id": product_id, "qty": qty}])
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_publish_failure_is_answered_honestly_and_the_sweeper_settles_it_once(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.proxy.cut()
    body = place(user, product["id"], qty=2)
    assert body["success"] is True
    assert body["payment_event"]["status"] == "deferred" and "sweeper" in body["payment_event"]["detail"]
    order = body["data"]["order"]
    assert (order["status"], order["payment_status"]) == ("CONFIRMED", "PENDING")

    # While SQS stays unreachable nothing can settle it: the sweeper's re-publish fails too.
    def republish_failed() -> bool:
        return any(
            r.get("message") == "sweep_finished" and r.get("payment_events_failed", 0) >= 1
            for r in stack.records("sweeper")
        )

    wait_for(republish_failed, timeout=GRACE_SECONDS + 15, what="a failed re-publish by the sweeper")
    assert user.order(order["id"])["payment_status"] == "PENDING"

    stack.proxy.heal()
    paid = user.wait_for_order(order["id"], {"PAID", "CANCELED"}, timeout=GRACE_SECONDS + 20)
    assert (paid["status"], paid["payment_status"]) == ("PAID", "SUCCEEDED")
    assert any(
        r.get("message") == "payment_event_published" and r.get("order_id") == order["id"]
        for r in stack.records("sweeper")
    )
    time.sleep(VISIBILITY_TIMEOUT)  # let any duplicate re-publish reach the payments Lambda
    assert len(applied_outcomes(stack, order["id"])) == 1
    assert admin.stock(product["id"]) == 8


def test_payments_are_retried_while_orders_service_is_down_and_settle_when_it_returns(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.stack.stop_process("sweeper")  # only the queue's redelivery may settle these
    stack.stack.stop_process("payments")
    order_ids = [place(user, product["id"])["data"]["order"]["id"] for _ in range(3)]
    stack.stack.stop_process("orders-service")
    stack.stack.start_process("payments")

    def retried_twice() -> bool:
        retries = [
            r
            for r in stack.records("payments")
            if r.get("message") == "payment_retry_later" and r.get("order_id") in order_ids
        ]
        return {r["order_id"] for r in retries if int(r.get("receive_count") or 0) >= 2} == set(order_ids)

    wait_for(retried_twice, timeout=4 * VISIBILITY_TIMEOUT + 15, what="every payment to be received twice")
    stack.stack.start_process("orders-service")
    for order_id in order_ids:
        assert user.wait_for_order(order_id, {"PAID", "CANCELED"}, timeout=30)["status"] == "PAID"
        assert len(applied_outcomes(stack, order_id)) == 1
    assert queue_depth(stack, stack.dlq_url) == 0
    assert admin.stock(product["id"]) == 7


def test_a_malformed_message_goes_to_the_dlq_while_the_rest_of_its_batch_settles(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.stack.stop_process("sweeper")
    stack.stack.stop_process("payments")
    order_ids = [place(user, product["id"])["data"]["order"]["id"] for _ in range(2)]
    sqs = stack.sqs()
    poison_id = sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody='{"type": "payment.requested", "order_id": "not-a-number"',
        MessageAttributes={"request_id": {"DataType": "String", "StringValue": "e2e-poison"}},
    )["MessageId"]
    stack.stack.start_process("payments")

    for order_id in order_ids:
        assert user.wait_for_order(order_id, {"PAID", "CANCELED"}, timeout=20)["status"] == "PAID"
    batches = [r for r in stack.records("payments") if r.get("message") == "batch_processed"]
    assert {"received": 3, "deleted": 3, "failed": 0}.items() <= batches[-1].items()

    dead = sqs.receive_message(
        QueueUrl=stack.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=2
    ).get("Messages", [])
    assert len(dead) == 1
    attributes = dead[0]["MessageAttributes"]
    assert attributes["dlq_reason"]["StringValue"] == "malformed_message"
    assert attributes["source_message_id"]["StringValue"] == poison_id
    assert attributes["request_id"]["StringValue"] == "e2e-poison"
    sqs.delete_message(QueueUrl=stack.dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])
    assert queue_depth(stack, stack.queue_url) == 0


def test_a_payment_dead_lettered_after_max_receives_settles_after_the_redrive(stack, admin, user):
    product = admin.new_product(stock=10)
    sqs = stack.sqs()
    redrive_policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )

    def set_max_receive_count(count: int) -> None:
        policy = json.dumps({**redrive_policy, "maxReceiveCount": count})
        sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": policy})

    stack.stack.stop_process("sweeper")
    stack.stack.stop_process("payments")
    order_id = place(user, product["id"], qty=3)["data"]["order"]["id"]
    stack.stack.stop_process("orders-service")
    set_max_receive_count(2)
    try:
        stack.stack.start_process("payments")
        wait_for(
            lambda: queue_depth(stack, stack.dlq_url) == 1 and queue_depth(stack, stack.queue_url) == 0,
            timeout=4 * VISIBILITY_TIMEOUT + 15,
            what="the payment to reach the DLQ after 2 receives",
        )
    finally:
        set_max_receive_count(MAX_RECEIVE_COUNT)
    stack.stack.start_process("orders-service")
    time.sleep(VISIBILITY_TIMEOUT)
    assert user.order(order_id)["payment_status"] == "PENDING"  # nothing re-publishes it: sweeper off

    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "redrive_dlq.py"),
            "--endpoint-url",
            stack.stack.config.sqs_endpoint,
            "--dlq-url",
            stack.dlq_url,
            "--queue-url",
            stack.queue_url,
        ],
        env={**stack.env, "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    paid = user.wait_for_order(order_id, {"PAID", "CANCELED"}, timeout=20)
    assert paid["status"] == "PAID" and len(applied_outcomes(stack, order_id)) == 1
    assert queue_depth(stack, stack.dlq_url) == 0
    assert admin.stock(product["id"]) == 7
