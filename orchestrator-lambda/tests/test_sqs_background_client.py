"""`ClientInBackground`: the BFF's SQS client is made beside the first request, not before it."""

from __future__ import annotations

import threading

import pytest

from orchestrator.sqs import ClientInBackground, SqsSender


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send_message(self, **kwargs):
        self.sent.append(kwargs)
        return {"MessageId": f"m{len(self.sent)}"}


def test_the_client_is_made_in_another_thread_and_used_once_ready():
    release, made_in = threading.Event(), []
    real = RecordingSqs()

    def make():
        made_in.append(threading.current_thread().name)
        assert release.wait(5)  # the constructor must not wait for this
        return real

    background = ClientInBackground(make)  # returns while `make` is still blocked
    release.set()
    sender = SqsSender(background, max_retries=0, attempt_seconds=2.0)
    assert sender.send("https://queue", "body") == "m1"
    assert made_in == ["sqs-client"]
    assert real.sent == [{"QueueUrl": "https://queue", "MessageBody": "body"}]
    assert sender.attempt_seconds == 2.0


def test_a_client_that_could_not_be_made_fails_the_send_with_its_error():
    def make():
        raise RuntimeError("no region")

    background = ClientInBackground(make)
    with pytest.raises(RuntimeError, match="no region"):
        background.send_message(QueueUrl="q", MessageBody="b")
