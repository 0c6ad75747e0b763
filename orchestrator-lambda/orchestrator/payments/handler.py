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
from ..observability import logger, metrics, tracer
from ..sqs import SqsSender, make_sqs_client
from .gateway import PaymentGateway, SimulatedPaymentGateway
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
        gateway=gateway
        or SimulatedPaymentGateway(
            settings.payment_simulation_mode,
            success_rate=settings.payment_success_rate,
            max_amount_cents=settings.payment_rule_max_amount_cents,
        ),
        dead_letters=DeadLetterQueue(sender, settings.require_dlq_url()),
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
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Answer before the timeout: a timed-out batch comes back whole, charged records included.
    with invocation_budget(context, get_settings().lambda_time_margin_seconds):
        return process_partial_response(event=event, record_handler=record_handler, processor=batch, context=context)
