"""SqsSender.send_batch: ten entries to a SendMessageBatch call, retries that carry only what was
not sent, no retry for an entry SQS refuses as the sender's fault, and the time budget."""

from __future__ import annotations

import orjson

from orchestrator.sqs import OutgoingMessage, SqsSender
from servicekit.deadline import time_budget

from .conftest import QUEUE_URL
from .stubs import FakeSqs


def messages(count: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(orjson.dumps({"n": n}).decode(), {"request_id": {"DataType": "String", "StringValue": "r"}})
        for n in range(count)
    ]


def sender(sqs: FakeSqs, sleeps: list[float] | None = None, max_retries: int = 2) -> SqsSender:
    return SqsSender(
        sqs, max_retries=max_retries, backoff_seconds=0.1, sleep=(sleeps if sleeps is not None else []).append
    )


def sent_numbers(sqs: FakeSqs) -> list[int]:
    return [body["n"] for body in sqs.bodies(QUEUE_URL)]


def test_messages_go_ten_to_a_call_and_each_gets_its_message_id():
    sqs = FakeSqs()
    results = sender(sqs).send_batch(QUEUE_URL, messages(25))
    assert sqs.batch_sizes == [10, 10, 5]
    assert sent_numbers(sqs) == list(range(25))
    assert [r.message_id for r in results] == [f"msg-{n}" for n in range(1, 26)]
    assert all(r.error is None for r in results)
    assert sqs.sent[0]["MessageAttributes"]["request_id"]["StringValue"] == "r"


def test_a_call_that_fails_is_retried_whole_after_a_backoff():
    sqs, sleeps = FakeSqs(failures=2), []
    results = sender(sqs, sleeps).send_batch(QUEUE_URL, messages(3))
    assert sleeps == [0.1, 0.2] and sqs.batch_sizes == [3]
    assert [r.message_id for r in results] == ["msg-1", "msg-2", "msg-3"]


def test_a_retry_carries_only_the_entries_sqs_did_not_take():
    sqs, refused = FakeSqs(), []

    def refuse_once(entry):
        if '"n":1' in entry["MessageBody"] and not refused:
            refused.append(entry["Id"])
            return {"SenderFault": False, "Code": "InternalError"}
        return None

    sqs.refuse = refuse_once
    results = sender(sqs).send_batch(QUEUE_URL, messages(3))
    assert sqs.batch_sizes == [3, 1]
    assert sent_numbers(sqs) == [0, 2, 1]  # each message once
    assert all(r.message_id for r in results) and results[1].message_id == "msg-3"


def test_an_entry_refused_as_the_senders_fault_is_not_retried():
    sqs = FakeSqs()
    sqs.refuse = lambda entry: (
        {"SenderFault": True, "Code": "InvalidMessageContents"} if '"n":0' in entry["MessageBody"] else None
    )
    results = sender(sqs).send_batch(QUEUE_URL, messages(2))
    assert sqs.batch_sizes == [2]
    assert results[0].message_id is None and "InvalidMessageContents" in results[0].error
    assert results[1].message_id == "msg-1"


def test_every_attempt_failing_reports_each_message_without_raising():
    sqs = FakeSqs(failures=100)
    results = sender(sqs, max_retries=1).send_batch(QUEUE_URL, messages(12))
    assert sqs.attempts == 4  # two chunks, two attempts each
    assert all(r.message_id is None and "ConnectionError" in r.error for r in results) and len(results) == 12


def test_no_attempt_starts_that_the_time_budget_cannot_fit():
    sqs = FakeSqs()
    slow = SqsSender(sqs, max_retries=2)
    slow.attempt_seconds = 5.0
    with time_budget(1.0):
        results = slow.send_batch(QUEUE_URL, messages(2))
    assert sqs.attempts == 0
    assert all("time budget" in r.error for r in results)
