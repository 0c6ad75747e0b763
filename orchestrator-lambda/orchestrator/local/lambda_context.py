"""A stand-in for the Lambda runtime's context object, and loading a handler by its dotted name."""

from __future__ import annotations

import importlib
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

LOCAL_ACCOUNT_ID = "123456789012"

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LocalLambdaContext:
    """The attributes handlers and powertools read from `context` (plain data, so it pickles)."""

    function_name: str
    timeout_seconds: float = 30.0
    memory_limit_in_mb: int = 512
    region: str = "us-east-1"
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline_epoch: float = 0.0

    def __post_init__(self) -> None:
        if not self.deadline_epoch:
            self.deadline_epoch = time.time() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{LOCAL_ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{os.getpid()}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_epoch - time.time()) * 1000))


def load_handler(dotted: str) -> Handler:
    """`package.module.function` (or `package.module:function`) → the function."""
    module_name, sep, attribute = dotted.partition(":")
    if not sep:
        module_name, _, attribute = dotted.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def ensure_local_aws_credentials(endpoint_url: str | None) -> None:
    """moto accepts any credentials but botocore insists on some: with an explicit (local)
    endpoint and no credentials configured, use dummies. Real credentials are never replaced."""
    if endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        os.environ["AWS_ACCESS_KEY_ID"] = "local"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "local"


def log_json(message: str, *, logger: str, level: str = "INFO", **fields: Any) -> None:
    """One JSON log line on stdout from the local runtime itself (the functions log their own)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = {"timestamp": now, "level": level, "logger": logger, "message": message, **fields}
    print(orjson.dumps(line, default=str).decode(), flush=True)
