from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from gateway_simulator.testing import SimulatorProcess


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[SimulatorProcess]:
    """One simulator process per test module (approves every charge); faults reset per test."""
    with SimulatorProcess(tmp_path_factory.mktemp("gateway") / "ledger.db", mode="always_succeed") as process:
        yield process


@pytest.fixture(autouse=True)
def no_faults(request) -> Iterator[None]:
    if "gateway" in request.fixturenames:
        request.getfixturevalue("gateway").set_faults()
    yield


@pytest.fixture
def order_id() -> int:
    return random.randrange(10**6, 10**12)


def new_key() -> str:
    return f"key-{uuid.uuid4().hex}"


def charge(
    gateway: SimulatorProcess,
    key: str | None,
    order_id: int,
    *,
    amount: int | str = 500,
    timeout: float = 10,
    api_key: str | None = None,
    **extra: Any,
) -> requests.Response:
    """POST /v1/charges the way a Stripe client sends it (form-encoded)."""
    headers = {"Authorization": f"Bearer {api_key or gateway.api_key}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    form = {"amount": str(amount), "currency": "usd", "metadata[order_id]": str(order_id), **extra}
    return requests.post(f"{gateway.base_url}/v1/charges", data=form, headers=headers, timeout=timeout)
