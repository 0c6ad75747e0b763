"""The local stack's moto server (orchestrator.local.moto_sqs): its replacements answer what
moto's own functions answer, and SQS's semantics (time, counts, deduplication) still hold on the
real server."""

from __future__ import annotations

import datetime
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import moto.backends
import moto.sqs.models
import pytest
from moto.core import utils as moto_utils

from orchestrator.local import moto_sqs


def test_epoch_millis_is_moto_clock() -> None:
    before = moto_utils.unix_time_millis()
    ours = moto_sqs.epoch_millis()
    after = moto_utils.unix_time_millis()
    assert before - 1 <= ours <= after + 1
    when = datetime.datetime(2026, 12, 2, 15, 30, 0, 250000)
    assert moto_sqs.epoch_millis(when) == moto_utils.unix_time_millis(when) == 1796225400250.0


def test_module_listing_is_read_once_and_unchanged() -> None:
    reads = []

    def listing():
        reads.append(1)
        yield from moto.backends.list_of_moto_modules()

    cached = moto_sqs.listed_once(listing)
    first = cached()
    assert first == tuple(moto.backends.list_of_moto_modules())
    assert "sqs" in first and "moto_api" in first
    assert cached() == first and len(reads) == 1


ORIGINAL_ATTRIBUTES = moto.sqs.models.Queue.attributes


def _queue(name: str, **attributes: str) -> moto.sqs.models.Queue:
    return moto.sqs.models.Queue(name, region="us-east-1", account_id="123456789012", **attributes)


def _with_messages(queue: moto.sqs.models.Queue) -> moto.sqs.models.Queue:
    """Two visible messages, one delayed, one received (in flight): every count differs."""
    for n, delay in enumerate((0, 0, 60, 0)):
        message = moto.sqs.models.Message(f"m{n}", f"body {n}")
        message.delay(delay)
        queue._messages.append(message)
    queue._messages[3].mark_received(visibility_timeout=60)
    return queue


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        {"KmsMasterKeyId": "alias/payments", "DelaySeconds": "5"},
        {"redrive_policy": {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:dlq", "maxReceiveCount": 3}},
        {"Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
    ],
    ids=["standard", "fifo", "kms", "redrive", "policy"],
)
def test_queue_attributes_are_moto_own(attributes: dict[str, str]) -> None:
    attributes = dict(attributes)
    redrive_policy = attributes.pop("redrive_policy", None)  # set as moto does once its DLQ exists
    queue = _with_messages(_queue("q.fifo" if attributes.get("FifoQueue") else "q", **attributes))
    queue.redrive_policy = redrive_policy
    ours = moto_sqs.QueueAttributes(queue, ORIGINAL_ATTRIBUTES.fget)
    original = ORIGINAL_ATTRIBUTES.fget(queue)
    assert list(ours.items()) == list(original.items())  # same keys, order and values
    assert (original["ApproximateNumberOfMessages"], original["ApproximateNumberOfMessagesDelayed"]) == (2, 1)
    assert original["ApproximateNumberOfMessagesNotVisible"] == 1
    assert ours.get("ContentBasedDeduplication") == original.get("ContentBasedDeduplication")


def test_one_attribute_is_read_without_counting_the_messages() -> None:
    class Uncountable(list):
        def __iter__(self):
            raise AssertionError("the messages were walked")

    queue = _queue("q.fifo", FifoQueue="true", ContentBasedDeduplication="true")
    queue._messages = Uncountable()
    attributes = moto_sqs.QueueAttributes(queue, ORIGINAL_ATTRIBUTES.fget)
    assert attributes.get("ContentBasedDeduplication") == "true"
    assert attributes["DelaySeconds"] == 0
    with pytest.raises(AssertionError, match="walked"):
        attributes["ApproximateNumberOfMessages"]


def test_install_swaps_them_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # Recorded so that they are put back after the test: moto is used in-process elsewhere.
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", moto.sqs.models.unix_time_millis)
    monkeypatch.setattr(moto.backends, "list_of_moto_modules", moto.backends.list_of_moto_modules)
    monkeypatch.setattr(moto.sqs.models.Queue, "attributes", ORIGINAL_ATTRIBUTES)
    moto_sqs.install()
    assert moto.sqs.models.unix_time_millis is moto_sqs.epoch_millis
    assert "sqs" in moto.backends.list_of_moto_modules()
    assert isinstance(_queue("q").attributes, moto_sqs.QueueAttributes)


def test_install_refuses_a_moto_without_what_it_swaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(moto.sqs.models, "unix_time_millis")
    with pytest.raises(RuntimeError, match="unix_time_millis is gone"):
        moto_sqs.install()


def test_install_refuses_a_moto_whose_attributes_are_not_a_property(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto.sqs.models.Queue, "approximate_number_of_messages", 0)
    with pytest.raises(RuntimeError, match="approximate_number_of_messages is not a property"):
        moto_sqs.install()
    assert moto.sqs.models.Queue.attributes is ORIGINAL_ATTRIBUTES


@pytest.fixture
def sqs(moto_server):
    client = boto3.client(
        "sqs",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    url = client.create_queue(QueueName=f"clock-{time.monotonic_ns()}")["QueueUrl"]
    yield client, url
    client.delete_queue(QueueUrl=url)


def _count(client, url: str, attribute: str) -> int:
    return int(client.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])["Attributes"][attribute])


def test_delay_and_visibility_still_follow_the_clock(sqs) -> None:
    """What the replaced clock decides on the real server: a delayed message stays hidden for its
    delay, a received one for its visibility timeout, and then comes back."""
    client, url = sqs
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert client.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    assert _count(client, url, "ApproximateNumberOfMessagesDelayed") == 1
    time.sleep(1.2)
    first = client.receive_message(QueueUrl=url, WaitTimeSeconds=0, VisibilityTimeout=1)["Messages"]
    assert [m["Body"] for m in first] == ["later"]
    assert client.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages") is None
    assert _count(client, url, "ApproximateNumberOfMessagesNotVisible") == 1
    time.sleep(1.2)
    again = client.receive_message(QueueUrl=url, WaitTimeSeconds=0, AttributeNames=["ApproximateReceiveCount"])
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again["Messages"]] == [("later", "2")]


def test_counts_and_content_deduplication_on_the_real_server(moto_server) -> None:
    """The counts GetQueueAttributes reports, and a FIFO queue's content-based deduplication (the
    attribute SendMessage reads), on the server the stack runs."""
    client = boto3.client(
        "sqs", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )
    url = client.create_queue(QueueName=f"counts-{time.monotonic_ns()}")["QueueUrl"]
    for n in range(3):
        client.send_message(QueueUrl=url, MessageBody=f"m{n}")
    client.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=30)
    client.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)
    counts = client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert [counts[f"ApproximateNumberOfMessages{kind}"] for kind in ("", "Delayed", "NotVisible")] == ["2", "1", "1"]
    fifo = client.create_queue(
        QueueName=f"dedup-{time.monotonic_ns()}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for _ in range(2):
        client.send_message(QueueUrl=fifo, MessageBody="same body", MessageGroupId="g")
    assert _count(client, fifo, "ApproximateNumberOfMessages") == 1
    for queue_url in (url, fifo):
        client.delete_queue(QueueUrl=queue_url)


# What moto dispatches on: the JSON protocol's target, and the service in the credential scope.
SQS_JSON_HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Target": "AmazonSQS.SendMessage",
    "Authorization": "AWS4-HMAC-SHA256 Credential=l/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, "
    "Signature=0",
}


def test_the_server_keeps_a_connection_open_across_requests_and_long_polls(moto_server) -> None:
    """One TCP connection carries several SQS calls (Werkzeug's server closed it after each), and
    a long poll in flight on another connection holds up none of them."""
    port = int(moto_server.rsplit(":", 1)[1])
    client = boto3.client(
        "sqs", endpoint_url=moto_server, region_name="us-east-1", aws_access_key_id="l", aws_secret_access_key="l"
    )
    url = client.create_queue(QueueName=f"keepalive-{time.monotonic_ns()}")["QueueUrl"]
    empty = client.create_queue(QueueName=f"empty-{time.monotonic_ns()}")["QueueUrl"]
    with ThreadPoolExecutor(1) as pool:
        polling = pool.submit(client.receive_message, QueueUrl=empty, WaitTimeSeconds=2)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        started = time.monotonic()
        for n in range(3):
            body = json.dumps({"QueueUrl": url, "MessageBody": f"m{n}"})
            connection.request(
                "POST",
                "/",
                body,
                SQS_JSON_HEADERS,
            )
            answer = connection.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["MessageId"]
            assert answer.getheader("Connection") != "close"
            if n == 0:
                local_port = connection.sock.getsockname()[1]
            assert connection.sock is not None and connection.sock.getsockname()[1] == local_port  # the same one
        assert time.monotonic() - started < 1.5  # not queued behind the long poll
        connection.close()
        assert polling.result().get("Messages") is None
    assert _count(client, url, "ApproximateNumberOfMessages") == 3
