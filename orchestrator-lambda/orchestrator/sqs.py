"""SQS: SendMessage and SendMessageBatch with a bounded number of retries, and the message
attribute shapes.

Every call is one HTTPS POST in SQS's JSON protocol (`AmazonSQS.SendMessage`,
`AmazonSQS.SendMessageBatch`), signed with
botocore's own Signature V4 signer (`botocore.auth`), over a keep-alive urllib3 pool (servicekit's
transport, `servicekit.http_client.send`). Not
botocore's client: making one imports its waiter and documentation machinery and parses its
service model and endpoint data, about 150 ms of CPU per cold start, more than half of the BFF's
(docs/adr/0008-lambda-cold-start.md). The body's MD5 in the answer is checked, as botocore does.

The retry budget is exactly `SQS_SEND_MAX_RETRIES`, with our backoff: the BFF sends inside an API
request and must know its worst case. Inside a time budget (`servicekit.deadline`) an attempt
starts only if its worst case (connect + read timeout) still fits. The endpoint is the AWS
SDKs' `AWS_ENDPOINT_URL_SQS` when set (moto locally), else the region's public one; credentials
are the execution environment's (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from servicekit.config import ConfigError
from servicekit.deadline import capped, has_time_for
from servicekit.http_client import TRANSPORT_ERRORS, keep_alive_pool, send

from .config import Settings
from .observability import logger

MAX_MESSAGE_ATTRIBUTES = 10
MAX_BATCH_ENTRIES = 10  # SQS's limit per SendMessageBatch
JSON_PROTOCOL = "application/x-amz-json-1.0"


class SqsRequestFailed(Exception):
    """One SendMessage(Batch) attempt failed: no answer, or an error answer from SQS."""


@dataclass(frozen=True)
class EnvironmentCredentials:
    """The execution environment's credentials, in the shape botocore's signer reads."""

    access_key: str
    secret_key: str
    token: str | None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> EnvironmentCredentials:
        access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            raise ConfigError("no AWS credentials in the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        return cls(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)


class SqsClient:
    """`send_message(QueueUrl=..., MessageBody=..., MessageAttributes=...)`, like botocore's."""

    def __init__(
        self,
        *,
        region: str,
        connect_timeout: float,
        read_timeout: float,
        endpoint_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        pool_size: int = 4,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.region = region
        endpoint = endpoint_url or self.environ.get("AWS_ENDPOINT_URL_SQS") or self.environ.get("AWS_ENDPOINT_URL")
        self.endpoint = (endpoint or f"https://sqs.{region}.amazonaws.com").rstrip("/") + "/"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.pool = keep_alive_pool(self.endpoint, pool_size)  # no proxy lookups: the endpoint is fixed
        self._target = urlsplit(self.endpoint).path
        EnvironmentCredentials.from_environment(self.environ)  # a function without them fails at start

    def send_message(
        self, *, QueueUrl: str, MessageBody: str, MessageAttributes: Mapping[str, Mapping[str, Any]] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"QueueUrl": QueueUrl, "MessageBody": MessageBody}
        if MessageAttributes:
            payload["MessageAttributes"] = {name: _json_attribute(value) for name, value in MessageAttributes.items()}
        answer = self._call("SendMessage", orjson.dumps(payload))
        if answer.get("MD5OfMessageBody") != hashlib.md5(MessageBody.encode()).hexdigest():
            raise SqsRequestFailed("SendMessage answered an MD5 that is not the body's")
        return answer

    def send_message_batch(self, *, QueueUrl: str, Entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """`{"Successful": [{Id, MessageId, ...}], "Failed": [{Id, SenderFault, Code, Message}]}`.

        An entry whose answered MD5 is not its body's is reported among the failed ones (not a
        sender fault: sending it again is the remedy)."""
        entries = []
        for entry in Entries:
            converted = {"Id": entry["Id"], "MessageBody": entry["MessageBody"]}
            if entry.get("MessageAttributes"):
                converted["MessageAttributes"] = {
                    name: _json_attribute(value) for name, value in entry["MessageAttributes"].items()
                }
            entries.append(converted)
        answer = self._call("SendMessageBatch", orjson.dumps({"QueueUrl": QueueUrl, "Entries": entries}))
        bodies = {entry["Id"]: entry["MessageBody"] for entry in Entries}
        successful, failed = [], list(answer.get("Failed") or [])
        for sent in answer.get("Successful") or []:
            body = bodies.get(sent.get("Id"))
            if body is not None and sent.get("MD5OfMessageBody") == hashlib.md5(body.encode()).hexdigest():
                successful.append(sent)
            else:
                failed.append({"Id": sent.get("Id"), "SenderFault": False, "Code": "MD5Mismatch", "Message": ""})
        return {"Successful": successful, "Failed": failed}

    def _call(self, action: str, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": JSON_PROTOCOL, "X-Amz-Target": f"AmazonSQS.{action}"}
        request = AWSRequest(method="POST", url=self.endpoint, data=body, headers=headers)
        SigV4Auth(EnvironmentCredentials.from_environment(self.environ), "sqs", self.region).add_auth(request)
        try:
            response = send(
                self.pool,
                "POST",
                self._target,
                body=body,
                headers=dict(request.headers.items()),
                timeout=(self.connect_timeout, self.read_timeout),
            )
        except TRANSPORT_ERRORS as exc:
            raise SqsRequestFailed(f"{type(exc).__name__}: {exc}") from exc
        try:
            answer = orjson.loads(response.content) if response.content else {}
        except orjson.JSONDecodeError:
            answer = {}
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("__type", "") if isinstance(answer, dict) else ""
            message = answer.get("message", "") if isinstance(answer, dict) else ""
            raise SqsRequestFailed(
                f"{action}: HTTP {response.status_code} {error.rsplit('#', 1)[-1]} {message}".strip()
            )
        return answer


def _json_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """A SendMessage attribute for the JSON protocol: binary values travel base64-encoded."""
    attribute = dict(value)
    if isinstance(attribute.get("BinaryValue"), bytes | bytearray):
        attribute["BinaryValue"] = base64.b64encode(attribute["BinaryValue"]).decode()
    return attribute


def make_sqs_client(settings: Settings, **overrides: Any) -> SqsClient:
    return SqsClient(
        region=settings.aws_region,
        connect_timeout=settings.sqs_connect_timeout_seconds,
        read_timeout=settings.sqs_timeout_seconds,
        **overrides,
    )


def string_attributes(**values: str | None) -> dict[str, dict[str, str]]:
    """`{"request_id": "abc"}` in the SendMessage shape; empty values are left out."""
    return {name: {"DataType": "String", "StringValue": str(value)} for name, value in values.items() if value}


def attributes_from_lambda_record(message_attributes: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Lambda's `{stringValue, binaryValue(base64), dataType}` record attributes → SendMessage shape."""
    converted: dict[str, dict[str, Any]] = {}
    for name, attribute in (message_attributes or {}).items():
        data_type = attribute.get("dataType") or "String"
        if attribute.get("stringValue") is not None:
            converted[name] = {"DataType": data_type, "StringValue": attribute["stringValue"]}
        elif attribute.get("binaryValue") is not None:
            converted[name] = {"DataType": data_type, "BinaryValue": base64.b64decode(attribute["binaryValue"])}
    return converted


class SqsSendFailed(Exception):
    """Every attempt allowed failed."""


@dataclass(frozen=True)
class OutgoingMessage:
    body: str
    attributes: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class BatchSendResult:
    """One message of a batch send: its MessageId, or why it was not sent."""

    message_id: str | None = None
    error: str | None = None


class SqsSender:
    def __init__(
        self,
        client: Any,
        *,
        max_retries: int,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        # An attempt's worst case; a test double without timeouts has none.
        self.attempt_seconds = float(getattr(client, "connect_timeout", 0) or 0) + float(
            getattr(client, "read_timeout", 0) or 0
        )

    def send(self, queue_url: str, body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Send one message; returns its MessageId or raises `SqsSendFailed` after the retries."""
        attrs = _capped_attributes(attributes)
        attempts = 1 + self.max_retries
        last_error = "no attempt made"
        for attempt in range(1, attempts + 1):
            if not has_time_for(self.attempt_seconds):
                last_error = f"{last_error}; the time budget does not fit another attempt"
                break
            try:
                kwargs: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": body}
                if attrs:
                    kwargs["MessageAttributes"] = attrs
                return self.client.send_message(**kwargs)["MessageId"]
            except SqsRequestFailed as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "sqs_send_failed", extra={"queue_url": queue_url, "attempt": attempt, "error": last_error}
                )
            if attempt < attempts:
                self._back_off(attempt)
        raise SqsSendFailed(last_error)

    def _back_off(self, attempt: int) -> None:
        self.sleep(capped(self.backoff_seconds * (2 ** (attempt - 1))))

    def send_batch(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> list[BatchSendResult]:
        """Send messages in SendMessageBatch calls of up to ten, each with the retries `send` has;
        a retry carries only the entries not sent yet, and an entry SQS refuses as the sender's
        fault is not retried. Returns one result per message, in order; never raises."""
        results: list[BatchSendResult] = []
        for start in range(0, len(messages), MAX_BATCH_ENTRIES):
            results.extend(self._send_chunk(queue_url, messages[start : start + MAX_BATCH_ENTRIES]))
        return results

    def _send_chunk(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> list[BatchSendResult]:
        results: dict[str, BatchSendResult] = {}
        pending = {str(index): message for index, message in enumerate(messages)}
        errors = dict.fromkeys(pending, "no attempt made")
        attempts = 1 + self.max_retries
        for attempt in range(1, attempts + 1):
            if not has_time_for(self.attempt_seconds):
                errors = {i: f"{e}; the time budget does not fit another attempt" for i, e in errors.items()}
                break
            entries = [_batch_entry(entry_id, message) for entry_id, message in pending.items()]
            try:
                answer = self.client.send_message_batch(QueueUrl=queue_url, Entries=entries)
            except SqsRequestFailed as exc:
                error = f"{type(exc).__name__}: {exc}"
                errors = dict.fromkeys(pending, error)
                logger.warning("sqs_send_failed", extra={"queue_url": queue_url, "attempt": attempt, "error": error})
            else:
                errors.update(dict.fromkeys(pending, "SendMessageBatch: the entry is not in the answer"))
                for sent in answer.get("Successful") or []:
                    entry_id, message_id = sent.get("Id"), sent.get("MessageId")
                    if entry_id in pending and message_id:
                        pending.pop(entry_id)
                        results[entry_id] = BatchSendResult(message_id=message_id)
                for refused in answer.get("Failed") or []:
                    entry_id = refused.get("Id")
                    if entry_id not in pending:
                        continue
                    error = f"{refused.get('Code')}: {refused.get('Message') or ''}".strip()
                    if refused.get("SenderFault"):  # the same entry would be refused again
                        pending.pop(entry_id)
                        results[entry_id] = BatchSendResult(error=error)
                    else:
                        errors[entry_id] = error
                if pending:
                    logger.warning(
                        "sqs_send_failed",
                        extra={"queue_url": queue_url, "attempt": attempt, "error": errors[next(iter(pending))]},
                    )
            if not pending:
                break
            if attempt < attempts:
                self._back_off(attempt)
        for entry_id in pending:
            results[entry_id] = BatchSendResult(error=errors[entry_id])
        return [results[str(index)] for index in range(len(messages))]


def _batch_entry(entry_id: str, message: OutgoingMessage) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message.body}
    attributes = _capped_attributes(message.attributes)
    if attributes:
        entry["MessageAttributes"] = attributes
    return entry


def _capped_attributes(attributes: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    """The first `MAX_MESSAGE_ATTRIBUTES` (SQS refuses a message with more)."""
    return dict(list((attributes or {}).items())[:MAX_MESSAGE_ATTRIBUTES])
