from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Before any orchestrator module is imported: observability reads the settings at import time.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "orchestrator-tests")
os.environ.setdefault("AWS_REGION", "us-east-1")

import orjson
import requests

from gateway_simulator.testing import SimulatorProcess
from orchestrator.bff.dependencies import BffDependencies, build_dependencies, use_dependencies
from orchestrator.bff.handler import lambda_handler as bff_handler
from orchestrator.config import Settings, load_settings
from servicekit.auth import KeyRing
from servicekit.testing import ServiceKeySet, TokenFactory, free_port, random_key_ring_value

from .stubs import FakeSqs, HttpAnswer, StubService, call_handler

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/payments"
DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/payments-dlq"


@pytest.fixture(scope="session")
def service_keys() -> ServiceKeySet:
    """A key pair per service identity, as `make env` makes them."""
    return ServiceKeySet.generate()


@pytest.fixture(scope="session")
def key_rings(service_keys: ServiceKeySet) -> dict[str, str]:
    """The BFF's secrets: the user ring and its own identity's private key."""
    return {
        "USER_JWT_KEYS": random_key_ring_value("u1"),
        "SERVICE_JWT_PRIVATE_KEYS": service_keys.private["orchestrator"],
    }


@pytest.fixture(scope="session")
def tokens(key_rings: dict[str, str], service_keys: ServiceKeySet) -> TokenFactory:
    return TokenFactory(KeyRing.parse(key_rings["USER_JWT_KEYS"]), service_keys)


def as_function(environ: dict[str, str], service_keys: ServiceKeySet, caller: str) -> dict[str, str]:
    """The environment of another function (payments, sweeper): its own identity's private key."""
    return {**environ, "SERVICE_JWT_PRIVATE_KEYS": service_keys.private[caller]}


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the Lambdas' logger writes during the test, parsed."""
    from orchestrator.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [orjson.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)


@pytest.fixture
def customers() -> Iterator[StubService]:
    stub = StubService()
    # Every customer exists unless a test says otherwise (the BFF checks a customer user's own).
    stub.on("GET", r"/internal/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1]), "name": "Acme"}))
    yield stub
    stub.close()


@pytest.fixture
def orders() -> Iterator[StubService]:
    stub = StubService()
    yield stub
    stub.close()


@pytest.fixture
def environ(key_rings: dict[str, str], customers: StubService, orders: StubService) -> dict[str, str]:
    """The environment the Lambdas would get, pointed at the stub services."""
    return {
        **key_rings,
        "CUSTOMERS_API_URL": customers.url,
        "ORDERS_API_URL": orders.url,
        "PAYMENTS_QUEUE_URL": QUEUE_URL,
        "PAYMENTS_DLQ_URL": DLQ_URL,
        "DOWNSTREAM_CONNECT_TIMEOUT_SECONDS": "0.3",
        "DOWNSTREAM_TIMEOUT_SECONDS": "2",
        "DOWNSTREAM_RETRIES": "1",
        "SQS_SEND_MAX_RETRIES": "2",
        "IDEMPOTENCY_IN_FLIGHT_MAX_WAIT_SECONDS": "3",
        # Every Lambda environment has credentials; these reach nothing (no SQS endpoint is set).
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


@pytest.fixture
def settings(environ: dict[str, str]) -> Settings:
    return load_settings(environ)


@pytest.fixture
def sqs() -> FakeSqs:
    return FakeSqs()


class FakeClock:
    """`sleep` advances `now`: in-flight waits take no real time and are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bff_deps(settings: Settings, sqs: FakeSqs, clock: FakeClock) -> Iterator[BffDependencies]:
    deps = build_dependencies(settings, sqs_client=sqs)
    deps.placement.sleep = clock.sleep
    deps.placement.clock = clock
    deps.placement.publisher.sender.sleep = lambda _seconds: None
    use_dependencies(deps)
    yield deps
    use_dependencies(None)


@pytest.fixture
def bff(bff_deps: BffDependencies) -> Callable[..., HttpAnswer]:
    """`bff("GET", "/products", token=...)`: the BFF Lambda handler, invoked with a v2 event."""

    def call(method: str, target: str, **kwargs: Any) -> HttpAnswer:
        return call_handler(bff_handler, method, target, **kwargs)

    return call


# --- moto server (integration tests) ----------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A real moto server process (as the local stack runs it: orchestrator.local.moto_sqs); its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.local.moto_sqs", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/moto-api/", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


# --- the payment gateway simulator (a real process) ---------------------------------------------


@pytest.fixture(scope="session")
def gateway_simulator(tmp_path_factory) -> Iterator[SimulatorProcess]:
    """`python -m gateway_simulator`, approving every charge; tests reset its faults themselves."""
    with SimulatorProcess(tmp_path_factory.mktemp("gateway") / "ledger.db", mode="always_succeed") as gateway:
        yield gateway
