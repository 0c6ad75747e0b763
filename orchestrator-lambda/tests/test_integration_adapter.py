"""The local API Gateway adapter serving real HTTP to the BFF handler, end to end.

Downstreams are stub HTTP servers; SQS is the moto server process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import orjson
import pytest
import requests

from orchestrator.bff.handler import lambda_handler
from orchestrator.local.apigw_adapter import DEFAULT_HANDLER, ApiGatewayAdapter
from orchestrator.local.environments import InProcessInvoker, ProcessPoolInvoker
from orchestrator.local.queues import ensure_payment_queues
from servicekit.testing import free_port

from .test_bff_orders import ITEMS, OrdersBackend


@pytest.fixture
def in_process(bff_deps):
    with ApiGatewayAdapter(InProcessInvoker(lambda_handler), port=0) as adapter:
        yield adapter.base_url


def test_adapter_serves_the_bff_over_http(in_process, tokens, orders, customers, sqs):
    OrdersBackend(orders)
    customers.on("GET", r"/internal/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1])}))

    health = requests.get(in_process + "/health", headers={"X-Request-Id": "adapter-1"}, timeout=5)
    assert health.status_code == 200 and health.headers["X-Request-Id"] == "adapter-1"
    assert health.headers["apigw-requestid"]

    missing = requests.get(in_process + "/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json" and missing.json()["code"] == "not_found"

    wrong = requests.delete(in_process + "/checkout", timeout=5)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"

    placed = requests.post(
        in_process + "/orchestrator/create-and-confirm-order",
        json={"customer_id": 1, "items": ITEMS},
        headers={"Authorization": f"Bearer {tokens.admin()}", "Idempotency-Key": "http-1"},
        timeout=10,
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["data"]["order"]["status"] == "CONFIRMED"
    assert sqs.sent[0]["MessageAttributes"]["request_id"]["StringValue"] == placed.headers["X-Request-Id"]


def test_adapter_refuses_oversized_payloads_like_api_gateway_but_as_a_problem(in_process):
    answer = requests.post(in_process + "/auth/login", data=b"x" * (10 * 1024 * 1024 + 1), timeout=10)
    assert answer.status_code == 413 and answer.headers["Content-Type"] == "application/problem+json"
    assert answer.json()["code"] == "payload_too_large" and answer.headers["X-Request-Id"]


def test_every_method_reaches_the_function_and_what_the_adapter_refuses_is_a_problem(in_process):
    for method in ("TRACE", "CONNECT", "BREW"):
        answer = requests.request(method, in_process + "/health", timeout=10)
        assert answer.status_code == 405 and answer.headers["Allow"] == "GET", method
        assert answer.headers["Content-Type"] == "application/problem+json"
    long_url = requests.get(in_process + "/health?" + "a" * 5000, timeout=10)
    assert long_url.status_code == 414 and long_url.json()["code"] == "uri_too_long"
    big_header = requests.get(in_process + "/health", headers={"X-Big": "a" * 9000}, timeout=10)
    assert big_header.status_code == 431 and big_header.json()["code"] == "header_fields_too_large"
    not_utf8 = requests.post(in_process + "/auth/login", data=b'{"username": "\xff"}', timeout=10)
    assert not_utf8.status_code == 400 and not_utf8.json()["code"] == "malformed_json"


def test_a_crashing_handler_is_api_gateways_500():
    def crash(event, context):
        raise RuntimeError("boom")

    with ApiGatewayAdapter(InProcessInvoker(crash), port=0) as adapter:
        answer = requests.get(adapter.base_url + "/health", timeout=5)
    assert answer.status_code == 500 and answer.json() == {"message": "Internal Server Error"}


def test_parallel_retries_through_separate_execution_environments(
    environ, orders, customers, tokens, moto_server, monkeypatch
):
    """Several Lambda environments (processes) take the same request at once: one order."""
    backend = OrdersBackend(orders)
    customers.on("GET", r"/internal/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1])}))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "local")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server)
    sqs = boto3.client("sqs", region_name="us-east-1")
    queues = ensure_payment_queues(sqs, queue_name=f"p-{uuid.uuid4().hex[:8]}", dlq_name=f"d-{uuid.uuid4().hex[:8]}")
    for name, value in {**environ, "PAYMENTS_QUEUE_URL": queues.queue_url, "LOG_LEVEL": "WARNING"}.items():
        monkeypatch.setenv(name, value)

    token = tokens.customer(1)
    with ApiGatewayAdapter(ProcessPoolInvoker(DEFAULT_HANDLER, environments=3), port=0) as adapter:

        def attempt(n: int) -> requests.Response:
            return requests.post(
                adapter.base_url + "/orchestrator/create-and-confirm-order",
                json={"items": ITEMS},
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "twice", "X-Request-Id": f"try-{n}"},
                timeout=30,
            )

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(attempt, range(6)))

    assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
    assert len({a.text for a in answers}) == 1  # identical bodies
    assert sorted(a.headers["X-Request-Id"] for a in answers) == [f"try-{n}" for n in range(6)]
    assert len(backend.orders) == 1
    assert len({r.headers["idempotency-key"] for r in orders.calls("POST", "/internal/placements")}) == 1

    published = []
    while batch := sqs.receive_message(
        QueueUrl=queues.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=1
    ).get("Messages", []):
        published += batch
    assert {orjson.loads(m["Body"])["order_id"] for m in published} == {1}
    # Twins still running when the first stored its answer publish too (harmless: the payments
    # Lambda claims before it charges); retries that find the stored answer publish nothing.
    request_ids = [m["MessageAttributes"]["request_id"]["StringValue"] for m in published]
    assert 1 <= len(request_ids) <= 6 and set(request_ids) <= {f"try-{n}" for n in range(6)}


def test_adapter_command_serves_and_stops_on_sigterm(environ):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.local.apigw_adapter", "--port", str(port), "--environments", "1"],
        env={**os.environ, **environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.headers["X-Request-Id"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
