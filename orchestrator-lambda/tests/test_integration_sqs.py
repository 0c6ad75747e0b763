"""Against a real moto server process: queues + redrive, the poller as an event source mapping,
redelivery after the visibility timeout, the DLQ after maxReceiveCount, and the re-drive tool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

import orchestrator.sqs
from orchestrator.config import load_settings
from orchestrator.local.queues import ensure_payment_queues
from orchestrator.local.sqs_poller import SqsPoller
from orchestrator.payments.handler import build_processor, lambda_handler, use_processor
from orchestrator.sqs import OutgoingMessage, SqsRequestFailed, SqsSender, make_sqs_client, string_attributes
from servicekit.config import ConfigError
from servicekit.http_client import HttpResponse

from .test_payments import OrdersPayments, payment

REPO = Path(__file__).resolve().parents[2]
VISIBILITY = 1
MAX_RECEIVES = 2


@pytest.fixture
def aws_env(moto_server, monkeypatch) -> dict[str, str]:
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_SQS": moto_server,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sqs(aws_env) -> Any:
    return boto3.client("sqs", region_name="us-east-1")


@pytest.fixture
def queues(sqs):
    suffix = uuid.uuid4().hex[:8]
    return ensure_payment_queues(
        sqs,
        queue_name=f"payments-{suffix}",
        dlq_name=f"payments-dlq-{suffix}",
        max_receive_count=MAX_RECEIVES,
        visibility_timeout_seconds=VISIBILITY,
    )


def send(sqs, queue_url: str, body: str, request_id: str = "req-1") -> str:
    attributes = {"request_id": {"DataType": "String", "StringValue": request_id}}
    return sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=attributes)["MessageId"]


def drain(sqs, queue_url: str) -> list[dict[str, Any]]:
    return sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        AttributeNames=["All"],
        WaitTimeSeconds=1,
    ).get("Messages", [])


def test_queues_are_created_idempotently_with_redrive(sqs, queues, aws_env):
    again = ensure_payment_queues(
        sqs,
        queue_name=queues.queue_url.rsplit("/", 1)[1],
        dlq_name=queues.dlq_url.rsplit("/", 1)[1],
        max_receive_count=3,
        visibility_timeout_seconds=7,
    )
    assert (again.queue_url, again.dlq_url) == (queues.queue_url, queues.dlq_url)
    attributes = sqs.get_queue_attributes(QueueUrl=queues.queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": queues.dlq_arn, "maxReceiveCount": 3}
    assert attributes["VisibilityTimeout"] == "7"

    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.local.queues",
            "--format",
            "json",
            "--queue-name",
            "cli-q",
            "--dlq-name",
            "cli-d",
        ],
        env={**os.environ, **aws_env},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(printed.stdout)["queue_url"].endswith("/cli-q")


def test_poller_batches_redelivers_failures_and_redrive_moves_them_to_the_dlq(sqs, queues):
    events: list[dict[str, Any]] = []

    def handler(event, context):
        events.append(event)
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "fail"]
        }

    for body in ("ok-1", "fail", "ok-2", "ok-3", "ok-4"):
        send(sqs, queues.queue_url, body)
    poller = SqsPoller(sqs, queues.queue_url, handler, batch_size=3, wait_time_seconds=1)

    seen: list[str] = []
    while len(seen) < 5:
        result = poller.poll_once()
        assert result.received <= 3  # never more than the batch size
        seen += [r["body"] for r in events[-1]["Records"]] if result.received else []
    assert sorted(seen) == ["fail", "ok-1", "ok-2", "ok-3", "ok-4"]
    record = events[0]["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == queues.queue_arn
    assert record["messageAttributes"]["request_id"]["stringValue"] == "req-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1" and record["md5OfBody"]

    # Only the failed message is left, invisible until the visibility timeout has passed.
    assert poller.poll_once().received == 0
    time.sleep(VISIBILITY + 0.2)
    redelivered = poller.poll_once()
    assert redelivered.received == 1 and events[-1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"

    # Past maxReceiveCount the queue's redrive policy moves it to the DLQ, attributes intact.
    time.sleep(VISIBILITY + 0.2)
    assert poller.poll_once().received == 0
    (dead,) = drain(sqs, queues.dlq_url)
    assert dead["Body"] == "fail" and dead["MessageAttributes"]["request_id"]["StringValue"] == "req-1"


def test_redrive_tool_moves_dlq_messages_back(sqs, queues, aws_env):
    send(sqs, queues.dlq_url, '{"order_id": 1}', request_id="req-dead")
    send(sqs, queues.dlq_url, '{"order_id": 2}', request_id="req-dead-2")
    command = [sys.executable, str(REPO / "scripts" / "redrive_dlq.py"), "--dlq-url", queues.dlq_url]
    command += ["--queue-url", queues.queue_url]
    env = {**os.environ, **aws_env}

    dry = subprocess.run([*command, "--dry-run"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(dry.stdout)["moved"] == 0 and len(json.loads(dry.stdout)["messages"]) == 2

    moved = subprocess.run([*command, "--max", "1"], env=env, capture_output=True, text=True, check=True)
    assert json.loads(moved.stdout)["moved"] == 1
    subprocess.run(command, env=env, capture_output=True, text=True, check=True)

    back = drain(sqs, queues.queue_url)
    assert sorted(m["Body"] for m in back) == ['{"order_id": 1}', '{"order_id": 2}']
    assert {m["MessageAttributes"]["request_id"]["StringValue"] for m in back} == {"req-dead", "req-dead-2"}
    assert drain(sqs, queues.dlq_url) == []


def test_payments_lambda_behind_the_poller(sqs, queues, environ, orders, aws_env, gateway_simulator):
    store = OrdersPayments(orders, unknown={404}, statuses={7: 503})
    gateway_simulator.set_faults()
    settings = load_settings(
        {
            **environ,
            "PAYMENTS_DLQ_URL": queues.dlq_url,
            "PAYMENT_GATEWAY_URL": gateway_simulator.base_url,
            "PAYMENT_GATEWAY_API_KEY": gateway_simulator.api_key,
        }
    )
    # The Lambda's own client (its short timeouts fit the time budget), on the same moto server.
    client = make_sqs_client(settings, endpoint_url=aws_env["AWS_ENDPOINT_URL_SQS"])
    use_processor(build_processor(settings, sqs_client=client))
    try:
        send(sqs, queues.queue_url, orjson.dumps(payment(1)).decode(), request_id="req-good")
        send(sqs, queues.queue_url, orjson.dumps(payment(404)).decode(), request_id="req-poison")
        send(sqs, queues.queue_url, orjson.dumps(payment(7)).decode(), request_id="req-transient")
        poller = SqsPoller(sqs, queues.queue_url, lambda_handler, batch_size=10, wait_time_seconds=1)
        handled = 0
        while handled < 3:
            handled += poller.poll_once().received
        assert 1 in store.applied

        # The poison message was dead-lettered by the Lambda itself, with the reason.
        dead = drain(sqs, queues.dlq_url)
        assert [m["MessageAttributes"]["dlq_reason"]["StringValue"] for m in dead] == ["unknown_order"]
        assert dead[0]["MessageAttributes"]["request_id"]["StringValue"] == "req-poison"

        # The transient one is retried until maxReceiveCount, then redrive moves it to the DLQ.
        deadline = time.monotonic() + 10
        while not (dead := drain(sqs, queues.dlq_url)) and time.monotonic() < deadline:
            poller.poll_once()
        assert [m["MessageAttributes"]["request_id"]["StringValue"] for m in dead] == ["req-transient"]
        assert "dlq_reason" not in dead[0]["MessageAttributes"]
        assert len(orders.calls("POST", r"/internal/orders/7/payment-claim")) == MAX_RECEIVES * 2  # 1 retry each
        # Charged through the real gateway simulator: once, under the claimed attempt id; the
        # order that could never be claimed was never charged.
        charges = gateway_simulator.charges(order_id=1)
        assert [(c["outcome"], c["idempotency_key"]) for c in charges] == [("succeeded", "pay_1")]
        assert gateway_simulator.charges(order_id=7) == []
    finally:
        use_processor(None)


def test_poller_process_stops_cleanly_on_sigterm(queues, aws_env):
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.local.sqs_poller", "--queue-url", queues.queue_url, "--wait-seconds", "1"],
        env={**os.environ, **aws_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert "sqs_poller_started" in line, line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "sqs_poller_stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_the_signed_client_sends_what_boto3_receives(sqs, queues, aws_env):
    """SqsClient (one SigV4-signed POST in SQS's JSON protocol) against moto: body, string and
    binary attributes arrive as sent, and the MessageId is the one SQS gave."""
    settings = load_settings({**os.environ, "PAYMENTS_QUEUE_URL": queues.queue_url})
    client = make_sqs_client(settings)
    assert client.endpoint == aws_env["AWS_ENDPOINT_URL_SQS"].rstrip("/") + "/"
    attributes = {
        "request_id": {"DataType": "String", "StringValue": "req-signed"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01raw"},
    }
    answer = client.send_message(QueueUrl=queues.queue_url, MessageBody='{"order_id": 5}', MessageAttributes=attributes)
    (received,) = drain(sqs, queues.queue_url)
    assert received["MessageId"] == answer["MessageId"]
    assert received["Body"] == '{"order_id": 5}'
    assert received["MessageAttributes"]["request_id"]["StringValue"] == "req-signed"
    assert received["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01raw"


def test_the_signed_client_reports_failures_as_sqs_request_failed(queues, aws_env):
    settings = load_settings(dict(os.environ))
    client = make_sqs_client(settings)
    with pytest.raises(SqsRequestFailed, match="HTTP 400"):
        client.send_message(QueueUrl=queues.queue_url + "-missing", MessageBody="x")
    unreachable = make_sqs_client(settings, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(SqsRequestFailed, match="ConnectionError"):
        unreachable.send_message(QueueUrl=queues.queue_url, MessageBody="x")
    with pytest.raises(ConfigError, match="no AWS credentials"):  # at start, not at the first send
        make_sqs_client(settings, environ={"AWS_ENDPOINT_URL_SQS": aws_env["AWS_ENDPOINT_URL_SQS"]})


def test_the_signed_client_refuses_an_answer_whose_md5_is_not_the_bodys(queues, aws_env, monkeypatch):
    real_send = orchestrator.sqs.send

    def wrong_md5(*args, **kwargs):
        response = real_send(*args, **kwargs)
        answer = orjson.loads(response.content)
        assert answer["MD5OfMessageBody"]
        wrong = orjson.dumps({**answer, "MD5OfMessageBody": "0" * 32})
        return HttpResponse(response.status_code, response.headers, wrong)

    monkeypatch.setattr(orchestrator.sqs, "send", wrong_md5)
    client = make_sqs_client(load_settings(dict(os.environ)))
    with pytest.raises(SqsRequestFailed, match="MD5"):
        client.send_message(QueueUrl=queues.queue_url, MessageBody="x")


def test_a_batch_send_reaches_sqs_ten_to_a_call_with_each_message_id(sqs, queues, aws_env):
    settings = load_settings({**os.environ, "PAYMENTS_QUEUE_URL": queues.queue_url})
    sender = SqsSender(make_sqs_client(settings), max_retries=0)
    outgoing = [OutgoingMessage(f'{{"order_id": {n}}}', string_attributes(request_id=f"req-{n}")) for n in range(1, 13)]
    results = sender.send_batch(queues.queue_url, outgoing)
    received: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while len(received) < 12 and time.monotonic() < deadline:
        received.update({m["MessageId"]: m for m in drain(sqs, queues.queue_url)})
    assert sorted(received) == sorted(r.message_id for r in results)
    by_id = {r.message_id: n for n, r in enumerate(results, start=1)}
    for message_id, message in received.items():
        n = by_id[message_id]
        assert message["Body"] == f'{{"order_id": {n}}}'
        assert message["MessageAttributes"]["request_id"]["StringValue"] == f"req-{n}"


def test_a_batch_entry_whose_md5_is_not_its_bodys_is_reported_failed(queues, aws_env, monkeypatch):
    real_send = orchestrator.sqs.send

    def second_md5_wrong(*args, **kwargs):
        response = real_send(*args, **kwargs)
        answer = orjson.loads(response.content)
        answer["Successful"][1]["MD5OfMessageBody"] = "0" * 32
        return HttpResponse(response.status_code, response.headers, orjson.dumps(answer))

    monkeypatch.setattr(orchestrator.sqs, "send", second_md5_wrong)
    client = make_sqs_client(load_settings(dict(os.environ)))
    entries = [{"Id": str(n), "MessageBody": f"body-{n}"} for n in range(3)]
    answer = client.send_message_batch(QueueUrl=queues.queue_url, Entries=entries)
    assert sorted(e["Id"] for e in answer["Successful"]) == ["0", "2"]
    (failed,) = answer["Failed"]
    assert (failed["Id"], failed["Code"], failed["SenderFault"]) == ("1", "MD5Mismatch", False)


def test_the_poller_runs_concurrent_batches_each_in_its_own_environment(sqs, queues, tmp_path):
    """`--concurrency 2`: two batches of one message are handled at the same time, in two processes
    other than the poller's (with one lane the first batch would wait alone for 10 s)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    for n in range(2):
        send(sqs, queues.queue_url, f'{{"n": {n}}}', request_id=f"req-{n}")
    command = [
        sys.executable, "-m", "orchestrator.local.sqs_poller", "--queue-url", queues.queue_url,
        "--batch-size", "1", "--concurrency", "2", "--handler", "tests.poller_probe.lambda_handler",
    ]  # fmt: skip
    env = {**os.environ, "PROBE_DIR": str(marks), "PROBE_EXPECTED": "2"}
    poller = subprocess.Popen(command, cwd=REPO / "orchestrator-lambda", env=env, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and [p.read_text() for p in marks.iterdir()].count("together") < 2:
            time.sleep(0.1)
    finally:
        poller.send_signal(signal.SIGTERM)
        output, _ = poller.communicate(timeout=30)
    states = {p.name.split("-")[0]: p.read_text() for p in marks.iterdir()}
    assert sorted(states.values()) == ["together", "together"], output[-2000:]
    assert len(states) == 2 and str(poller.pid) not in states
    assert poller.returncode == 0
    assert drain(sqs, queues.queue_url) == []  # both handled and deleted
