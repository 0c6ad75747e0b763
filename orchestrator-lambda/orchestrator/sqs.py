"""SQS: one client per cold start, sends with a bounded number of retries, attribute shapes.

botocore's own retries are switched off so the retry budget is exactly `SQS_SEND_MAX_RETRIES`,
with our backoff: the BFF sends inside an API request and must know its worst case. Inside a
time budget (`servicekit.deadline`) an attempt starts only if its worst case (the client's
connect + read timeouts) still fits.
The endpoint comes from botocore's own `AWS_ENDPOINT_URL_SQS` (moto locally), never from code.
The client is botocore's, without boto3: boto3's session also imports s3transfer and its
resource machinery, ~50 ms of a cold start for nothing we use (docs/adr/0008-lambda-cold-start.md).
botocore itself is imported when the first client is made: the BFF makes its client in a
background thread (`ClientInBackground`), so that work overlaps the first request's downstream
calls instead of preceding them.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from servicekit.deadline import capped, has_time_for

from .config import Settings
from .observability import logger

MAX_MESSAGE_ATTRIBUTES = 10


def make_sqs_client(settings: Settings, **overrides: Any) -> Any:
    import botocore.session
    from botocore.config import Config

    config = Config(
        region_name=settings.aws_region,
        connect_timeout=settings.sqs_connect_timeout_seconds,
        read_timeout=settings.sqs_timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    return botocore.session.get_session().create_client("sqs", config=config, **overrides)


def sqs_attempt_seconds(settings: Settings) -> float:
    """The worst case of one SendMessage attempt with `make_sqs_client`'s timeouts."""
    return settings.sqs_connect_timeout_seconds + settings.sqs_timeout_seconds


class ClientInBackground:
    """An SQS client being made in a daemon thread; `send_message` waits for it.

    Making the client is CPU work (botocore's import, its service model and endpoint rules, ~0.1 s
    on a cold start) and no I/O, so it cannot hang; a failure to make it is raised on use.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._ready = threading.Event()
        self._client: Any = None
        self._error: BaseException | None = None
        threading.Thread(target=self._make, args=(make,), name="sqs-client", daemon=True).start()

    def _make(self, make: Callable[[], Any]) -> None:
        try:
            self._client = make()
        except BaseException as exc:  # re-raised in the caller's thread by `client()`
            self._error = exc
        finally:
            self._ready.set()

    def client(self) -> Any:
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self._client

    def send_message(self, **kwargs: Any) -> Any:
        return self.client().send_message(**kwargs)


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


class SqsSender:
    def __init__(
        self,
        client: Any,
        *,
        max_retries: int,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
        attempt_seconds: float | None = None,
    ) -> None:
        self.client = client
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.sleep = sleep
        if attempt_seconds is None:
            # An attempt's worst case; a client without botocore's config (a test double) has none.
            config = getattr(getattr(client, "meta", None), "config", None)
            attempt_seconds = float(getattr(config, "connect_timeout", 0) or 0) + float(
                getattr(config, "read_timeout", 0) or 0
            )
        self.attempt_seconds = attempt_seconds

    def send(self, queue_url: str, body: str, attributes: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """Send one message; returns its MessageId or raises `SqsSendFailed` after the retries."""
        attrs = dict(list((attributes or {}).items())[:MAX_MESSAGE_ATTRIBUTES])
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
            except (BotoCoreError, ClientError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "sqs_send_failed", extra={"queue_url": queue_url, "attempt": attempt, "error": last_error}
                )
            if attempt < attempts:
                self.sleep(capped(self.backoff_seconds * (2 ** (attempt - 1))))
        raise SqsSendFailed(last_error)
