"""`make run` as a newcomer uses it: scripts/stack.py on SQLite, its banner, the curl example it
prints, and Ctrl-C leaving no process behind."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from e2e_support import ROOT, Bff, wait_for

from gateway_simulator.testing import GatewayControl, new_api_key
from servicekit.testing import ServiceKeySet, free_port, random_key_ring_value

BANNER = "B2B order platform is up"


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid` (pid → command line), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found: dict[int, str] = {}
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        try:
            found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        pending.extend(children.get(child, []))
    return found


def alive(pid: int, cmdline: str) -> bool:
    """Still running (not a zombie) and still the same program."""
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        current = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return state != "Z" and current == cmdline


@pytest.fixture
def make_run(tmp_path):
    ports = {name: free_port() for name in ("BFF_PORT", "CUSTOMERS_PORT", "ORDERS_PORT", "SQS_PORT", "GATEWAY_PORT")}
    env = {
        **os.environ,
        **{name: str(port) for name, port in ports.items()},
        "STACK_VAR_DIR": str(tmp_path / "var"),
        # Not from a developer's .env: SQLite (no database URLs), this run's own secrets.
        "CUSTOMERS_DATABASE_URL": "",
        "ORDERS_DATABASE_URL": "",
        "USER_JWT_KEYS": random_key_ring_value("u1"),
        **ServiceKeySet.generate().dotenv(),
        "DEMO_ADMIN_PASSWORD": secrets.token_urlsafe(12),
        "DEMO_USER_PASSWORD": secrets.token_urlsafe(12),
        "PAYMENT_GATEWAY_API_KEY": new_api_key(),
        "PAYMENT_SIMULATION_MODE": "random",
    }
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "stack.py"), "--quiet"],
        cwd=str(ROOT),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(iter(process.stdout.readline, "")), daemon=True)
    reader.start()
    yield process, output, env
    if process.poll() is None:  # the test failed before its Ctrl-C
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def try_it_block(output: list[str]) -> str:
    text = "".join(output)
    block = text.split("Try it (bash):\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line[2:] for line in block.splitlines())


def test_make_run_on_sqlite_serves_the_main_flow_and_stops_cleanly_on_ctrl_c(make_run, tmp_path):
    process, output, env = make_run
    wait_for(
        lambda: (
            process.poll() is not None
            or any("Try it (bash):" in line for line in output)
            and any(line.startswith("The order is CONFIRMED") for line in output)
        ),
        timeout=90,
        what="the banner",
    )
    assert process.poll() is None, "".join(output)
    text = "".join(output)
    assert BANNER in text
    bff = f"http://127.0.0.1:{env['BFF_PORT']}"
    assert f"BFF (public API)     {bff}" in text
    assert f"user / {env['DEMO_USER_PASSWORD']}" in text
    assert (tmp_path / "var" / "customers.db").exists() and (tmp_path / "var" / "orders.db").exists()
    assert requests.get(f"{bff}/openapi.json", timeout=10).json()["paths"]["/checkout"]
    assert "swagger-ui" in requests.get(f"{bff}/docs", timeout=10).text

    # The curl example, run exactly as printed.
    if shutil.which("curl") and shutil.which("bash"):
        script = try_it_block(output)
        result = subprocess.run(["bash", "-eo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr + result.stdout
        order_id = int(re.findall(r'\{"id":(\d+),"customer_id"', result.stdout)[-1])
    else:  # pragma: no cover - the same calls without curl
        user = Bff.login(bff, "user", env["DEMO_USER_PASSWORD"])
        order_id = user.place([{"product_id": 1, "qty": 2}]).json()["data"]["order"]["id"]

    user = Bff.login(bff, "user", env["DEMO_USER_PASSWORD"])
    settled = user.wait_for_order(order_id, {"PAID", "CANCELED"}, timeout=30)
    assert settled["payment_status"] in {"SUCCEEDED", "FAILED"}
    if settled["status"] == "CANCELED":
        assert settled["cancel_reason"] == "payment_failed"
    gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
    assert f"payment gateway      {gateway}" in text and f"{gateway}/v1/charges?order_id=$ORDER" in text
    assert (tmp_path / "var" / "gateway-ledger.db").exists()
    (charge,) = GatewayControl(gateway, env["PAYMENT_GATEWAY_API_KEY"]).charges(order_id)
    assert charge["outcome"] == ("succeeded" if settled["status"] == "PAID" else "failed")

    children = descendants(process.pid)
    assert len(children) >= 9, children  # moto, gateway, 2 gunicorn masters + workers, adapter + env, poller, sweeper
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, "".join(output)
    assert time.monotonic() - started < 45
    wait_for(
        lambda: not [pid for pid, cmd in children.items() if alive(pid, cmd)],
        timeout=10,
        what="every child process to exit",
    )
    assert "stopped: every process has exited" in "".join(output)


def test_the_banner_never_shows_a_database_password():
    from stack import without_password

    url = "mysql+pymysql://customers_app:s3cr%40t@127.0.0.1:3306/customers_db?charset=utf8mb4"
    assert without_password(url) == "mysql+pymysql://customers_app:***@127.0.0.1:3306/customers_db?charset=utf8mb4"
    assert without_password("sqlite:////work/var/orders.db") == "sqlite:////work/var/orders.db"
