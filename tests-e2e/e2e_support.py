"""What the end-to-end tests share: starting a stack on MariaDB, a BFF client, bounded waits,
and a TCP proxy that can cut the BFF and the sweeper off from SQS.

Black box: everything goes over HTTP (the BFF, and orders-service directly where the BFF has no
route, e.g. an order left CREATED) or through SQS's API; the only inside view is each process's
JSON log file, which is part of the contract (docs/api.md: the request id in every log line).
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from gateway_simulator.testing import GatewayControl, new_api_key
from servicekit.testing import ServiceKeySet, ThrowawayDatabase, free_port, random_key_ring_value

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from stack import Stack, StackConfig  # noqa: E402

T = TypeVar("T")
HTTP_TIMEOUT = 30


def wait_for(probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class E2eStack:
    stack: Stack
    env: dict[str, str]
    databases: list[ThrowawayDatabase] = field(default_factory=list)

    @property
    def bff_url(self) -> str:
        return self.stack.config.urls["bff"]

    @property
    def orders_url(self) -> str:
        return self.stack.config.urls["orders"]

    @property
    def gateway(self) -> GatewayControl:
        """The payment gateway simulator: its ledger (`charges(order_id)`) and `set_faults(...)`."""
        return GatewayControl(self.stack.config.urls["gateway"], self.env["PAYMENT_GATEWAY_API_KEY"])

    @property
    def queue_url(self) -> str:
        return self.stack.queue_urls["payments"]

    @property
    def dlq_url(self) -> str:
        return self.stack.queue_urls["payments-dlq"]

    def sqs(self) -> Any:
        return self.stack.sqs_client()

    def ensure_running(self, *names: str) -> None:
        for name in names:
            if not self.stack.processes[name].running:
                self.stack.start_process(name)

    def records(self, process: str) -> list[dict[str, Any]]:
        return self.stack.log_records(process)


@contextmanager
def running_stack(
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    sqs_endpoint_for_publishers: Callable[[int], str] | None = None,
    **config: Any,
) -> Iterator[E2eStack]:
    """A whole stack on two throwaway MariaDB databases, free ports, its own secrets."""
    # As in production: the services run as DML-only users, migrations as a user with DDL.
    databases = [ThrowawayDatabase("e2e_customers", dml_only=True), ThrowawayDatabase("e2e_orders", dml_only=True)]
    full_env = {
        **os.environ,
        "APP_ENV": "development",
        "LOG_LEVEL": "INFO",
        "USER_JWT_KEYS": random_key_ring_value("u1"),
        # One key pair per service identity; scripts/stack.py gives each process its own.
        **ServiceKeySet.generate().dotenv(),
        "DEMO_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "DEMO_USER_PASSWORD": secrets.token_urlsafe(12),
        "PAYMENT_SIMULATION_MODE": "always_succeed",
        "PAYMENT_GATEWAY_API_KEY": new_api_key(),
        # Fail fast against a dead dependency: these tests stop some on purpose.
        "DOWNSTREAM_CONNECT_TIMEOUT_SECONDS": "0.5",
        "DOWNSTREAM_TIMEOUT_SECONDS": "10",
        "DOWNSTREAM_RETRIES": "1",
        "SQS_SEND_MAX_RETRIES": "1",
        **(env or {}),
    }
    sqs_port = free_port()
    stack_config = StackConfig(
        env=full_env,
        customers_database_url=databases[0].url,
        orders_database_url=databases[1].url,
        customers_migrate_database_url=databases[0].migrate_url,
        orders_migrate_database_url=databases[1].migrate_url,
        log_dir=log_dir,
        bff_port=free_port(),
        customers_port=free_port(),
        orders_port=free_port(),
        sqs_port=sqs_port,
        gateway_port=free_port(),
        gateway_ledger_path=log_dir / "gateway-ledger.db",
        web_workers=2,
        web_threads=4,
        bff_environments=3,
        sweeper_interval_seconds=1.0,
        echo=False,
        sqs_endpoint_for_publishers=sqs_endpoint_for_publishers(sqs_port) if sqs_endpoint_for_publishers else None,
    )
    for name, value in config.items():
        setattr(stack_config, name, value)
    stack = Stack(stack_config)
    try:
        stack.start()
        yield E2eStack(stack, full_env, databases)
    finally:
        stack.stop()
        for database in databases:
            database.drop()


# --- a client of the public API ------------------------------------------------------------------


class ApiError(AssertionError):
    pass


@dataclass
class Bff:
    base_url: str
    token: str | None = None
    user: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def login(cls, base_url: str, username: str, password: str) -> Bff:
        answer = requests.post(
            f"{base_url}/auth/login", json={"username": username, "password": password}, timeout=HTTP_TIMEOUT
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return cls(base_url, body["access_token"], body["user"])

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any):
        return requests.request(
            method, f"{self.base_url}{path}", headers=self.headers(headers), timeout=HTTP_TIMEOUT, **kwargs
        )

    def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        answer = self.request(method, path, **kwargs)
        if answer.status_code != status:
            raise ApiError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None

    # Shortcuts for what every scenario does.

    def new_product(self, stock: int, price_cents: int = 1_000) -> dict[str, Any]:
        sku = f"E2E-{uuid.uuid4().hex[:12]}"
        body = {"sku": sku, "name": f"e2e product {sku}", "price_cents": price_cents, "stock": stock}
        return self.ok("POST", "/products", 201, json=body)

    def stock(self, product_id: int) -> int:
        return self.ok("GET", f"/products/{product_id}")["stock"]

    def order(self, order_id: int) -> dict[str, Any]:
        return self.ok("GET", f"/orders/{order_id}")

    def place(self, items: list[dict[str, int]], *, key: str | None = None, **headers: str) -> requests.Response:
        return self.request(
            "POST",
            "/orchestrator/create-and-confirm-order",
            json={"items": items},
            headers={"Idempotency-Key": key or uuid.uuid4().hex, **headers},
        )

    def wait_for_order(self, order_id: int, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
        def settled() -> dict[str, Any] | None:
            order = self.order(order_id)
            return order if order["status"] in statuses else None

        return wait_for(settled, timeout=timeout, what=f"order {order_id} to reach {sorted(statuses)}")


# --- reading logs ------------------------------------------------------------------------------


def outcomes_recorded(stack: E2eStack, order_id: int) -> list[dict[str, Any]]:
    """The payments Lambda's `payment_outcome_recorded` lines for one order."""
    return [
        r
        for r in stack.records("payments")
        if r.get("message") == "payment_outcome_recorded" and r.get("order_id") == order_id
    ]


def applied_outcomes(stack: E2eStack, order_id: int) -> list[dict[str, Any]]:
    return [r for r in outcomes_recorded(stack, order_id) if r.get("applied") is True]


# --- fault injection ---------------------------------------------------------------------------


class FaultyProxy:
    """A TCP proxy on loopback. `cut()` drops every open connection and answers new ones by
    closing them at once (what a network partition looks like to an HTTP client, quickly);
    `heal()` passes traffic again."""

    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target_port = target_port
        self.port = port or free_port()
        self._up = True
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._server.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faulty-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._server.close()
        self._close_all()

    def cut(self) -> None:
        with self._lock:
            self._up = False
        self._close_all()

    def heal(self) -> None:
        with self._lock:
            self._up = True

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            _reset(sock)

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(None)
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _reset(sock)
                with self._lock:
                    self._open.discard(sock)


def _reset(sock: socket.socket) -> None:
    """Close with RST, not FIN: the client sees the connection fail, not a clean end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
