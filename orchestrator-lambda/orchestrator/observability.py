"""Logger and Metrics shared by the three Lambdas, and the request scope they log under.

The request id lives in servicekit's context var (what `ServiceClient` forwards downstream); a
logging filter copies it into every line, ours and servicekit's, as `request_id` and as
powertools' `correlation_id`. servicekit's `log_event(..., fields)` lines are flattened and
redacted the way servicekit's own JSON formatter does it; messages, exception texts and
tracebacks go through servicekit's `redact_text` (no hash, password or token in a log line).

No X-Ray SDK: Lambda's active tracing (template.yaml) records each invocation and its init, and
the request id ties a request's lines across the services (docs/adr/0008-lambda-cold-start.md).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

import servicekit.http_client  # noqa: F401  (registers the logger that gets our handler below)
from servicekit.logging import format_exception, redact, redact_text
from servicekit.request_id import current_request_id, get_request_id

from .config import METRICS_NAMESPACE, get_settings

_STANDARD_RECORD_KEYS = frozenset(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None).__dict__) | {
    "message",
    "asctime",
}

_log_fields: ContextVar[dict[str, Any] | None] = ContextVar("orchestrator_log_fields", default=None)


class RequestContextFilter(logging.Filter):
    """Stamps the current request id on every record, flattens servicekit fields, redacts secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg, record.args = redact_text(record.getMessage()), ()
        if isinstance(record.exc_info, tuple) and record.exc_info[0] is not None:
            # Rendered (and redacted) here: powertools would print the exception's own text,
            # which for a database error quotes the statement and its values.
            record.__dict__.setdefault("exception", format_exception(record.exc_info))
            record.__dict__.setdefault("exception_name", record.exc_info[0].__name__)
            record.exc_info, record.exc_text = None, None
        fields = record.__dict__.pop("fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                record.__dict__.setdefault(str(key), value)
        for key in [k for k in record.__dict__ if k not in _STANDARD_RECORD_KEYS]:
            record.__dict__[key] = redact({key: record.__dict__[key]})[key]
        request_id = get_request_id()
        if request_id:
            record.__dict__.setdefault("request_id", request_id)
            record.__dict__.setdefault("correlation_id", request_id)
        return True


_settings = get_settings()
# ISO 8601 UTC with `Z` and milliseconds, like the services' lines (`%F` is powertools' milliseconds).
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S.%FZ"
logger = Logger(service=_settings.service_name, level=_settings.log_level, utc=True, datefmt=LOG_DATEFMT)
logger.registered_handler.addFilter(RequestContextFilter())
copy_config_to_registered_loggers(source_logger=logger, include={"servicekit.http_client"})
metrics = Metrics(namespace=METRICS_NAMESPACE, service=_settings.service_name)
# An invocation without a business event (a GET) has nothing to publish; that is not news.
warnings.filterwarnings("ignore", message="No application metrics to publish")


def count(name: str, value: int = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def note(**fields: Any) -> None:
    """Attach ids (order_id, customer_id, ...) to this request's summary log line."""
    current = _log_fields.get()
    if current is not None:
        current.update({k: v for k, v in fields.items() if v is not None})


def noted() -> dict[str, Any]:
    return dict(_log_fields.get() or {})


@contextmanager
def request_scope(request_id: str) -> Iterator[str]:
    """Make `request_id` current for logs, downstream calls and SQS attributes until exit."""
    id_token = current_request_id.set(request_id)
    fields_token = _log_fields.set({})
    try:
        yield request_id
    finally:
        _log_fields.reset(fields_token)
        current_request_id.reset(id_token)
