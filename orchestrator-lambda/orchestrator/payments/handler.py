"""Payments Lambda entry point: SQS batches (up to 10) with ReportBatchItemFailures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ..budget import invocation_budget
from ..clients import orders_client, service_minter
from ..config import Settings, get_settings
from ..observability import logger, metrics
from ..sqs import SqsSender, make_sqs_client
from .gateway import PaymentGateway
from .http_gateway import HttpPaymentGateway
from .processor import DeadLetterQueue, PaymentProcessor

CALLER = "payments"

# A batch where every record failed is reported like any other (all ids in batchItemFailures)
# rather than raised: same effect for SQS, and the poller reads one answer shape.
batch = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def build_processor(
    settings: Settings,
    *,
    sqs_client: Any = None,
    gateway: PaymentGateway | None = None,
    fetch_secret: Callable[[str], str] | None = None,
) -> PaymentProcessor:
    sender = SqsSender(sqs_client or make_sqs_client(settings), max_retries=settings.sqs_send_max_retries)
    return PaymentProcessor(
        orders=orders_client(settings, service_minter(settings, CALLER, fetch_secret)),
        gateway=gateway or build_gateway(settings, fetch_secret),
        dead_letters=DeadLetterQueue(sender, settings.require_dlq_url()),
    )


def build_gateway(settings: Settings, fetch_secret: Callable[[str], str] | None = None) -> HttpPaymentGateway:
    """The provider's HTTP API; its key is read here, at cold start: without it the function
    refuses to start rather than fail every payment."""
    return HttpPaymentGateway(
        settings.payment_gateway_url,
        settings.payment_gateway_api_key.resolve(fetch_secret),
        timeout_seconds=settings.payment_gateway_timeout_seconds,
        connect_timeout_seconds=settings.downstream_connect_timeout_seconds,
        retries=settings.payment_gateway_retries,
    )


_processor: PaymentProcessor | None = None


def processor() -> PaymentProcessor:
    global _processor
    if _processor is None:
        _processor = build_processor(get_settings())
    return _processor


def use_processor(replacement: PaymentProcessor | None) -> None:
    global _processor
    _processor = replacement


def record_handler(record: SQSRecord) -> str:
    return processor().process(record)


@logger.inject_lambda_context
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Answer before the timeout: a timed-out batch comes back whole, charged records included.
    with invocation_budget(context, get_settings().lambda_time_margin_seconds):
        return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)
