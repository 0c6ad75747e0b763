"""Load drivers: wrk with bench/wrk/scenario.lua, or the asyncio client when wrk is not there;
and the progress line while one runs."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from . import BENCH_DIR
from .cpu import own_cpu_seconds
from .fixtures import Fixtures
from .http_client import RequestFactory, closed_loop
from .report import latency_summary

WRK_SCRIPT = BENCH_DIR / "wrk" / "scenario.lua"


class Progress:
    """One line while a scenario runs: elapsed time and the request rate seen in a log file."""

    def __init__(self, name: str, duration: float, log_path: Path | None) -> None:
        self.name, self.duration, self.log_path = name, duration, log_path
        self.stop = threading.Event()
        self.tty = sys.stdout.isatty()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()

    def _run(self) -> None:
        started = time.monotonic()
        handle = None
        if self.log_path and self.log_path.exists():
            handle = open(self.log_path, "rb")  # noqa: SIM115 - closed below
            handle.seek(0, os.SEEK_END)
        last_t, shown = started, started
        try:
            while not self.stop.wait(1.0):
                now = time.monotonic()
                rate_text = ""
                if handle:
                    lines = handle.read().count(b"\n")
                    rate_text = f"~{lines / (now - last_t):,.0f} req/s (log lines)"
                last_t = now
                line = (
                    f"  [{self.name}] {now - started:5.1f}/{self.duration:.0f}s {rate_text}  "
                    f"load {os.getloadavg()[0]:.2f}"
                )
                if self.tty:
                    sys.stdout.write("\r\033[K" + line)
                    sys.stdout.flush()
                elif now - shown >= 5:
                    print(line, flush=True)
                    shown = now
        finally:
            if handle:
                handle.close()


def run_wrk(
    wrk: str, url: str, mode: str, env_extra: dict[str, str], clients: int, duration: float, threads: int = 2
) -> tuple[dict[str, Any], float]:
    """Run wrk; its parsed BENCH_RESULT and the CPU cores it used on average."""
    threads = max(1, min(threads, clients))
    env = {**os.environ, **env_extra, "BENCH_MODE": mode, "BENCH_THREADS": str(threads)}
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(WRK_SCRIPT),
        url,
    ]
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.monotonic() - started
        out.seek(0)
        output = out.read().decode(errors="replace")
    match = re.search(r"^BENCH_RESULT (\{.*\})$", output, re.MULTILINE)
    if process.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    cpu = (usage.ru_utime + usage.ru_stime) / elapsed
    return json.loads(match.group(1)), cpu


def python_load(
    host: str, port: int, clients: int, duration: float, make_request: RequestFactory
) -> tuple[dict[str, Any], float]:
    """The asyncio driver, shaped like wrk's result."""
    cpu_before = own_cpu_seconds()
    started = time.perf_counter()
    latencies, statuses, socket_errors = asyncio.run(closed_loop(host, port, clients, duration, make_request))
    elapsed = time.perf_counter() - started
    cpu = (own_cpu_seconds() - cpu_before) / elapsed
    summary = latency_summary(latencies)
    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "latency_us": {k: v * 1000 for k, v in summary.items()},
        "statuses": dict(statuses),
        "socket_errors": {"connect": 0, "read": socket_errors, "write": 0, "timeout": 0},
        "replayed": None,
    }, cpu


def python_request_factory(mode: str, fixtures: Fixtures, clients: int) -> RequestFactory:
    """The requests of a throughput scenario, as wrk's scenario.lua makes them."""
    rng = random.Random(7)
    token = fixtures.admin_token if mode == "bff" else fixtures.orders_token
    base = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lo_c, _ = fixtures.confirm_orders
    lo_r, hi_r = fixtures.replay_orders

    def make(index: int, sequence: int) -> tuple[str, str, dict[str, str], bytes]:
        headers = dict(base)
        if mode in ("create", "bff"):
            headers["Idempotency-Key"] = f"{fixtures.run_id}-py-{mode}-{index}-{sequence}"
            body = orjson.dumps(
                {
                    "customer_id": rng.choice(fixtures.customers),
                    "items": [{"product_id": rng.choice(fixtures.products), "qty": 1}],
                }
            )
            path = "/orders" if mode == "create" else "/orchestrator/create-and-confirm-order"
            return "POST", path, headers, body
        if mode == "confirm":
            order_id = lo_c + index + (sequence - 1) * clients
            headers["Idempotency-Key"] = f"{fixtures.run_id}-py-confirm-{index}-{sequence}"
            return "POST", f"/orders/{order_id}/confirm", headers, b""
        span = hi_r - lo_r + 1
        order_id = lo_r + (index + sequence * clients) % span
        headers["Idempotency-Key"] = f"{fixtures.run_id}-replay-{order_id}"
        return "POST", f"/orders/{order_id}/confirm", headers, b""

    return make
