"""Is this customer real? Asked of customers-service, with a short positive cache.

customers-service owns customers; orders-service only checks that one exists (and is not
soft-deleted) before it takes stock or builds a cart for it, via
`GET /internal/customers/{id}` with this service's token (aud `customers-service`).

Positive answers are cached per process for `CUSTOMER_CACHE_TTL_SECONDS` (0 disables the
cache). Unknown customers are never cached, so a customer created a moment ago is found at once.

Deletes are not left to the cache's expiry: customers-service reports each soft delete, once it
has committed, to `POST /internal/customers/{id}/deleted`, which records a tombstone in
`deleted_customers` (`record_deletion`). The transactions that take stock or grow a cart read
the tombstone in a statement they run anyway and answer the unknown customer's 404, dropping the
customer from the cache of the worker that saw it. The TTL remains the bound only when that
report never arrives (customers-service logs `customer_delete_notification_failed`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from servicekit.db import read, transaction
from servicekit.http_client import DependencyUnavailable, ServiceClient
from servicekit.logging import log_event
from servicekit.problems import not_found
from servicekit.timeutil import iso_utc, utcnow

from .. import repository as repo

if TYPE_CHECKING:
    from .context import ServiceContext

log = logging.getLogger(__name__)


def record_deletion(ctx: ServiceContext, customer_id: int) -> dict[str, Any]:
    """Store the customer's tombstone (idempotent: a repeated report keeps the first time)."""
    deleted_at = transaction(ctx.connect, lambda conn: repo.record_deleted_customer(conn, customer_id, utcnow()))
    ctx.customers.forget(customer_id)  # this worker; the others drop it when they meet the tombstone
    return {"customer_id": customer_id, "deleted_at": iso_utc(deleted_at)}


def customer_gone(connect: Callable[[], Connection], customer_id: int) -> bool:
    """Whether customers-service reported this customer deleted: its users' tokens are refused
    (docs/auth.md). One primary-key read; asked only for customer users' own tokens."""
    return read(connect, lambda conn: repo.customer_deleted(conn, customer_id))


class CustomerDirectory:
    _CACHE_LIMIT = 50_000

    def __init__(self, client: ServiceClient, *, cache_ttl_seconds: float) -> None:
        self.client = client
        self.cache_ttl_seconds = cache_ttl_seconds
        self._known_until: dict[int, float] = {}
        self._lock = threading.Lock()

    def ensure_exists(self, customer_id: int) -> None:
        """Return if the customer exists; 404 `not_found` (resource customer) if not; 503 if unknown."""
        if self._is_cached(customer_id):
            return
        response = self.client.request("GET", f"/internal/customers/{customer_id}")
        if response.status_code == 200:
            self._remember(customer_id)
            return
        if response.status_code == 404:
            raise not_found("customer", customer_id)
        # 401/403 mean our token or their trust list is misconfigured; 5xx means they are broken.
        # Either way we cannot tell whether the customer exists: the dependency is unavailable.
        log_event(log, "customer_lookup_failed", logging.ERROR, status=response.status_code, customer_id=customer_id)
        raise DependencyUnavailable(self.client.audience, f"{self.client.audience} answered {response.status_code}")

    def forget(self, customer_id: int | None = None) -> None:
        with self._lock:
            if customer_id is None:
                self._known_until.clear()
            else:
                self._known_until.pop(customer_id, None)

    def _is_cached(self, customer_id: int) -> bool:
        if self.cache_ttl_seconds <= 0:
            return False
        until = self._known_until.get(customer_id)
        return until is not None and until > time.monotonic()

    def _remember(self, customer_id: int) -> None:
        if self.cache_ttl_seconds <= 0:
            return
        with self._lock:
            if len(self._known_until) >= self._CACHE_LIMIT:
                self._known_until.clear()
            self._known_until[customer_id] = time.monotonic() + self.cache_ttl_seconds
