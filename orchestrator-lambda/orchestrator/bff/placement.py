"""Placing an order end to end: customer check → create → confirm → payment event.

Used by `POST /orchestrator/create-and-confirm-order` (items in the body) and `POST /checkout`
(the customer's cart). Each downstream write carries a key derived from the client's key, so a
retry, in sequence or in parallel, replays instead of acting again: one order, one confirmation,
one reservation. The payment event is published on every attempt that reaches a confirmed order
(a first attempt may have died before publishing); the payments Lambda applies each order once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from servicekit.auth import Principal
from servicekit.http_client import ServiceClient

from ..clients import CUSTOMERS_SERVICE, ORDERS_SERVICE
from ..downstream import Reply, problem_code, read_reply
from ..observability import count, logger, note
from ..payment_events import PaymentEventPublisher, PaymentRequested, PublishResult
from .idempotency import derive_key

IN_FLIGHT = "idempotency_in_flight"


@dataclass(frozen=True)
class PlacedOrder:
    customer: dict[str, Any]
    order: dict[str, Any]
    correlation_id: str
    payment_event: PublishResult
    replayed: bool

    def response_body(self) -> dict[str, Any]:
        return {
            "success": True,
            "correlation_id": self.correlation_id,
            "data": {"customer": self.customer, "order": self.order},
            "payment_event": self.payment_event.as_response_field(),
        }


class OrderPlacement:
    def __init__(
        self,
        *,
        customers: ServiceClient,
        orders: ServiceClient,
        publisher: PaymentEventPublisher,
        in_flight_max_wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.customers = customers
        self.orders = orders
        self.publisher = publisher
        self.in_flight_max_wait_seconds = in_flight_max_wait_seconds
        self.sleep = sleep
        self.clock = clock

    def place(
        self,
        principal: Principal,
        *,
        flow: str,
        customer_id: int,
        order_request: Mapping[str, Any],
        client_key: str,
        correlation_id: str,
    ) -> PlacedOrder:
        """`order_request` is the POST /orders body: `{customer_id, items}` or `{customer_id, from_cart}`."""
        note(customer_id=customer_id)
        customer = read_reply(
            self.customers.request("GET", f"/internal/customers/{customer_id}"), CUSTOMERS_SERVICE
        ).body
        created = self._keyed_post(
            "/orders", dict(order_request), derive_key(principal.identity, f"{flow}:create", client_key)
        )
        order_id = created.body["id"]
        note(order_id=order_id)
        confirmed = self._keyed_post(
            f"/orders/{order_id}/confirm", {}, derive_key(principal.identity, f"{flow}:confirm", client_key)
        )
        order = confirmed.body
        publish = self.publisher.publish(PaymentRequested.for_order(order, correlation_id))
        count("OrdersPlaced" if not confirmed.replayed else "OrderPlacementsReplayed")
        if not publish.published:
            count("PaymentEventsDeferred")
        logger.info(
            "order_placed",
            extra={
                "flow": flow,
                "order_id": order_id,
                "customer_id": customer_id,
                "replayed": confirmed.replayed,
                "payment_event": "published" if publish.published else "deferred",
            },
        )
        return PlacedOrder(customer, order, correlation_id, publish, created.replayed and confirmed.replayed)

    def _keyed_post(self, path: str, body: Mapping[str, Any], key: str) -> Reply:
        """POST with an idempotency key; while orders-service says the twin is still running, wait
        as told by Retry-After, within a bounded budget, then ask again (and get the replay)."""
        deadline = self.clock() + self.in_flight_max_wait_seconds
        while True:
            # The key makes the POST safe to resend after a timeout or a dropped connection.
            response = self.orders.request("POST", path, json=body, headers={"Idempotency-Key": key}, retry=True)
            remaining = deadline - self.clock()
            if response.status_code != 409 or problem_code(response) != IN_FLIGHT or remaining <= 0:
                return read_reply(response, ORDERS_SERVICE)
            wait = min(_retry_after_seconds(response), remaining)
            logger.info("idempotency_in_flight_wait", extra={"path": path, "wait_seconds": round(wait, 3)})
            self.sleep(wait)


def _retry_after_seconds(response: requests.Response, default: float = 1.0) -> float:
    try:
        return max(0.05, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default
