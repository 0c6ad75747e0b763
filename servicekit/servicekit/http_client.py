"""Calls to another service: service token, request id, timeouts, bounded retries.

A downstream that cannot be reached (connection refused, timeout, 502/503/504 after the
retries) raises `DependencyUnavailable`, which every entry point turns into a 503 with
`Retry-After`: a down dependency is an honest answer, never a hang or a 500.

Only requests that are safe to repeat are retried: GET/HEAD/PUT/DELETE, and POSTs the caller
marks `retry=True` because they carry an idempotency key.

Inside a time budget (`servicekit.deadline`), each attempt's timeouts are cut to what is left and
no attempt starts without `MIN_ATTEMPT_SECONDS` left: the whole call ends inside the budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from . import deadline
from .auth import ServiceTokenMinter
from .logging import log_event
from .problems import Problem, dependency_unavailable
from .request_id import REQUEST_ID_HEADER, get_request_id

log = logging.getLogger(__name__)

_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_RETRYABLE_STATUSES = frozenset({502, 503, 504})
# An attempt with less time than this left is not worth starting.
MIN_ATTEMPT_SECONDS = 0.2


class DependencyUnavailable(Problem):
    def __init__(self, dependency: str, detail: str | None = None, retry_after: int = 2) -> None:
        problem = dependency_unavailable(dependency, detail, retry_after)
        super().__init__(
            problem.status,
            problem.code,
            problem.detail,
            headers=problem.headers,
            extra=problem.extra,
        )
        self.dependency = dependency


class ServiceClient:
    def __init__(
        self,
        base_url: str,
        *,
        audience: str,
        minter: ServiceTokenMinter | None,
        connect_timeout: float = 1.0,
        read_timeout: float = 5.0,
        retries: int = 2,
        backoff_seconds: float = 0.1,
        pool_size: int = 32,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self.minter = minter
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.session = session or requests.Session()
        # Service-to-service calls never go through a proxy, and looking one up in the environment
        # (and in .netrc) costs more CPU per call than the rest of the request's preparation.
        self.session.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool | None = None,
        authorization: str | None = None,
    ) -> requests.Response:
        """Send one request; returns any response below 502 (callers map 4xx themselves)."""
        method = method.upper()
        may_retry = retry if retry is not None else method in _IDEMPOTENT_METHODS
        attempts = 1 + (self.retries if may_retry else 0)
        url = self.base_url + path
        last_error = "no attempt made"
        last_response: requests.Response | None = None
        for attempt in range(1, attempts + 1):
            if not deadline.has_time_for(MIN_ATTEMPT_SECONDS):
                if last_response is not None:
                    return last_response  # the dependency's own 5xx answer says more than ours would
                last_error = f"{last_error}; the time budget ran out" if attempt > 1 else "the time budget ran out"
                break
            send_headers = self._headers(headers, authorization)
            started = time.perf_counter()
            timeout = (deadline.capped(self.timeout[0]), deadline.capped(self.timeout[1]))
            try:
                response = self.session.request(
                    method, url, json=json, params=params, headers=send_headers, timeout=timeout
                )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # Unreachable, too slow, or the connection dropped mid-answer: all a down dependency.
                last_error = type(exc).__name__
                log_event(
                    log,
                    "downstream_error",
                    logging.WARNING,
                    dependency=self.audience,
                    method=method,
                    path=path,
                    attempt=attempt,
                    error=last_error,
                )
            else:
                if response.status_code not in _RETRYABLE_STATUSES:
                    log_event(
                        log,
                        "downstream_call",
                        logging.DEBUG,
                        dependency=self.audience,
                        method=method,
                        path=path,
                        status=response.status_code,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    )
                    return response
                last_error = f"HTTP {response.status_code}"
                last_response = response
                if attempt == attempts:
                    return response
            if attempt < attempts:
                time.sleep(deadline.capped(self.backoff_seconds * (2 ** (attempt - 1))))
        raise DependencyUnavailable(self.audience, f"{self.audience} did not answer ({last_error})")

    def _headers(self, extra: Mapping[str, str] | None, authorization: str | None) -> dict[str, str]:
        headers: dict[str, str] = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        elif self.minter is not None:
            headers["Authorization"] = f"Bearer {self.minter.token_for(self.audience)}"
        request_id = get_request_id()
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        if extra:
            headers.update(extra)
        return headers
