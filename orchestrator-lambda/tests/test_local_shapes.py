"""The local runtime's event and response shapes (API Gateway v2, SQS event source mapping)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from orchestrator.local.apigw_adapter import build_event, http_answer
from orchestrator.local.sqs_poller import failed_message_ids, lambda_message_attributes, lambda_record


def test_api_gateway_v2_event_shape():
    now = datetime(2026, 11, 23, 15, 53, 0, tzinfo=UTC)
    event = build_event(
        method="post",
        target="/orders/5/cancel?status=PAID&status=NEW&empty=",
        headers=[
            ("Host", "localhost:3000"),
            ("Content-Type", "application/json"),
            ("X-Custom", "a"),
            ("x-custom", "b"),
            ("Cookie", "a=1; b=2"),
        ],
        body=b'{"x": 1}',
        source_ip="10.0.0.9",
        now=now,
    )
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/orders/5/cancel"
    assert event["rawQueryString"] == "status=PAID&status=NEW&empty="
    assert event["queryStringParameters"] == {"status": "PAID,NEW", "empty": ""}
    assert event["headers"] == {"host": "localhost:3000", "content-type": "application/json", "x-custom": "a,b"}
    assert event["cookies"] == ["a=1", "b=2"]
    context = event["requestContext"]
    assert context["http"] == {
        "method": "POST",
        "path": "/orders/5/cancel",
        "protocol": "HTTP/1.1",
        "sourceIp": "10.0.0.9",
        "userAgent": "",
    }
    assert context["stage"] == "$default" and context["requestId"]
    assert context["time"] == "23/Nov/2026:15:53:00 +0000"
    assert context["timeEpoch"] == int(now.timestamp() * 1000)
    assert event["body"] == '{"x": 1}' and event["isBase64Encoded"] is False


def test_binary_bodies_are_base64_and_empty_ones_absent():
    event = build_event(method="PUT", target="/x", headers=[("Content-Type", "image/png")], body=b"\x89PNG\x00")
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x89PNG\x00"
    assert "body" not in build_event(method="GET", target="/x", headers=[], body=b"")
    assert "queryStringParameters" not in build_event(method="GET", target="/x", headers=[], body=b"")


def test_handler_result_becomes_http():
    status, headers, body = http_answer(
        {
            "statusCode": 201,
            "headers": {"X-Request-Id": "r"},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": base64.b64encode(b"\x00\x01").decode(),
            "isBase64Encoded": True,
        }
    )
    assert status == 201 and body == b"\x00\x01"
    assert ("Set-Cookie", "a=1; Path=/") in headers and ("Set-Cookie", "b=2") in headers
    # Payload v2 infers a 200 JSON answer from a bare value.
    assert http_answer({"ok": True}) == (200, [("Content-Type", "application/json")], b'{"ok":true}')


def test_sqs_record_in_lambdas_shape():
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "MD5OfBody": "md5",
        "Body": "{}",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1"},
        "MessageAttributes": {
            "request_id": {"StringValue": "r1", "DataType": "String"},
            "blob": {"BinaryValue": b"\x01", "DataType": "Binary"},
        },
        "MD5OfMessageAttributes": "md5a",
    }
    record = lambda_record(message, queue_arn="arn:aws:sqs:us-east-1:1:payments", region="us-east-1")
    assert record["messageId"] == "m1" and record["receiptHandle"] == "rh" and record["body"] == "{}"
    assert record["attributes"]["ApproximateReceiveCount"] == "2"
    assert record["messageAttributes"]["request_id"] == {
        "stringValue": "r1",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x01").decode()
    assert (record["md5OfBody"], record["md5OfMessageAttributes"]) == ("md5", "md5a")
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:us-east-1:1:payments",
        "us-east-1",
    )
    assert lambda_message_attributes(None) == {}


def test_batch_response_rules():
    ids = ["a", "b", "c"]
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # Anything Lambda cannot read as a partial response fails the whole batch.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ids) == set(ids)
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) == set(ids)
    assert failed_message_ids({"batchItemFailures": "b"}, ids) == set(ids)
    assert failed_message_ids("nonsense", ids) == set(ids)


def test_a_held_poller_receives_nothing_until_released():
    import threading
    import time
    from types import SimpleNamespace

    from orchestrator.local.sqs_poller import SqsPoller

    class CountingSqs:
        meta = SimpleNamespace(region_name="us-east-1")

        def __init__(self) -> None:
            self.receives = 0

        def get_queue_attributes(self, **_kwargs):
            return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:payments"}}

        def receive_message(self, **_kwargs):
            self.receives += 1
            time.sleep(0.01)
            return {}

    sqs = CountingSqs()
    poller = SqsPoller(sqs, "http://sqs/payments", lambda _event, _context: None)
    poller.hold()  # as SIGUSR1 does
    runner = threading.Thread(target=poller.run)
    runner.start()
    try:
        time.sleep(0.3)
        assert sqs.receives == 0
        poller.release()  # as SIGUSR2 does
        deadline = time.monotonic() + 5
        while sqs.receives == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sqs.receives > 0
    finally:
        poller.stop()
        runner.join(timeout=5)
    assert not runner.is_alive()


def test_the_local_http_servers_answer_in_one_write_without_nagle():
    """Headers and body as two writes wait for the client's delayed ACK on keep-alive connections
    (~40 ms an answer: `python -m bench.keepalive` measures it)."""
    from gateway_simulator.server import GatewayHandler
    from orchestrator.local.apigw_adapter import _RequestHandler

    for handler in (_RequestHandler, GatewayHandler):
        assert handler.disable_nagle_algorithm is True, handler
        assert handler.wbufsize > 0, handler  # buffered: end_headers() does not send on its own
