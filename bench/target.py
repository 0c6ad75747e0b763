"""The stack under test: the one already answering on the bench ports, or one started here
with scripts/stack.py (the runner behind `make run`) on the bench's own databases."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from servicekit.auth import KeyRing, ServiceSigningKeys, private_keys_variable
from servicekit.testing import ServiceKeySet, random_key_ring_value

from . import ROOT, log
from .databases import create_bench_databases

sys.path.insert(0, str(ROOT / "scripts"))

from stack import Stack, StackConfig, StopRequest, port_in_use, read_env_file

HOST = "127.0.0.1"
SERVE_ENV_FILE = ROOT / "var" / "bench-stack.env"
BFF_KEYS = private_keys_variable("orchestrator")


@dataclass
class Target:
    """Where the stack answers, and what the bench needs to talk to it and check it."""

    host: str
    bff_port: int
    customers_port: int
    orders_port: int
    user_ring: KeyRing
    # The BFF's own service identity: the bench calls orders-service as the BFF does.
    bff_keys: ServiceSigningKeys
    orders_database_url: str
    started: Stack | None = None

    def url(self, name: str) -> str:
        port = {"bff": self.bff_port, "customers": self.customers_port, "orders": self.orders_port}[name]
        return f"http://{self.host}:{port}"

    def log_path(self, process: str) -> Path | None:
        """The log file of one process of a stack started here."""
        return self.started.config.log_dir / f"{process}.log" if self.started else None

    def process_groups(self) -> dict[str, int]:
        """Process name -> process group id, for the CPU meter: the stack started here, or one
        started by `--serve` (BENCH_PROCESS_GROUPS from its settings file)."""
        if self.started:
            return {name: p.process.pid for name, p in self.started.processes.items() if p.process is not None}
        groups = {}
        for entry in filter(None, os.environ.get("BENCH_PROCESS_GROUPS", "").split(",")):
            name, _, pgid = entry.partition(":")
            groups[name] = int(pgid)
        return groups


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def bench_ports(base: int) -> dict[str, int]:
    return {"bff": base, "customers": base + 1, "orders": base + 2, "sqs": base + 1566, "gateway": base + 3}


def busy_ports(base: int) -> list[int]:
    return [port for port in bench_ports(base).values() if port_in_use(port)]


def prepare_target(args: argparse.Namespace) -> Target:
    ports = bench_ports(args.base_port)
    if not args.fresh_stack and all(_answers(f"http://{HOST}:{ports[n]}") for n in ("bff", "customers", "orders")):
        return _running_target(ports)
    return _start_target(args, ports)


def _running_target(ports: dict[str, int]) -> Target:
    env = {**read_env_file(ROOT / ".env"), **os.environ}
    missing = [n for n in ("USER_JWT_KEYS", BFF_KEYS, "ORDERS_DATABASE_URL") if not env.get(n)]
    if missing:
        raise SystemExit(
            f"a stack answers on ports {ports['bff']}-{ports['orders']} but {', '.join(missing)} is not set "
            "(env or .env): stop it, or pass --fresh-stack with another --base-port"
        )
    log(f"using the stack already running on ports {ports['bff']}-{ports['orders']}")
    return Target(
        HOST,
        ports["bff"],
        ports["customers"],
        ports["orders"],
        KeyRing.parse(env["USER_JWT_KEYS"]),
        ServiceSigningKeys.parse(env[BFF_KEYS]),
        env["ORDERS_DATABASE_URL"],
    )


def _start_target(args: argparse.Namespace, ports: dict[str, int]) -> Target:
    busy = busy_ports(ports["bff"])
    if busy:
        raise SystemExit(f"port(s) {', '.join(map(str, busy))} already in use: pass another --base-port")
    user_ring, service_keys = random_key_ring_value("bench-user"), ServiceKeySet.generate()
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(
        APP_ENV="production",
        LOG_LEVEL="INFO",
        USER_JWT_KEYS=user_ring,
        **service_keys.dotenv(),
        PAYMENT_SIMULATION_MODE="always_succeed",
        PAYMENT_GATEWAY_API_KEY=f"sk_test_{secrets.token_urlsafe(24)}",
        # The confirm scenario leaves thousands of confirmed orders without a payment event on
        # purpose; keep the sweeper from re-publishing them while we measure.
        PAYMENT_GRACE_SECONDS="3600",
    )
    if args.worker_class:
        env["GUNICORN_WORKER_CLASS"] = args.worker_class
    env.setdefault("AWS_ACCESS_KEY_ID", "bench")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    log_dir = Path(args.log_dir) if args.log_dir else ROOT / "var" / "bench-log"
    urls = create_bench_databases(args.db_prefix)
    config = StackConfig(
        env=env,
        customers_database_url=urls["customers"],
        orders_database_url=urls["orders"],
        log_dir=log_dir,
        bff_port=ports["bff"],
        customers_port=ports["customers"],
        orders_port=ports["orders"],
        sqs_port=ports["sqs"],
        gateway_port=ports["gateway"],
        gateway_ledger_path=log_dir / "gateway-ledger.db",
        web_workers=args.workers,
        web_threads=args.threads,
        sweeper_interval_seconds=30.0,
        echo=False,
        die_with_runner=not args.keep_running,  # a stack left running must outlive this process
    )
    stack = Stack(config)
    # Fresh databases start order ids at 1 again: the gateway's ledger must start empty too.
    for old in [*log_dir.glob("*.log"), *log_dir.glob("gateway-ledger.db*")]:
        old.unlink()
    log(
        f"starting the stack on ports {ports['bff']}-{ports['orders']} (SQS {ports['sqs']}), databases "
        f"{args.db_prefix}_*_db, gunicorn {args.workers} workers x {args.worker_class or 'default class'} "
        f"({args.threads} threads), logs in {log_dir}"
    )
    started = time.monotonic()
    stack.start(seed=False)
    log(f"stack up in {time.monotonic() - started:.1f}s")
    return Target(
        HOST,
        ports["bff"],
        ports["customers"],
        ports["orders"],
        KeyRing.parse(user_ring),
        service_keys.signing("orchestrator"),
        urls["orders"],
        started=stack,
    )


def serve(target: Target) -> int:
    """Keep a bench stack up for profiling; `set -a; . var/bench-stack.env` lets a second run reuse it."""
    assert target.started is not None
    config = target.started.config
    SERVE_ENV_FILE.write_text(
        f"USER_JWT_KEYS={config.env['USER_JWT_KEYS']}\n"
        f"{BFF_KEYS}={config.env[BFF_KEYS]}\n"
        f"ORDERS_DATABASE_URL={target.orders_database_url}\n"
        f"CUSTOMERS_DATABASE_URL={config.customers_database_url}\n"
        "BENCH_PROCESS_GROUPS=" + ",".join(f"{name}:{pgid}" for name, pgid in target.process_groups().items()) + "\n"
    )
    log(f"stack up; settings in {SERVE_ENV_FILE}; Ctrl-C stops it")
    # Not an Event: Event.set() in a signal handler can deadlock with the main thread in wait().
    stop = StopRequest()
    signal.signal(signal.SIGTERM, stop.signal)
    signal.signal(signal.SIGINT, stop.signal)
    try:
        while not stop.is_set():
            time.sleep(0.2)
    finally:
        target.started.stop()
    return 0
