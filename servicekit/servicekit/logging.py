"""One JSON object per line on stdout, with the current request id in every line.

A log line must never carry a password, password hash, token or key, whoever passes it in:
- fields whose names look like secrets are replaced (`redact`);
- free text (messages, string fields, exception messages and tracebacks) goes through
  `redact_text`, which replaces what looks like a secret wherever it appears: argon2 hashes, JWTs,
  bearer credentials, `password=...`-style pairs, credentials in URLs, and the bound parameters
  SQLAlchemy prints with a failed statement (the engines also hide them: servicekit.db).
"""

from __future__ import annotations

import logging
import re
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
    """Secret-named fields replaced, and free text in the others redacted (`redact_text`)."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(str(k)) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


_SECRET_NAME = r"[A-Za-z_]*(?:password|passwd|secret|token|api_key|apikey|authorization|jwt_keys|private_keys|hash)"
_SECRET_PATTERNS = [
    # What SQLAlchemy appends to a failed statement: the bound values, hashes and passwords included.
    (re.compile(r"\[parameters: .*?\](?=\n|$)", re.S), "[parameters: " + REDACTED + "]"),
    (re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=,$.-]*"), REDACTED),
    # A JWT: three base64url parts, the first a JSON header ("eyJ").
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), REDACTED),
    # An HTTP credential: the scheme's name is case-insensitive (RFC 9110).
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # name=value / name: value / 'name': 'value' where the name looks like a secret.
    (
        # (A statement's placeholder, `password_hash=%(password_hash)s`, is left alone.)
        re.compile(rf"(?i)([\"']?{_SECRET_NAME}[\"']?\s*[=:]\s*)(?!%\(|\?|:\w)(?:'[^']*'|\"[^\"]*\"|[^\s,;&)\]}}]+)"),
        r"\1" + REDACTED,
    ),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1" + REDACTED + "@"),
]
# Cheap pre-check: text with none of these cannot match a pattern above.
_SECRET_HINTS = re.compile(r"(?i)parameters|argon2|eyJ|bearer|basic|passw|secret|token|key|authorization|hash|://")
# The same check for ASCII text (nearly every string of every log line), on the text in lower
# case: for ASCII, lower case is exactly what IGNORECASE compares, and this is about 8x faster
# (bench/README.md, "Issue 9, stop 20"). Other text keeps the IGNORECASE check, which also
# matches letters whose lower case is not ASCII (`İ` for i, `ſ` for s).
_ASCII_SECRET_HINTS = re.compile(_SECRET_HINTS.pattern.removeprefix("(?i)").lower())


def redact_text(text: str) -> str:
    """`text` with everything that looks like a secret replaced by `[redacted]`."""
    hinted = _ASCII_SECRET_HINTS.search(text.lower()) if text.isascii() else _SECRET_HINTS.search(text)
    if not hinted:
        return text
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def format_exception(exc_info: Any) -> str:
    """A traceback as text, redacted: messages of database errors quote statements and values."""
    return redact_text("".join(traceback.format_exception(*exc_info)).rstrip())


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
            "event": redact_text(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or get_request_id()
        if request_id:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(redact(fields))
        if record.exc_info:
            entry["exception"] = format_exception(record.exc_info)
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
