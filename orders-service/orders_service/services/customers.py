"""Is this customer real? Asked of customers-service, with a short positive cache.

customers-service owns customers; orders-service only checks that one exists (and is not
soft-deleted) before it takes stock or builds a cart for it, via
`GET /internal/customers/{id}` with this service's token (aud `customers-service`).

Positive answers are cached per process for `CUSTOMER_CACHE_TTL_SECONDS` (0 disables the
cache). That is the staleness bound for deletes: a customer deleted in customers-service can
still have orders placed for it by a process that saw it alive, for at most that many seconds.
Unknown customers are never cached, so a customer created a moment ago is found at once.
"""

from __future__ import annotations

import logging
import threading
import time

from servicekit.http_client import DependencyUnavailable, ServiceClient
from servicekit.logging import log_event
from servicekit.problems import not_found

log = logging.getLogger(__name__)


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
