"""Calls to another service: service token, request id, timeouts, bounded retries.

A downstream that cannot be reached (connection refused, timeout, 502/503/504 after the
retries) raises `DependencyUnavailable`, which every entry point turns into a 503 with
`Retry-After`: a down dependency is an honest answer, never a hang or a 500.

Only requests that are safe to repeat are retried: GET/HEAD/PUT/DELETE, and POSTs the caller
marks `retry=True` because they carry an idempotency key.

Inside a time budget (`servicekit.deadline`), each attempt's timeouts are cut to what is left and
no attempt starts without `MIN_ATTEMPT_SECONDS` left: the whole call ends inside the budget.

The transport is urllib3's keep-alive connection pool, used directly: `requests` on top of it
cost about twice the CPU per call (its session's settings merge, hooks, cookies and redirects,
none of which a call between our services uses), and the BFF makes five calls per order
(bench/README.md). Answers are read in full into an `HttpResponse`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import urllib3
from urllib3.connectionpool import HTTPConnectionPool, connection_from_url

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


# Everything urllib3 raises for a call that got no complete answer: refused, timed out (connect or
# read), dropped mid-answer.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError,)


class HttpResponse:
    """An answer, read in full: `status_code`, `headers` (case-insensitive), `content` (bytes)."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: Mapping[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        return orjson.loads(self.content)

    def __repr__(self) -> str:
        return f"<HttpResponse [{self.status_code}]>"


def keep_alive_pool(base_url: str, maxsize: int) -> HTTPConnectionPool:
    """Keep-alive connections to one origin (http or https, the system's CA certificates); more
    than `maxsize` at once are opened and closed after use rather than waited for."""
    return connection_from_url(base_url, maxsize=maxsize, block=False, retries=False)


def send(
    pool: HTTPConnectionPool,
    method: str,
    target: str,
    *,
    body: bytes | None,
    headers: Mapping[str, str],
    timeout: tuple[float, float],
) -> HttpResponse:
    """One attempt, no retries and no redirects; raises one of `TRANSPORT_ERRORS` without an answer."""
    response = pool.urlopen(
        method,
        target,
        body=body,
        headers=dict(headers),
        retries=False,
        redirect=False,
        assert_same_host=False,
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        preload_content=True,
    )
    return HttpResponse(response.status, response.headers, response.data)


def query_string(params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """`a=1&b=x&b=y`: a list value repeats its key, None leaves the key out (as requests did)."""
    pairs = params.items() if isinstance(params, Mapping) else params
    flat: list[tuple[str, str]] = []
    for name, value in pairs:
        for one in value if isinstance(value, list | tuple) else (value,):
            if one is not None:
                flat.append((name, str(one)))
    return urlencode(flat)


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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self.minter = minter
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        # Service-to-service calls go straight to the service: no proxy from the environment.
        self.pool = keep_alive_pool(self.base_url, pool_size)
        self._path_prefix = urlsplit(self.base_url).path

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
    ) -> HttpResponse:
        """Send one request; returns any response below 502 (callers map 4xx themselves)."""
        method = method.upper()
        may_retry = retry if retry is not None else method in _IDEMPOTENT_METHODS
        attempts = 1 + (self.retries if may_retry else 0)
        target = self._path_prefix + path
        if params:
            target = f"{target}?{query_string(params)}"
        body = None
        if json is not None:
            body = orjson.dumps(json)
            headers = {**(headers or {}), "Content-Type": "application/json"}
        last_error = "no attempt made"
        last_response: HttpResponse | None = None
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
                response = send(self.pool, method, target, body=body, headers=send_headers, timeout=timeout)
            except TRANSPORT_ERRORS as exc:
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
