"""Placing an order end to end: customer check → create and confirm → payment event → keep the answer.

Used by `POST /orchestrator/create-and-confirm-order` (items in the body) and `POST /checkout`
(the customer's cart). orders-service creates and confirms in one call
(`POST /internal/placements`), so no attempt leaves a CREATED order holding stock behind. Each
downstream write carries a key derived from the client's key, so a retry, in sequence or in
parallel, replays instead of acting again: one order, one confirmation, one reservation
(docs/idempotency.md).

The BFF keeps its own final answer too, in orders-service beside the other keys
(`/internal/stored-responses/{key}`): a retry answers exactly what the first attempt answered,
whatever happened since, the customer deleted or customers-service down included. It is read
only when a retry shows itself (the customer check fails, or the placement is a replay), so a new
order costs one extra call, the store. An attempt that reaches a confirmed order but whose
answer is not stored yet (the first one died before storing) publishes the payment event again;
that is harmless, because the payments Lambda claims before it charges (docs/payments.md).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from servicekit.auth import Principal
from servicekit.deadline import capped, has_time_for
from servicekit.http_client import HttpResponse, ServiceClient
from servicekit.problems import Problem, idempotency_key_mismatch

from ..clients import CUSTOMERS_SERVICE, ORDERS_SERVICE
from ..downstream import Reply, problem_code, read_reply
from ..observability import count, logger, note
from ..payment_events import PaymentEventPublisher, PaymentRequested, PublishResult
from .auth import customer_deleted
from .idempotency import derive_key

IN_FLIGHT = "idempotency_in_flight"
CREATED = "CREATED"  # an order not confirmed yet
# The store is skipped with less time than this left: the answer matters more than keeping it.
STORE_RESERVE_SECONDS = 0.5


@dataclass(frozen=True)
class Answer:
    """What the client gets: the body of a 201, and whether it is a replay of an earlier answer."""

    body: dict[str, Any]
    replayed: bool


def request_fingerprint(flow: str, order_request: Mapping[str, Any]) -> str:
    canonical = orjson.dumps({"flow": flow, "request": order_request}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


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
    ) -> Answer:
        """`order_request` is the POST /orders body: `{customer_id, items}` or `{customer_id, from_cart}`."""
        note(customer_id=customer_id)
        answer_key = derive_key(principal.identity, f"{flow}:answer", client_key)
        fingerprint = request_fingerprint(flow, order_request)
        try:
            customer = read_reply(
                self.customers.request("GET", f"/internal/customers/{customer_id}"), CUSTOMERS_SERVICE
            ).body
        except Problem as problem:
            if problem.status == 404 and principal.is_customer_user:
                # The token's own customer is gone: the token is refused, stored answer or not.
                raise customer_deleted() from None
            # Gone or unreachable now; if this is a retry of a placement that succeeded, its answer stands.
            stored = self._stored_answer(answer_key, fingerprint, required=False)
            if stored is not None:
                return stored
            raise
        # Create and confirm in one call and one transaction. Its key is the create key: a key a
        # plain create used first (an attempt that began before placements existed) replays that
        # CREATED order, which is then confirmed as it always was.
        placed = self._keyed_post(
            "/internal/placements", dict(order_request), derive_key(principal.identity, f"{flow}:create", client_key)
        )
        order = placed.body
        note(order_id=order["id"])
        if placed.replayed:
            stored = self._stored_answer(answer_key, fingerprint, required=False)
            if stored is not None:
                return stored
        replayed = placed.replayed
        if order["status"] == CREATED:
            confirmed = self._keyed_post(
                f"/orders/{order['id']}/confirm", {}, derive_key(principal.identity, f"{flow}:confirm", client_key)
            )
            order, replayed = confirmed.body, replayed and confirmed.replayed
        order_id = order["id"]
        publish = self.publisher.publish(PaymentRequested.for_order(order, correlation_id))
        count("OrdersPlaced" if not replayed else "OrderPlacementsReplayed")
        if not publish.published:
            count("PaymentEventsDeferred")
        logger.info(
            "order_placed",
            extra={
                "flow": flow,
                "order_id": order_id,
                "customer_id": customer_id,
                "replayed": replayed,
                "payment_event": "published" if publish.published else "deferred",
            },
        )
        return self._keep(answer_key, fingerprint, PlacedOrder(customer, order, correlation_id, publish, replayed))

    def _stored_answer(self, answer_key: str, fingerprint: str, *, required: bool) -> Answer | None:
        """The answer stored under this key (422 if for another request), or None."""
        try:
            response = self.orders.request("GET", f"/internal/stored-responses/{answer_key}")
            if response.status_code == 404:
                return None
            stored = read_reply(response, ORDERS_SERVICE).body
        except Problem:
            if required:
                raise
            logger.warning("stored_answer_unreadable", extra={"answer_key": answer_key})
            return None
        if stored.get("fingerprint") != fingerprint:
            raise idempotency_key_mismatch()
        count("OrderPlacementsReplayed")
        return Answer(stored["body"], replayed=True)

    def _keep(self, answer_key: str, fingerprint: str, placed: PlacedOrder) -> Answer:
        """Store the answer (the first stored wins, so parallel twins all answer the same), and
        return what is stored. A failed store costs nothing but a later replay's recomputation."""
        body = placed.response_body()
        if not has_time_for(STORE_RESERVE_SECONDS):
            logger.warning("answer_not_stored", extra={"reason": "time_budget"})
            return Answer(body, placed.replayed)
        payload = {"fingerprint": fingerprint, "status": 201, "body": body}
        try:
            response = self.orders.request("PUT", f"/internal/stored-responses/{answer_key}", json=payload)
            stored = read_reply(response, ORDERS_SERVICE).body
        except Problem as exc:
            if exc.status == 422:
                raise idempotency_key_mismatch() from None
            logger.warning("answer_not_stored", extra={"reason": exc.code})
            return Answer(body, placed.replayed)
        if stored.get("replayed"):
            return Answer(stored["body"], replayed=True)
        return Answer(body, placed.replayed)

    def _keyed_post(self, path: str, body: Mapping[str, Any], key: str) -> Reply:
        """POST with an idempotency key; while orders-service says the twin is still running, wait
        as told by Retry-After, within a bounded budget, then ask again (and get the replay)."""
        deadline = self.clock() + capped(self.in_flight_max_wait_seconds)
        while True:
            # The key makes the POST safe to resend after a timeout or a dropped connection.
            response = self.orders.request("POST", path, json=body, headers={"Idempotency-Key": key}, retry=True)
            remaining = deadline - self.clock()
            if response.status_code != 409 or problem_code(response) != IN_FLIGHT or remaining <= 0:
                return read_reply(response, ORDERS_SERVICE)
            wait = min(_retry_after_seconds(response), remaining)
            logger.info("idempotency_in_flight_wait", extra={"path": path, "wait_seconds": round(wait, 3)})
            self.sleep(wait)


def _retry_after_seconds(response: HttpResponse, default: float = 1.0) -> float:
    try:
        return max(0.05, float(response.headers.get("Retry-After", default)))
    except ValueError:
        return default
