"""Sweeper Lambda entry point (EventBridge schedule)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from servicekit.request_id import new_request_id

from ..budget import invocation_budget
from ..clients import orders_client, service_minter
from ..config import Settings, get_settings
from ..observability import logger, metrics, request_scope
from ..payment_events import PaymentEventPublisher
from ..sqs import SqsSender, make_sqs_client
from .sweeper import Sweeper, SweepIncomplete

CALLER = "sweeper"


def build_sweeper(
    settings: Settings, *, sqs_client: Any = None, fetch_secret: Callable[[str], str] | None = None
) -> Sweeper:
    sender = SqsSender(sqs_client or make_sqs_client(settings), max_retries=settings.sqs_send_max_retries)
    return Sweeper(
        orders=orders_client(settings, service_minter(settings, CALLER, fetch_secret)),
        publisher=PaymentEventPublisher(sender, settings.require_queue_url()),
        grace_seconds=settings.payment_grace_seconds,
        processing_grace_seconds=settings.payment_processing_grace_seconds,
        page_limit=settings.sweeper_batch_limit,
    )


_sweeper: Sweeper | None = None


def sweeper() -> Sweeper:
    global _sweeper
    if _sweeper is None:
        _sweeper = build_sweeper(get_settings())
    return _sweeper


def use_sweeper(replacement: Sweeper | None) -> None:
    global _sweeper
    _sweeper = replacement


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # One request id per sweep: it reaches orders-service and every re-published event.
    with request_scope(new_request_id()), invocation_budget(context, get_settings().lambda_time_margin_seconds):
        report = sweeper().run()
    if report.failed_steps:
        raise SweepIncomplete(f"sweep steps failed: {', '.join(report.failed_steps)}")
    return report.as_dict()
