"""Create the `payments` queue and its `payments-dlq` (with redrive), idempotently, on any endpoint.

    python -m orchestrator.local.queues --endpoint-url http://127.0.0.1:4566 [--max-receive-count 5]

prints `PAYMENTS_QUEUE_URL=...` and `PAYMENTS_DLQ_URL=...` lines (or `--format json`). Running it
again converges the attributes instead of failing: queues are created by name, then their
attributes are set, so a changed visibility timeout or receive count takes effect.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict, dataclass
from typing import Any

import boto3

from .lambda_context import ensure_local_aws_credentials

DEFAULT_QUEUE_NAME = "payments"
DEFAULT_DLQ_NAME = "payments-dlq"
DEFAULT_MAX_RECEIVE_COUNT = 5
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # the maximum: time to look at what failed


@dataclass(frozen=True)
class PaymentQueues:
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str


def local_sqs_client(endpoint_url: str | None = None, region: str | None = None) -> Any:
    """An SQS client for the local tools; the endpoint defaults to boto3's AWS_ENDPOINT_URL_SQS."""
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL")
    ensure_local_aws_credentials(endpoint_url)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client("sqs", endpoint_url=endpoint_url, region_name=region)


def _arn(sqs: Any, queue_url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def ensure_payment_queues(
    sqs: Any,
    *,
    queue_name: str = DEFAULT_QUEUE_NAME,
    dlq_name: str = DEFAULT_DLQ_NAME,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
) -> PaymentQueues:
    dlq_url = sqs.create_queue(QueueName=dlq_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=dlq_url, Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)})
    dlq_arn = _arn(sqs, dlq_url)
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"VisibilityTimeout": str(visibility_timeout_seconds), "RedrivePolicy": json.dumps(redrive)},
    )
    return PaymentQueues(queue_url=queue_url, queue_arn=_arn(sqs, queue_url), dlq_url=dlq_url, dlq_arn=dlq_arn)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create the payments queue and DLQ with redrive (idempotent).")
    parser.add_argument("--endpoint-url", default=None, help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--queue-name", default=DEFAULT_QUEUE_NAME)
    parser.add_argument("--dlq-name", default=DEFAULT_DLQ_NAME)
    parser.add_argument("--max-receive-count", type=int, default=DEFAULT_MAX_RECEIVE_COUNT)
    parser.add_argument("--visibility-timeout", type=int, default=DEFAULT_VISIBILITY_TIMEOUT_SECONDS)
    parser.add_argument("--format", choices=("env", "json"), default="env")
    args = parser.parse_args(argv)
    queues = ensure_payment_queues(
        local_sqs_client(args.endpoint_url, args.region),
        queue_name=args.queue_name,
        dlq_name=args.dlq_name,
        max_receive_count=args.max_receive_count,
        visibility_timeout_seconds=args.visibility_timeout,
    )
    if args.format == "json":
        print(json.dumps(asdict(queues)))
    else:
        print(f"PAYMENTS_QUEUE_URL={queues.queue_url}\nPAYMENTS_DLQ_URL={queues.dlq_url}")


if __name__ == "__main__":
    main()
