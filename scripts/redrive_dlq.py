#!/usr/bin/env python3
"""Move messages from the payments DLQ back to the payments queue, body and attributes intact.

    scripts/redrive_dlq.py [--dlq-url URL] [--queue-url URL] [--endpoint-url URL] [--max N] [--dry-run]

URLs default to PAYMENTS_DLQ_URL / PAYMENTS_QUEUE_URL, the endpoint to boto3's own
AWS_ENDPOINT_URL_SQS (unset: real AWS with the usual credential chain; a moto URL locally).

Each message is sent to the queue first and deleted from the DLQ only after the send
succeeded, so a crash can duplicate a message but never lose one (the payments Lambda applies
an order's outcome once). `--dry-run` lists what would move and makes the messages visible
again at once. The `dlq_*` attributes the payments Lambda adds are kept: they tell why the
message was set aside, and are replaced if it lands there again. Fix the cause first:
a message that still cannot succeed comes straight back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3

RECEIVE_BATCH = 10
# While we hold a message it must not be handed to anyone else (nor back to us in this run).
HOLD_SECONDS = 60


@dataclass
class RedriveReport:
    moved: int = 0
    failed: int = 0
    dry_run: bool = False
    messages: list[dict[str, Any]] = field(default_factory=list)


def _describe(message: dict[str, Any]) -> dict[str, Any]:
    attributes = message.get("MessageAttributes") or {}
    return {
        "message_id": message["MessageId"],
        "receive_count": (message.get("Attributes") or {}).get("ApproximateReceiveCount"),
        "dlq_reason": (attributes.get("dlq_reason") or {}).get("StringValue"),
        "request_id": (attributes.get("request_id") or {}).get("StringValue"),
        "body": message.get("Body", "")[:200],
    }


def _sendable(attributes: dict[str, Any]) -> dict[str, Any]:
    """Received attributes in the shape SendMessage takes (receive may add empty list fields)."""
    keep = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: v for k, v in value.items() if k in keep} for name, value in attributes.items()}


def redrive(
    sqs: Any, *, dlq_url: str, queue_url: str, max_messages: int | None = None, dry_run: bool = False
) -> RedriveReport:
    report = RedriveReport(dry_run=dry_run)
    held: list[str] = []
    while max_messages is None or report.moved + report.failed + len(held) < max_messages:
        wanted = RECEIVE_BATCH
        if max_messages is not None:
            wanted = min(wanted, max_messages - report.moved - report.failed - len(held))
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=wanted,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            VisibilityTimeout=HOLD_SECONDS,
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not messages:
            break
        for message in messages:
            report.messages.append(_describe(message))
            if dry_run:
                held.append(message["ReceiptHandle"])
                continue
            kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                kwargs["MessageAttributes"] = _sendable(message["MessageAttributes"])
            try:
                sqs.send_message(**kwargs)
            except Exception as exc:  # leave it on the DLQ; it becomes visible again by itself
                print(f"could not move {message['MessageId']}: {exc}", file=sys.stderr)
                report.failed += 1
                continue
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            report.moved += 1
    for receipt_handle in held:  # dry run: put them back at once
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dlq-url", default=os.environ.get("PAYMENTS_DLQ_URL") or os.environ.get("SQS_DLQ_URL"))
    parser.add_argument("--queue-url", default=os.environ.get("PAYMENTS_QUEUE_URL") or os.environ.get("SQS_QUEUE_URL"))
    parser.add_argument("--endpoint-url", default=None, help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS, else AWS)")
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    )
    parser.add_argument("--max", type=int, default=None, help="move at most this many messages")
    parser.add_argument("--dry-run", action="store_true", help="list the messages, move nothing")
    args = parser.parse_args(argv)
    if not args.dlq_url or not args.queue_url:
        parser.error("--dlq-url and --queue-url (or PAYMENTS_DLQ_URL / PAYMENTS_QUEUE_URL) are required")
    if args.max is not None and args.max < 1:
        parser.error("--max must be at least 1")
    endpoint = args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SQS")
    if endpoint and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        # A local endpoint (moto) needs some credentials, any will do.
        os.environ.update(AWS_ACCESS_KEY_ID="local", AWS_SECRET_ACCESS_KEY="local")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=args.region)
    report = redrive(sqs, dlq_url=args.dlq_url, queue_url=args.queue_url, max_messages=args.max, dry_run=args.dry_run)
    print(json.dumps(report.__dict__, indent=2))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
