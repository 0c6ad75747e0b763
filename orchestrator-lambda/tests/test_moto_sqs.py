"""The local stack's moto server (orchestrator.local.moto_sqs): its two replacements answer what
moto's own functions answer, and SQS's time-based semantics still hold on the real server."""

from __future__ import annotations

import datetime
import time

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


def test_install_swaps_both_in(monkeypatch: pytest.MonkeyPatch) -> None:
    # Recorded so that they are put back after the test: moto is used in-process elsewhere.
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", moto.sqs.models.unix_time_millis)
    monkeypatch.setattr(moto.backends, "list_of_moto_modules", moto.backends.list_of_moto_modules)
    moto_sqs.install()
    assert moto.sqs.models.unix_time_millis is moto_sqs.epoch_millis
    assert "sqs" in moto.backends.list_of_moto_modules()


def test_install_refuses_a_moto_without_what_it_swaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(moto.sqs.models, "unix_time_millis")
    with pytest.raises(RuntimeError, match="unix_time_millis is gone"):
        moto_sqs.install()


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
