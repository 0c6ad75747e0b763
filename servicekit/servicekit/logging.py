"""One JSON object per line on stdout, with the current request id in every line.

Fields whose names look like secrets are replaced before they are written: a log line must
never carry a password, token or key, whoever passes it in.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from .request_id import get_request_id

_SECRET_MARKERS = ("password", "secret", "token", "authorization", "api_key", "jwt_keys", "hash")
REDACTED = "[redacted]"


@lru_cache(maxsize=4096)  # field names repeat on every line: decide once per name
def _is_secret_key(key: str) -> bool:
    lowered = key.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


_CONTAINERS = (Mapping, list, tuple)


def redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _is_secret_key(str(k)) else (redact(v) if isinstance(v, _CONTAINERS) else v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "event": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or get_request_id()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(redact(fields))
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route the root logger to stdout as JSON lines; idempotent."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our JSON lines use none of the caller's file/line, thread or process names: skip finding
    # them for every record (the logging HOWTO's "Optimization" settings; a stack walk per line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # Werkzeug's own access log would duplicate our http_request lines in plain text.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log a named event with structured fields: `log_event(log, "order_created", order_id=1)`."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})
