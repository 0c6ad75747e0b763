"""The simulator as a real process for tests, and a small client of its ledger and fault controls.

    with SimulatorProcess(tmp_path / "ledger.db", mode="always_succeed") as gateway:
        gateway.set_faults(lose_answer_every_n=3)
        ...
        assert len(gateway.charges(order_id=7)) == 1

Used by the simulator's own tests, the payments Lambda's HTTP gateway tests and the e2e suite.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_api_key() -> str:
    return f"sk_test_{secrets.token_urlsafe(24)}"


class GatewayControl:
    """The ledger and the fault controls of a running simulator, over HTTP."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def charges(self, order_id: int) -> list[dict[str, Any]]:
        """The ledger's entries for one order: one per charge actually made."""
        answer = requests.get(
            f"{self.base_url}/v1/charges", params={"order_id": order_id}, headers=self.headers, timeout=self.timeout
        )
        answer.raise_for_status()
        return answer.json()["data"]

    def all_charges(self) -> list[dict[str, Any]]:
        """Every entry of the ledger, oldest first (follows the pages)."""
        entries: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 100}
        while True:
            answer = requests.get(
                f"{self.base_url}/v1/charges", params=params, headers=self.headers, timeout=self.timeout
            )
            answer.raise_for_status()
            body = answer.json()
            entries.extend(body["data"])
            if not body["has_more"]:
                return list(reversed(entries))
            params["starting_after"] = body["data"][-1]["id"]

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the injected faults (those not named are off) and reset their counters."""
        answer = requests.post(
            f"{self.base_url}/v1/simulator/faults", json=faults, headers=self.headers, timeout=self.timeout
        )
        answer.raise_for_status()
        return answer.json()

    def faults(self) -> dict[str, Any]:
        answer = requests.get(f"{self.base_url}/v1/simulator/faults", headers=self.headers, timeout=self.timeout)
        answer.raise_for_status()
        return answer.json()


class SimulatorProcess(GatewayControl):
    """`python -m gateway_simulator` on a free port with its own key and ledger file."""

    def __init__(
        self,
        ledger_path: Path,
        *,
        mode: str = "always_succeed",
        api_key: str | None = None,
        port: int | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        super().__init__(f"http://127.0.0.1:{self.port}", api_key or new_api_key())
        self.ledger_path = Path(ledger_path)
        self.log_path = log_path or self.ledger_path.with_suffix(".log")
        self.env = {
            **os.environ,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_LEDGER_PATH": str(self.ledger_path),
            "PAYMENT_GATEWAY_API_KEY": self.api_key,
            "PAYMENT_SIMULATION_MODE": mode,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None

    def start(self, env: Mapping[str, str] | None = None, timeout: float = 30) -> SimulatorProcess:
        if env:
            self.env = {**self.env, **env}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway_simulator"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the gateway simulator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the gateway simulator was not healthy within {timeout}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL: a crash) and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, env: Mapping[str, str] | None = None, *, kill: bool = False) -> SimulatorProcess:
        self.stop(kill=kill)
        return self.start(env)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self, count: int, match: Mapping[str, Any], timeout: float = 10) -> list[dict[str, Any]]:
        """The JSON log records whose fields include `match`, once `count` of them are there.

        The server logs a request after its answer is written, so a client can read the answer
        before the line is in the file."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            lines = text.split("\n")[:-1]  # the last piece is a line still being written, or empty
            records = [json.loads(line) for line in lines if line.startswith("{")]
            found = [r for r in records if all(r.get(k) == v for k, v in match.items())]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
