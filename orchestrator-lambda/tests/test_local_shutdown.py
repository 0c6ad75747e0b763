"""The local runners stop on SIGTERM without deadlocks and leave nothing behind: the API Gateway
adapter lets the request in flight finish, then ends its execution environments; the
environments end by themselves if the adapter is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from orchestrator.local.stop_signals import StopFlag
from servicekit.testing import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def processes_of_group(pgid: int) -> list[int]:
    """Live (not zombie) members of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def wait_until(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def adapter(environ):
    """The adapter command in a process group of its own, as `make run` starts it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.local.apigw_adapter", "--port", str(port), "--environments", "2"],
        env={**os.environ, **environ, "LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert process.poll() is None, "the adapter exited"
        try:
            return requests.get(f"{base_url}/health", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, 30, "the adapter")
    yield process, base_url
    for pid in processes_of_group(process.pid):
        os.kill(pid, signal.SIGKILL)
    process.wait()


def test_sigterm_to_the_group_lets_the_request_in_flight_finish_then_ends_every_environment(adapter, orders, tokens):
    process, base_url = adapter
    in_flight = threading.Event()
    page = {"data": [], "pagination": {"next_cursor": None, "limit": 20}}

    def slow_products(_request, _match):
        in_flight.set()
        time.sleep(1.5)
        return 200, page

    orders.on("GET", "/products", slow_products)
    answers: list[requests.Response] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            requests.get(f"{base_url}/products", headers={"Authorization": f"Bearer {tokens.customer(1)}"}, timeout=30)
        )
    )
    caller.start()
    assert in_flight.wait(30)
    os.killpg(process.pid, signal.SIGTERM)  # what stack.py sends: the environments get it too
    caller.join(30)
    assert answers and answers[0].status_code == 200, answers and answers[0].text
    assert answers[0].json() == page
    assert process.wait(timeout=30) == 0
    wait_until(lambda: not processes_of_group(process.pid), 10, "every environment to exit")


def test_the_environments_exit_by_themselves_when_the_adapter_is_killed(adapter):
    process, _base_url = adapter
    environments = [pid for pid in processes_of_group(process.pid) if pid != process.pid]
    assert environments  # /health ran in one
    process.kill()  # the adapter alone: nobody tells the environments
    process.wait()
    wait_until(lambda: not processes_of_group(process.pid), 10, "the environments to exit")


def test_a_stop_flag_set_by_a_signal_handler_ends_the_wait():
    flag = StopFlag()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        flag.on_signals(signal.SIGUSR1)
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        assert flag.wait(60) is True
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert StopFlag().wait(0.01) is False
