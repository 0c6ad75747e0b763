#!/usr/bin/env python3
"""The whole platform as local processes on loopback: what `make run` starts.

  moto SQS server :4566 → queues `payments` + `payments-dlq` (redrive)
  migrations + demo seed for both databases (SQLite files under var/ unless *_DATABASE_URL is set)
  customers-service :3001, orders-service :3002 (gunicorn)
  BFF :3000 (API Gateway HTTP API adapter → orchestrator Lambda handler)
  payments poller (SQS → payments Lambda, like an event source mapping), sweeper timer

`Stack` is also what the end-to-end tests drive: they start it on MariaDB, stop and restart
single processes, and read each process's JSON log file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m", "\033[37m"]
RESET = "\033[0m"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` starts a comment only at the start or after whitespace."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, value = stripped.partition("=")
        values[name.strip()] = value.split(" #")[0].strip()
    return values


@dataclass
class ManagedProcess:
    """One child process whose output goes to a log file (and optionally the terminal)."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    echo: bool = False
    colour: str = ""
    health_url: str | None = None
    process: subprocess.Popen | None = field(default=None, init=False)
    _pump: threading.Thread | None = field(default=None, init=False)

    def start(self, timeout: float = 40.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.argv,
            env=dict(self.env),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only us; we stop children in order
        )
        self._pump = threading.Thread(target=self._copy_output, name=f"log-{self.name}", daemon=True)
        self._pump.start()
        if self.health_url:
            self.wait_healthy(timeout)

    def _copy_output(self) -> None:
        assert self.process and self.process.stdout
        with open(self.log_path, "ab", buffering=0) as log:
            for line in self.process.stdout:
                log.write(line)
                if self.echo:
                    sys.stdout.write(f"{self.colour}{self.name:>18} |{RESET} {line.decode(errors='replace')}")
                    sys.stdout.flush()

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if requests.get(self.health_url, timeout=1).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy within {timeout}s; see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        if not self.running:
            return
        assert self.process
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self._pump:
            self._pump.join(timeout=5)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []


@dataclass
class StackConfig:
    env: dict[str, str]
    customers_database_url: str
    orders_database_url: str
    log_dir: Path
    bff_port: int = 3000
    customers_port: int = 3001
    orders_port: int = 3002
    sqs_port: int = 4566
    web_workers: int = 2
    web_threads: int = 4
    sweeper_interval_seconds: float = 30.0
    poller_wait_seconds: int = 1
    echo: bool = False
    # Lets tests put a fault-injecting proxy between the BFF/sweeper and SQS.
    sqs_endpoint_for_publishers: str | None = None

    @property
    def sqs_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sqs_port}"

    @property
    def urls(self) -> dict[str, str]:
        return {
            "bff": f"http://127.0.0.1:{self.bff_port}",
            "customers": f"http://127.0.0.1:{self.customers_port}",
            "orders": f"http://127.0.0.1:{self.orders_port}",
            "sqs": self.sqs_endpoint,
        }


def default_config(echo: bool = True) -> StackConfig:
    """Configuration for `make run`: .env plus the environment (the environment wins)."""
    env = {**read_env_file(ROOT / ".env"), **os.environ}
    var = ROOT / "var"
    var.mkdir(exist_ok=True)
    return StackConfig(
        env=env,
        customers_database_url=env.get("CUSTOMERS_DATABASE_URL") or f"sqlite:///{var / 'customers.db'}",
        orders_database_url=env.get("ORDERS_DATABASE_URL") or f"sqlite:///{var / 'orders.db'}",
        log_dir=var / "log",
        bff_port=int(env.get("BFF_PORT", "3000")),
        customers_port=int(env.get("CUSTOMERS_PORT", "3001")),
        orders_port=int(env.get("ORDERS_PORT", "3002")),
        sqs_port=int(env.get("SQS_PORT", "4566")),
        sweeper_interval_seconds=float(env.get("SWEEPER_INTERVAL_SECONDS", "30")),
        echo=echo,
    )


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, ManagedProcess] = {}
        self.queue_urls: dict[str, str] = {}

    # --- environment per process ------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {k: v for k, v in self.config.env.items() if not k.endswith("DATABASE_URL")}
        env.setdefault("APP_ENV", "development")
        env.setdefault("AWS_REGION", "us-east-1")
        env.setdefault("AWS_DEFAULT_REGION", env["AWS_REGION"])
        # moto accepts any credentials; set dummies so boto3 never looks for real ones.
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def service_env(self, name: str) -> dict[str, str]:
        urls = self.config.urls
        env = self._base_env()
        env["CUSTOMERS_API_URL"] = urls["customers"]
        env["ORDERS_API_URL"] = urls["orders"]
        if name == "customers-service":
            env.update(DATABASE_URL=self.config.customers_database_url, PORT=str(self.config.customers_port))
        elif name == "orders-service":
            env.update(DATABASE_URL=self.config.orders_database_url, PORT=str(self.config.orders_port))
        else:
            publishers = name in ("bff", "sweeper")
            endpoint = self.config.sqs_endpoint_for_publishers if publishers else None
            env["AWS_ENDPOINT_URL_SQS"] = endpoint or self.config.sqs_endpoint
            env["PAYMENTS_QUEUE_URL"] = self.queue_urls.get("payments", "")
            env["PAYMENTS_DLQ_URL"] = self.queue_urls.get("payments-dlq", "")
        env["SERVICE_NAME"] = name
        env["WEB_CONCURRENCY"] = str(self.config.web_workers)
        env["GUNICORN_THREADS"] = str(self.config.web_threads)
        env["HOST"] = "127.0.0.1"
        return env

    def _process(self, name: str, argv: list[str], health_url: str | None = None) -> ManagedProcess:
        colour = COLOURS[len(self.processes) % len(COLOURS)]
        process = ManagedProcess(
            name=name,
            argv=argv,
            env=self.service_env(name),
            log_path=self.config.log_dir / f"{name}.log",
            echo=self.config.echo,
            colour=colour,
            health_url=health_url,
        )
        self.processes[name] = process
        return process

    # --- steps ------------------------------------------------------------------------------

    def _run_once(self, name: str, argv: list[str]) -> None:
        result = subprocess.run(argv, env=self.service_env(name), cwd=str(ROOT), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{result.stdout}\n{result.stderr}")

    def prepare_databases(self, seed: bool = True) -> None:
        for service, package in (("customers-service", "customers_service"), ("orders-service", "orders_service")):
            self._run_once(service, [PYTHON, "-m", f"{package}.cli", "migrate"])
            if seed:
                self._run_once(service, [PYTHON, "-m", f"{package}.cli", "seed-demo"])

    def start_sqs(self) -> None:
        sqs = self._process(
            "sqs",
            [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.config.sqs_port)],
            health_url=f"{self.config.sqs_endpoint}/moto-api/",
        )
        sqs.start()
        from orchestrator.local.queues import create_payment_queues

        self.queue_urls = create_payment_queues(endpoint_url=self.config.sqs_endpoint)

    def start_web_service(self, name: str) -> None:
        package = name.replace("-", "_")
        port = self.config.customers_port if name == "customers-service" else self.config.orders_port
        self._process(
            name,
            [PYTHON, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf", f"{package}.wsgi:app"],
            health_url=f"http://127.0.0.1:{port}/health",
        ).start()

    def start_bff(self) -> None:
        self._process(
            "bff",
            [
                PYTHON,
                "-m",
                "orchestrator.local.apigw_adapter",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.config.bff_port),
            ],
            health_url=f"{self.config.urls['bff']}/health",
        ).start()

    def start_payments_poller(self) -> None:
        self._process(
            "payments",
            [PYTHON, "-m", "orchestrator.local.sqs_poller", "--wait-seconds", str(self.config.poller_wait_seconds)],
        ).start()

    def start_sweeper(self) -> None:
        self._process(
            "sweeper",
            [PYTHON, "-m", "orchestrator.local.sweeper_timer", "--interval", str(self.config.sweeper_interval_seconds)],
        ).start()

    def start(self, *, seed: bool = True) -> None:
        try:
            self.start_sqs()
            self.prepare_databases(seed=seed)
            self.start_web_service("customers-service")
            self.start_web_service("orders-service")
            self.start_bff()
            self.start_payments_poller()
            self.start_sweeper()
        except BaseException:
            self.stop()
            raise

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.stop()
        process.start()

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()


def print_banner(stack: Stack) -> None:
    env = stack.config.env
    urls = stack.config.urls
    admin_password = env.get("DEMO_ADMIN_PASSWORD", "<see .env>")
    user_password = env.get("DEMO_USER_PASSWORD", "<see .env>")
    print(
        f"""
B2B order platform is up (Ctrl-C stops everything).

  BFF (public API)     {urls["bff"]}
  customers-service    {urls["customers"]}   docs: {urls["customers"]}/docs
  orders-service       {urls["orders"]}   docs: {urls["orders"]}/docs
  SQS (moto)           {urls["sqs"]}   queues: payments, payments-dlq
  databases            {stack.config.customers_database_url}
                       {stack.config.orders_database_url}
  logs                 {stack.config.log_dir}/<process>.log

Demo logins: admin / {admin_password}    user / {user_password}  (customer "Demo Buyer Co")

Try it:
  TOKEN=$(curl -s {urls["bff"]}/auth/login -H 'Content-Type: application/json' \\
    -d '{{"username":"user","password":"{user_password}"}}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {urls["bff"]}/products -H "Authorization: Bearer $TOKEN"
  curl -s -X POST {urls["bff"]}/orchestrator/create-and-confirm-order \\
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -H "Idempotency-Key: demo-$(date +%s%N)" \\
    -d '{{"customer_id": 1, "items": [{{"product_id": 1, "qty": 2}}]}}'
  curl -s {urls["bff"]}/orders -H "Authorization: Bearer $TOKEN"     # PENDING → PAID or CANCELED within seconds
""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the whole platform locally.")
    parser.add_argument("--quiet", action="store_true", help="do not echo process logs to the terminal")
    args = parser.parse_args(argv)
    config = default_config(echo=not args.quiet)
    for name in ("USER_JWT_KEYS", "SERVICE_JWT_KEYS", "DEMO_ADMIN_PASSWORD", "DEMO_USER_PASSWORD"):
        if not config.env.get(name):
            print(f"{name} is not set: run `make env` (creates .env with random secrets)", file=sys.stderr)
            return 2
    stack = Stack(config)
    stopping = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    stack.start()
    print_banner(stack)
    try:
        while not stopping.is_set():
            dead = [p.name for p in stack.processes.values() if not p.running]
            if dead:
                print(f"process(es) exited: {', '.join(dead)}; stopping the stack", file=sys.stderr)
                return_code = 1
                break
            stopping.wait(1.0)
        else:
            return_code = 0
    finally:
        print("\nstopping…", flush=True)
        stack.stop()
    return return_code


if __name__ == "__main__":
    sys.exit(main())
