"""An SQS event source mapping, locally: feeds the payments handler in batches.

    python -m orchestrator.local.sqs_poller [--queue-url URL] [--batch-size 10] [--concurrency 1] [--create-queues]

What it does is what the mapping does:
- ReceiveMessage with MaxNumberOfMessages = batch size (<= 10), all system attributes
  (ApproximateReceiveCount, SentTimestamp, ...) and all message attributes, long polling;
- one `{"Records": [...]}` event per batch, each record in Lambda's shape (messageId,
  receiptHandle, body, attributes, messageAttributes as `{stringValue, dataType, ...}`,
  md5OfBody, eventSource `aws:sqs`, eventSourceARN, awsRegion);
- with ReportBatchItemFailures: deletes every message not listed in `batchItemFailures`; a
  failed message is left alone, reappears after the queue's visibility timeout, and the queue's
  RedrivePolicy moves it to the DLQ after maxReceiveCount receives (moto enforces it too);
- a handler that raises, or answers something that is not a valid batch response (unknown or
  empty itemIdentifier), failed the whole batch: nothing is deleted;
- up to `--concurrency` batches at once (the mapping's `MaximumConcurrency`), each in its own
  execution environment (a worker process, `environments.py`); with 1, the handler runs in this
  process.
SIGINT/SIGTERM stop it after the batch in hand. SIGUSR1 holds it (it finishes the batch in hand,
then takes no more messages; they wait in the queue) and SIGUSR2 releases it: what
`scripts/payments_consumer.py hold|release` sends, e.g. to measure the front door alone and then
how fast the backlog drains.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import threading
from dataclasses import dataclass
from typing import Any

from .environments import ProcessPoolInvoker
from .lambda_context import Handler, LocalLambdaContext, load_handler, log_json
from .queues import ensure_payment_queues, local_sqs_client
from .stop_signals import StopFlag

DEFAULT_HANDLER = "orchestrator.payments.handler.lambda_handler"
DEFAULT_FUNCTION_NAME = "PaymentsFunction"
MAX_BATCH_SIZE = 10


def _log(message: str, **fields: Any) -> None:
    log_json(message, logger="sqs_poller", **fields)


def lambda_message_attributes(message_attributes: dict[str, Any] | None) -> dict[str, Any]:
    """ReceiveMessage's `{StringValue, BinaryValue, DataType}` → Lambda's record attribute shape."""
    converted: dict[str, Any] = {}
    for name, attribute in (message_attributes or {}).items():
        record: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attribute["DataType"]}
        if "StringValue" in attribute:
            record["stringValue"] = attribute["StringValue"]
        if "BinaryValue" in attribute:
            record["binaryValue"] = base64.b64encode(attribute["BinaryValue"]).decode()
        converted[name] = record
    return converted


def lambda_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": lambda_message_attributes(message.get("MessageAttributes")),
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response: Any, batch_ids: list[str]) -> set[str]:
    """Which messages the batch response says failed (Lambda's rules for partial responses)."""
    if response is None or response == "" or response == {}:
        return set()
    if not isinstance(response, dict) or not isinstance(response.get("batchItemFailures", []), list):
        return set(batch_ids)
    failed: set[str] = set()
    for item in response.get("batchItemFailures") or []:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)
        failed.add(identifier)
    return failed


@dataclass(frozen=True)
class BatchResult:
    received: int
    deleted: int
    failed: int


class SqsPoller:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        handler: Handler,
        *,
        batch_size: int = MAX_BATCH_SIZE,
        wait_time_seconds: int = 1,
        function_name: str = DEFAULT_FUNCTION_NAME,
        function_timeout_seconds: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch size must be 1..{MAX_BATCH_SIZE}")
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.batch_size = batch_size
        self.wait_time_seconds = wait_time_seconds
        self.function_name = function_name
        self.function_timeout_seconds = function_timeout_seconds
        self.region = sqs.meta.region_name
        self._queue_arn: str | None = None
        self._stop = StopFlag()  # stop() may be a signal handler's call
        self.held = False  # plain attribute: hold() and release() may be signal handlers' calls
        # Taken by the lanes only (never in a signal handler): lanes busy, and the hold logged.
        self._lanes = threading.Lock()
        self._busy = 0
        self._held_logged = False

    @property
    def queue_arn(self) -> str:
        """Looked up on first use, so a poller may start before SQS answers."""
        if self._queue_arn is None:
            attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
            self._queue_arn = attributes["Attributes"]["QueueArn"]
        return self._queue_arn

    def poll_once(self) -> BatchResult:
        """Receive one batch, invoke the handler once, delete what succeeded."""
        queue_arn = self.queue_arn
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=self.wait_time_seconds,
        ).get("Messages", [])
        if not messages:
            return BatchResult(0, 0, 0)
        event = {"Records": [lambda_record(m, queue_arn=queue_arn, region=self.region) for m in messages]}
        ids = [m["MessageId"] for m in messages]
        context = LocalLambdaContext(self.function_name, timeout_seconds=self.function_timeout_seconds)
        try:
            failed = failed_message_ids(self.handler(event, context), ids)
        except Exception as exc:  # an invocation error fails the whole batch
            _log("batch_invocation_failed", error=f"{type(exc).__name__}: {exc}", batch_size=len(ids))
            failed = set(ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), MAX_BATCH_SIZE):
            chunk = done[start : start + MAX_BATCH_SIZE]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)]
            answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in answer.get("Failed", []):
                _log("delete_failed", detail=failure)
        _log("batch_processed", received=len(ids), deleted=len(done), failed=len(failed))
        return BatchResult(len(ids), len(done), len(failed))

    def run(self) -> None:
        """Poll until `stop()`; a receive error (SQS not up yet) is logged and retried. While held,
        receive nothing. Several lanes (threads) may run this at once, one batch each."""
        while not self._stop.requested:
            if not self._enter():
                self._stop.wait(0.1)
                continue
            try:
                self.poll_once()
            except Exception as exc:
                _log("poll_failed", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(1.0)
            finally:
                with self._lanes:
                    self._busy -= 1

    def _enter(self) -> bool:
        """Whether this lane may take a batch now. `sqs_poller_held` is logged once no lane has a
        receive or a batch in hand: from then on, nothing is taken until the release."""
        with self._lanes:
            if self.held:
                if not self._held_logged and self._busy == 0:
                    self._held_logged = True
                    _log("sqs_poller_held")
                return False
            if self._held_logged:
                self._held_logged = False
                _log("sqs_poller_released")
            self._busy += 1
            return True

    def stop(self) -> None:
        self._stop.set()

    def hold(self, *_: object) -> None:
        self.held = True

    def release(self, *_: object) -> None:
        self.held = False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Feed the payments Lambda from SQS like an event source mapping.")
    parser.add_argument("--queue-url", default=os.environ.get("PAYMENTS_QUEUE_URL") or os.environ.get("SQS_QUEUE_URL"))
    parser.add_argument("--endpoint-url", default=None, help="SQS endpoint (default: AWS_ENDPOINT_URL_SQS)")
    parser.add_argument("--handler", default=DEFAULT_HANDLER)
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH_SIZE)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="batches at once, each in its own environment (process)"
    )
    parser.add_argument("--wait-seconds", type=int, default=1, help="long-poll wait (0..20)")
    parser.add_argument("--create-queues", action="store_true", help="create payments + payments-dlq first")
    parser.add_argument("--max-receive-count", type=int, default=5)
    parser.add_argument("--visibility-timeout", type=int, default=30)
    args = parser.parse_args(argv)
    if args.endpoint_url:  # the handler's own client (DLQ sends) must talk to the same SQS
        os.environ.setdefault("AWS_ENDPOINT_URL_SQS", args.endpoint_url)
    sqs = local_sqs_client(args.endpoint_url)
    queue_url = args.queue_url
    if args.create_queues:
        queues = ensure_payment_queues(
            sqs, max_receive_count=args.max_receive_count, visibility_timeout_seconds=args.visibility_timeout
        )
        queue_url = queue_url or queues.queue_url
        # The handler reads its DLQ from the environment; point it at the one just made.
        os.environ.setdefault("PAYMENTS_DLQ_URL", queues.dlq_url)
    if not queue_url:
        parser.error("--queue-url (or PAYMENTS_QUEUE_URL) is required unless --create-queues is given")
    if args.concurrency < 1:
        parser.error("--concurrency must be 1 or more")
    environments = ProcessPoolInvoker(args.handler, environments=args.concurrency) if args.concurrency > 1 else None
    handler = load_handler(args.handler) if environments is None else _invoking(environments)
    poller = SqsPoller(sqs, queue_url, handler, batch_size=args.batch_size, wait_time_seconds=args.wait_seconds)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: poller.stop())
    signal.signal(signal.SIGUSR1, poller.hold)
    signal.signal(signal.SIGUSR2, poller.release)
    _log("sqs_poller_started", queue_url=queue_url, batch_size=args.batch_size, concurrency=args.concurrency)
    # One lane per concurrent batch; the main thread stays free for the signals.
    lanes = [threading.Thread(target=poller.run, name=f"lane-{n}") for n in range(args.concurrency)]
    for lane in lanes:
        lane.start()
    while any(lane.is_alive() for lane in lanes):
        for lane in lanes:
            lane.join(timeout=0.2)
    if environments is not None:
        environments.close(grace=poller.function_timeout_seconds)
    _log("sqs_poller_stopped")


def _invoking(environments: ProcessPoolInvoker) -> Handler:
    """A handler that runs each batch in a free environment, within the function's timeout."""

    def invoke(event: dict[str, Any], context: LocalLambdaContext) -> Any:
        return environments.invoke(event, context, timeout=context.timeout_seconds + 5)

    return invoke


if __name__ == "__main__":
    main()
