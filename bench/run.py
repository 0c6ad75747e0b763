#!/usr/bin/env python3
"""`make bench`: throughput and latency of the order platform, with correctness checks.

    .venv/bin/python bench/run.py [--duration 15] [--clients 20] [--scenarios create,confirm,...]

Uses the stack already answering on the bench ports (BFF, customers-service, orders-service;
keys and ORDERS_DATABASE_URL from the environment or .env), otherwise starts one itself on
MariaDB/MySQL: a fresh `<prefix>_customers_db`/`<prefix>_orders_db` pair with a user each,
APP_ENV=production, gunicorn, the BFF behind the API Gateway adapter, SQS (moto), the payments
poller and the sweeper, and stops it (and drops nothing: the databases stay for inspection until
the next run recreates them).

Load: wrk (Debian package; installed with apt-get when missing and we are root) with
bench/wrk/scenario.lua, which sends a fresh Idempotency-Key per request and counts statuses.
The hot-SKU scenario, and every scenario when wrk is unavailable (`--driver python`), uses the
small asyncio HTTP/1.1 keep-alive client below. The load generator's CPU time is measured and
reported, as is the CPU time of every process of the stack and of the database server.

Scenarios: create (POST /orders, one item, customer validated via customers-service), confirm
(POST /orders/{id}/confirm with fresh keys on pre-created CREATED orders), replay (confirm with a
stored key), bff (POST /orchestrator/create-and-confirm-order through the local API Gateway
adapter), hot-sku (rounds of N concurrent buyers of one product with stock S).

Checks (SPEC §6) after every writing scenario: no product below zero stock, and for every product
stock_received = stock + qty held by orders that are not CANCELED; hot-sku: exactly S buyers per
round succeed, the rest are 409 insufficient_stock, no 5xx.

Output: a progress line while a scenario runs, a table at the end, the raw numbers as JSON in
bench/results/ (bench-<timestamp>.json and latest.json). Exit status 1 if a check failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from sqlalchemy import bindparam, create_engine, text
from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk" / "scenario.lua"
sys.path.insert(0, str(ROOT / "scripts"))

from stack import Stack, StackConfig, StopRequest, read_env_file  # noqa: E402

from servicekit.auth import KeyRing, mint_service_token, mint_user_token  # noqa: E402

SCENARIOS = ("create", "confirm", "replay", "bff", "hot-sku")
WRITES = ("create", "confirm", "bff", "hot-sku")
# Targets: a Node/Express + mysql2 peer on the same kind of box, plus 20% (see bench/README.md).
NODE_PEER = {
    "create": {"rps": 618, "p99_ms": 54},
    "confirm": {"rps": 1088, "p99_ms": 28},
    "replay": {"rps": 3929, "p99_ms": None},
}
TARGET_FACTOR = 1.2
ADMIN_URL = os.environ.get("BENCH_MYSQL_ADMIN_URL") or os.environ.get(
    "TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/"
)


def log(message: str) -> None:
    print(message, flush=True)


# --- CPU accounting ---------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    # utime, stime are fields 14 and 15 (1-based); after "comm)" the list starts at field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


class CpuMeter:
    """CPU seconds used by process groups we started, and by the database server."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups  # name -> process group id

    def sample(self) -> dict[str, float]:
        totals: dict[str, float] = {name: 0.0 for name in self.groups}
        totals["database"] = 0.0
        by_pgid = {pgid: name for name, pgid in self.groups.items()}
        for pid in _pids():
            name = by_pgid.get(_pgid(pid) or -1)
            if name is None and _comm(pid) in ("mariadbd", "mysqld"):
                name = "database"
            if name is not None:
                totals[name] += _proc_cpu_seconds(pid)
        return totals

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
        """Cores used on average (1.0 = one core busy the whole time)."""
        return {name: round((after.get(name, 0.0) - before.get(name, 0.0)) / seconds, 3) for name in after}


# --- results ----------------------------------------------------------------------------------


@dataclass
class ScenarioResult:
    name: str
    description: str
    driver: str
    clients: int
    duration_s: float
    requests: int
    rps: float
    latency_ms: dict[str, float]
    statuses: dict[str, int]
    socket_errors: dict[str, int] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    cpu_cores: dict[str, float] = field(default_factory=dict)
    load_generator_cpu_cores: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def errors_5xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("5"))

    @property
    def passed(self) -> bool:
        return all(check.get("ok", True) for check in self.checks.values())


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    values = sorted(latencies_s)
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 50), 2),
        "p90": round(percentile(ms, 90), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "max": round(ms[-1], 2) if ms else 0.0,
        "mean": round(sum(ms) / len(ms), 2) if ms else 0.0,
    }


# --- a small asyncio HTTP/1.1 client (hot-sku, and the fallback driver) -------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (ours all do)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            response_headers: dict[str, str] = {}
            while True:
                line = await self.reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                name, _, value = line.decode("latin-1").partition(":")
                response_headers[name.strip().lower()] = value.strip()
            length = int(response_headers.get("content-length", "0"))
            payload = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, payload


RequestFactory = Callable[[int, int], tuple[str, str, dict[str, str], bytes]]


async def _closed_loop(
    host: str, port: int, clients: int, duration: float, make_request: RequestFactory, progress: Callable[[int], None]
) -> tuple[list[float], Counter, int]:
    latencies: list[float] = []
    statuses: Counter = Counter()
    socket_errors = 0
    deadline = time.perf_counter() + duration
    done = 0

    async def client(index: int) -> None:
        nonlocal socket_errors, done
        connection = HttpConnection(host, port)
        sequence = 0
        try:
            while time.perf_counter() < deadline:
                sequence += 1
                method, path, headers, body = make_request(index, sequence)
                started = time.perf_counter()
                try:
                    status, _, _ = await connection.request(method, path, headers, body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    socket_errors += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[str(status)] += 1
                done += 1
                if done % 200 == 0:
                    progress(done)
        finally:
            await connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, statuses, socket_errors


# --- the stack --------------------------------------------------------------------------------


@dataclass
class Target:
    """Where the stack answers, and what the bench needs to talk to it and check it."""

    host: str
    bff_port: int
    customers_port: int
    orders_port: int
    user_ring: KeyRing
    service_ring: KeyRing
    orders_database_url: str
    started: Stack | None = None
    databases: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        port = {"bff": self.bff_port, "customers": self.customers_port, "orders": self.orders_port}[name]
        return f"http://{self.host}:{port}"


def _answers(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def create_bench_databases(prefix: str) -> dict[str, str]:
    """Fresh `<prefix>_customers_db` and `<prefix>_orders_db`, each with its own user."""
    admin = urlsplit(ADMIN_URL)
    host, port = admin.hostname or "127.0.0.1", admin.port or 3306
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    urls: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            for service in ("customers", "orders"):
                database, user = f"{prefix}_{service}_db", f"{prefix}_{service}"
                password = secrets.token_urlsafe(18)
                conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
                conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
                for client_host in ("127.0.0.1", "localhost"):
                    conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{client_host}'"))
                    conn.execute(text(f"CREATE USER '{user}'@'{client_host}' IDENTIFIED BY :pw"), {"pw": password})
                    conn.execute(text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{client_host}'"))
                urls[service] = f"mysql+pymysql://{user}:{password}@{host}:{port}/{database}?charset=utf8mb4"
    finally:
        engine.dispose()
    return urls


def drop_bench_databases(prefix: str) -> None:
    engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for service in ("customers", "orders"):
                conn.execute(text(f"DROP DATABASE IF EXISTS `{prefix}_{service}_db`"))
                for client_host in ("127.0.0.1", "localhost"):
                    conn.execute(text(f"DROP USER IF EXISTS '{prefix}_{service}'@'{client_host}'"))
    finally:
        engine.dispose()


def _ring_value(kid: str) -> str:
    return f"{kid}:{secrets.token_urlsafe(40)}"


def prepare_target(args: argparse.Namespace) -> Target:
    base = args.base_port
    ports = {"bff": base, "customers": base + 1, "orders": base + 2, "sqs": base + 1566, "gateway": base + 3}
    host = "127.0.0.1"
    if not args.fresh_stack and all(_answers(f"http://{host}:{ports[n]}") for n in ("bff", "customers", "orders")):
        env = {**read_env_file(ROOT / ".env"), **os.environ}
        missing = [n for n in ("USER_JWT_KEYS", "SERVICE_JWT_KEYS", "ORDERS_DATABASE_URL") if not env.get(n)]
        if missing:
            raise SystemExit(
                f"a stack answers on ports {base}-{base + 2} but {', '.join(missing)} is not set (env or .env): "
                "stop it, or pass --fresh-stack with another --base-port"
            )
        log(f"using the stack already running on ports {base}-{base + 2}")
        return Target(
            host,
            ports["bff"],
            ports["customers"],
            ports["orders"],
            KeyRing.parse(env["USER_JWT_KEYS"]),
            KeyRing.parse(env["SERVICE_JWT_KEYS"]),
            env["ORDERS_DATABASE_URL"],
        )
    for name, port in ports.items():
        if _answers(f"http://{host}:{port}") or _port_busy(host, port):
            raise SystemExit(f"port {port} ({name}) is taken by something else: pass another --base-port")

    urls = create_bench_databases(args.db_prefix)
    user_ring, service_ring = _ring_value("bench-user"), _ring_value("bench-svc")
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    env.update(
        APP_ENV="production",
        LOG_LEVEL="INFO",
        USER_JWT_KEYS=user_ring,
        SERVICE_JWT_KEYS=service_ring,
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
    # Fresh databases start order ids at 1 again: the gateway's ledger must start empty too.
    for old in [*log_dir.glob("*.log"), *log_dir.glob("gateway-ledger.db*")]:
        old.unlink()
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
    log(
        f"starting the stack on ports {base}-{base + 2} (SQS {ports['sqs']}), databases {args.db_prefix}_*_db, "
        f"gunicorn {args.workers} workers x {args.worker_class or 'default class'} ({args.threads} threads), "
        f"logs in {log_dir}"
    )
    started = time.monotonic()
    stack.start(seed=False)
    log(f"stack up in {time.monotonic() - started:.1f}s")
    return Target(
        host,
        ports["bff"],
        ports["customers"],
        ports["orders"],
        KeyRing.parse(user_ring),
        KeyRing.parse(service_ring),
        urls["orders"],
        started=stack,
        databases=[f"{args.db_prefix}_customers_db", f"{args.db_prefix}_orders_db"],
    )


def _port_busy(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


# --- seeding ----------------------------------------------------------------------------------


@dataclass
class Fixtures:
    run_id: str
    admin_token: str
    orders_token: str  # service token of the orchestrator, for orders-service
    customers: list[int]
    products: list[int]
    confirm_orders: tuple[int, int] = (0, -1)
    replay_orders: tuple[int, int] = (0, -1)


def _check(response: requests.Response, expected: int, what: str) -> dict[str, Any]:
    if response.status_code != expected:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:300]}")
    return response.json()


def seed(target: Target, args: argparse.Namespace, session: requests.Session) -> Fixtures:
    run_id = f"b{int(time.time())}{secrets.token_hex(2)}"
    admin = mint_user_token(target.user_ring, user_id=900001, role="admin", customer_id=None, ttl_seconds=7200)
    service = mint_service_token(
        target.service_ring, caller="orchestrator", audience="orders-service", ttl_seconds=7200
    )
    admin_headers = {"Authorization": f"Bearer {admin}"}
    customers = []
    for i in range(args.customers):
        body = {"name": f"Bench Buyer {run_id} {i}", "email": f"buyer{i}.{run_id}@bench.example"}
        created = _check(
            session.post(target.url("customers") + "/customers", json=body, headers=admin_headers), 201, "customer"
        )
        customers.append(created["id"])
    products = []
    for i in range(args.products):
        body = {"sku": f"BENCH-{run_id}-{i}", "name": f"Bench item {i}", "price_cents": 100 + i, "stock": 10**9}
        created = _check(
            session.post(target.url("orders") + "/products", json=body, headers=admin_headers), 201, "product"
        )
        products.append(created["id"])
    return Fixtures(run_id, admin, service, customers, products)


def insert_created_orders(engine: Engine, fixtures: Fixtures, count: int) -> tuple[int, int]:
    """`count` CREATED orders of one item each, stock taken in the same transaction (so
    conservation holds), with consecutive ids; returns (first id, last id)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    rng = random.Random(count)
    lines = [(rng.choice(fixtures.customers), rng.choice(fixtures.products)) for _ in range(count)]
    prices = {}
    with engine.begin() as conn:
        for row in conn.execute(
            text("SELECT id, sku, price_cents FROM products WHERE id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": fixtures.products},
        ):
            prices[row.id] = (row.sku, row.price_cents)
        first = None
        for start in range(0, count, 5000):
            chunk = lines[start : start + 5000]
            values = ", ".join(
                f"({customer}, 'CREATED', 'NOT_REQUESTED', {prices[product][1]}, :now, :now)"
                for customer, product in chunk
            )
            result = conn.execute(
                text(
                    "INSERT INTO orders (customer_id, status, payment_status, total_cents, created_at, updated_at) "
                    f"VALUES {values}"
                ),
                {"now": now},
            )
            chunk_first = result.lastrowid  # MySQL: id of the first row of a multi-row INSERT
            if first is None:
                first = chunk_first
            elif chunk_first != first + start:
                raise RuntimeError("seeded order ids are not consecutive")
            items = ", ".join(
                f"({chunk_first + offset}, {product}, '{prices[product][0]}', 1, {prices[product][1]})"
                for offset, (_, product) in enumerate(chunk)
            )
            conn.execute(
                text(f"INSERT INTO order_items (order_id, product_id, sku, qty, unit_price_cents) VALUES {items}")
            )
        taken = Counter(product for _, product in lines)
        for product, qty in taken.items():
            conn.execute(text("UPDATE products SET stock = stock - :qty WHERE id = :id"), {"qty": qty, "id": product})
    assert first is not None
    return first, first + count - 1


# --- checks -----------------------------------------------------------------------------------


def stock_checks(engine: Engine, product_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """SPEC §6: no negative stock; stock_received = stock + qty held by non-CANCELED orders."""
    where = ""
    params: dict[str, Any] = {}
    if product_ids:
        where = "WHERE p.id IN (" + ", ".join(str(int(p)) for p in product_ids) + ")"
    rows = []
    with engine.connect() as conn:
        rows = list(
            conn.execute(
                text(
                    "SELECT p.id, p.stock, p.stock_received, COALESCE(h.held, 0) AS held FROM products p "
                    "LEFT JOIN (SELECT oi.product_id, SUM(oi.qty) AS held FROM order_items oi "
                    "JOIN orders o ON o.id = oi.order_id WHERE o.status <> 'CANCELED' GROUP BY oi.product_id) h "
                    f"ON h.product_id = p.id {where}"
                ),
                params,
            )
        )
    negative = [{"product_id": r.id, "stock": int(r.stock)} for r in rows if r.stock < 0]
    broken = [
        {"product_id": r.id, "stock_received": int(r.stock_received), "stock": int(r.stock), "held": int(r.held)}
        for r in rows
        if int(r.stock_received) != int(r.stock) + int(r.held)
    ]
    return {
        "oversell": {"ok": not negative, "products_below_zero": negative[:10]},
        "conservation": {"ok": not broken, "products_checked": len(rows), "violations": broken[:10]},
    }


def hot_sku_round_check(statuses: Counter, stock: int, buyers: int) -> dict[str, Any]:
    sold = statuses.get("201", 0)
    refused = statuses.get("409", 0)
    fives = sum(n for s, n in statuses.items() if s.startswith("5"))
    expected_sold = min(stock, buyers)
    return {
        "ok": sold == expected_sold and refused == buyers - expected_sold and fives == 0,
        "sold": sold,
        "refused_409": refused,
        "expected_sold": expected_sold,
        "errors_5xx": fives,
    }


# --- drivers ----------------------------------------------------------------------------------


class Progress:
    """One line while a scenario runs: elapsed time and the request rate seen in a log file."""

    def __init__(self, name: str, duration: float, log_path: Path | None) -> None:
        self.name, self.duration, self.log_path = name, duration, log_path
        self.stop = threading.Event()
        self.tty = sys.stdout.isatty()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.count = 0

    def __enter__(self) -> Progress:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        if self.tty:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()

    def _log_lines(self, handle: Any) -> int:
        return handle.read().count(b"\n") if handle else 0

    def _run(self) -> None:
        started = time.monotonic()
        handle = None
        if self.log_path and self.log_path.exists():
            handle = open(self.log_path, "rb")  # noqa: SIM115 - closed below
            handle.seek(0, os.SEEK_END)
        last, last_t, shown = 0, started, started
        try:
            while not self.stop.wait(1.0):
                now = time.monotonic()
                lines = self._log_lines(handle)
                rate = lines / (now - last_t) if handle else None
                last_t, last = now, last + lines
                load = os.getloadavg()[0]
                rate_text = f"~{rate:,.0f} req/s (log lines)" if rate is not None else ""
                line = f"  [{self.name}] {now - started:5.1f}/{self.duration:.0f}s {rate_text}  load {load:.2f}"
                if self.tty:
                    sys.stdout.write("\r\033[K" + line)
                    sys.stdout.flush()
                elif now - shown >= 5:
                    print(line, flush=True)
                    shown = now
        finally:
            if handle:
                handle.close()


def ensure_wrk(install: bool = True) -> str | None:
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is not installed: apt-get install wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
        return shutil.which("wrk")
    return None


def wrk_version(wrk: str) -> str:
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (output.stdout or output.stderr).split("\n")[0].split(" Copyright")[0]


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
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    latencies, statuses, socket_errors = asyncio.run(
        _closed_loop(host, port, clients, duration, make_request, lambda _n: None)
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) / elapsed
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
    rng = random.Random(7)
    token = fixtures.admin_token if mode == "bff" else fixtures.orders_token
    base = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    lo_c, hi_c = fixtures.confirm_orders
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


# --- scenarios --------------------------------------------------------------------------------

DESCRIPTIONS = {
    "create": "POST /orders, 1 item, customer validated via customers-service",
    "confirm": "POST /orders/{id}/confirm, fresh key, pre-created CREATED orders",
    "replay": "POST /orders/{id}/confirm replay of a stored key",
    "bff": "BFF create-and-confirm-order via the API Gateway adapter",
    "hot-sku": "hot SKU: concurrent buyers of one product with limited stock",
}


class Bench:
    def __init__(self, args: argparse.Namespace, target: Target, wrk: str | None) -> None:
        self.args = args
        self.target = target
        self.wrk = wrk
        self.session = requests.Session()
        self.engine = create_engine(target.orders_database_url, pool_size=2, max_overflow=0)
        groups = {}
        if target.started:
            for name, process in target.started.processes.items():
                if process.process is not None:
                    groups[name] = process.process.pid
        elif os.environ.get("BENCH_PROCESS_GROUPS"):  # a stack started by `--serve`
            for entry in os.environ["BENCH_PROCESS_GROUPS"].split(","):
                name, _, pgid = entry.partition(":")
                groups[name] = int(pgid)
        self.cpu = CpuMeter(groups)
        self.fixtures = seed(target, args, self.session)

    def _log_path(self, service: str) -> Path | None:
        if not self.target.started:
            return None
        return self.target.started.config.log_dir / f"{service}.log"

    def _port(self, mode: str) -> int:
        return self.target.bff_port if mode == "bff" else self.target.orders_port

    def _load(self, mode: str, clients: int, duration: float) -> tuple[dict[str, Any], float, str]:
        port = self._port(mode)
        if self.wrk and self.args.driver in ("auto", "wrk"):
            f = self.fixtures
            lo, hi = f.confirm_orders if mode == "confirm" else f.replay_orders
            env = {
                "BENCH_TOKEN": f.admin_token if mode == "bff" else f.orders_token,
                "BENCH_RUN": f.run_id,
                "BENCH_CUSTOMERS": ",".join(map(str, f.customers)),
                "BENCH_PRODUCTS": ",".join(map(str, f.products)),
                "BENCH_ORDER_LO": str(lo),
                "BENCH_ORDER_HI": str(hi),
            }
            # Keys must differ between the warm-up and the measured run.
            env["BENCH_RUN"] = f"{f.run_id}-{mode}-{secrets.token_hex(2)}" if mode in ("create", "bff") else f.run_id
            if mode == "confirm":
                env["BENCH_RUN"] = f"{f.run_id}-confirm-{secrets.token_hex(2)}"
            raw, cpu = run_wrk(self.wrk, f"http://{self.target.host}:{port}", mode, env, clients, duration)
            return raw, cpu, "wrk"
        factory = python_request_factory(mode, self.fixtures, clients)
        raw, cpu = python_load(self.target.host, port, clients, duration, factory)
        return raw, cpu, "python-asyncio"

    def _prepare(self, mode: str) -> None:
        f = self.fixtures
        if mode == "confirm":
            count = int(self.args.confirm_orders_per_second * (self.args.duration + self.args.warmup)) + 1000
            started = time.monotonic()
            f.confirm_orders = insert_created_orders(self.engine, f, count)
            log(f"  seeded {count} CREATED orders in {time.monotonic() - started:.1f}s")
        elif mode == "replay":
            lo, hi = insert_created_orders(self.engine, f, self.args.replay_keys)
            headers = {"Authorization": f"Bearer {f.orders_token}"}
            for order_id in range(lo, hi + 1):
                headers["Idempotency-Key"] = f"{f.run_id}-replay-{order_id}"
                _check(
                    self.session.post(f"{self.target.url('orders')}/orders/{order_id}/confirm", headers=headers),
                    200,
                    "confirm for replay",
                )
            f.replay_orders = (lo, hi)

    def run_throughput(self, mode: str) -> ScenarioResult:
        args = self.args
        self._prepare(mode)
        if args.warmup > 0:
            if mode == "confirm":
                # The warm-up confirms orders from the end of the pool; the measured run the start.
                lo, hi = self.fixtures.confirm_orders
                warm = int(args.confirm_orders_per_second * args.warmup) + 500
                self.fixtures.confirm_orders = (hi - warm + 1, hi)
                self._load(mode, args.clients, args.warmup)
                self.fixtures.confirm_orders = (lo, hi - warm)
            else:
                self._load(mode, args.clients, args.warmup)
        service = "bff" if mode == "bff" else "orders-service"
        cpu_before = self.cpu.sample()
        self_before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic()
        with Progress(mode, args.duration, self._log_path(service)):
            raw, generator_cpu, driver = self._load(mode, args.clients, args.duration)
        wall = time.monotonic() - wall
        self_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = CpuMeter.delta(cpu_before, self.cpu.sample(), wall)
        if driver == "wrk":
            # This process meanwhile: the stack's log pumps and the progress line.
            used = self_after.ru_utime - self_before.ru_utime + self_after.ru_stime - self_before.ru_stime
            cpu["bench-runner"] = round(used / wall, 3)
        duration_s = raw["duration_us"] / 1e6
        result = ScenarioResult(
            name=mode,
            description=DESCRIPTIONS[mode],
            driver=driver,
            clients=args.clients,
            duration_s=round(duration_s, 2),
            requests=raw["requests"],
            rps=round(raw["requests"] / duration_s, 1) if duration_s else 0.0,
            latency_ms={k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
            statuses={str(k): v for k, v in sorted(raw["statuses"].items())},
            socket_errors=raw.get("socket_errors") or {},
            cpu_cores=cpu,
            load_generator_cpu_cores=round(generator_cpu, 3),
        )
        result.extra["cpu_ms_per_request"] = per_request_cpu(cpu, generator_cpu, wall, result.requests)
        if raw.get("replayed") is not None:
            result.extra["replayed_responses"] = raw["replayed"]
        if raw.get("orders_exhausted"):
            result.extra["orders_exhausted"] = raw["orders_exhausted"]
        expected = {"create": "201", "confirm": "200", "replay": "200", "bff": "201"}[mode]
        unexpected = {s: n for s, n in result.statuses.items() if s != expected}
        result.checks["all_" + expected] = {"ok": not unexpected, "other_statuses": unexpected}
        if mode == "replay" and raw.get("replayed") is not None:
            result.checks["replayed_header"] = {"ok": raw["replayed"] == raw["requests"], "replayed": raw["replayed"]}
        if mode in WRITES:
            if mode == "bff":
                time.sleep(0.5)  # let in-flight payment outcomes land (each is atomic anyway)
            result.checks.update(stock_checks(self.engine))
        return result

    def run_hot_sku(self) -> ScenarioResult:
        args = self.args
        f = self.fixtures
        buyers, stock = args.hot_buyers, args.hot_stock
        admin = {"Authorization": f"Bearer {f.admin_token}"}
        headers = {"Authorization": f"Bearer {f.orders_token}", "Content-Type": "application/json"}
        latencies: list[float] = []
        statuses: Counter = Counter()
        rounds: list[dict[str, Any]] = []
        product_ids: list[int] = []
        codes: Counter = Counter()

        async def one_round(connections: list[HttpConnection], product_id: int, round_no: int) -> Counter:
            gate = asyncio.Event()
            round_statuses: Counter = Counter()

            async def buyer(i: int, connection: HttpConnection) -> None:
                body = orjson.dumps(
                    {"customer_id": f.customers[i % len(f.customers)], "items": [{"product_id": product_id, "qty": 1}]}
                )
                h = {**headers, "Idempotency-Key": f"{f.run_id}-hot-{round_no}-{i}"}
                await gate.wait()
                started = time.perf_counter()
                try:
                    status, _, payload = await connection.request("POST", "/orders", h, body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    round_statuses["socket_error"] += 1
                    return
                latencies.append(time.perf_counter() - started)
                round_statuses[str(status)] += 1
                if status >= 400:
                    try:
                        codes[orjson.loads(payload).get("code", "?")] += 1
                    except orjson.JSONDecodeError:
                        codes["not_json"] += 1

            tasks = [asyncio.create_task(buyer(i, c)) for i, c in enumerate(connections)]
            await asyncio.sleep(0.05)
            gate.set()
            await asyncio.gather(*tasks)
            return round_statuses

        async def main() -> float:
            measured = 0.0
            deadline = time.monotonic() + args.duration
            round_no = 0
            while round_no == 0 or time.monotonic() < deadline:
                round_no += 1
                body = {"sku": f"HOT-{f.run_id}-{round_no}", "name": "Hot item", "price_cents": 999, "stock": stock}
                created = _check(
                    self.session.post(self.target.url("orders") + "/products", json=body, headers=admin),
                    201,
                    "hot product",
                )
                product_ids.append(created["id"])
                # Buyers connect once the product exists (a gthread worker holds a thread for an
                # accepted connection until its first request arrives).
                connections = [HttpConnection(self.target.host, self.target.orders_port) for _ in range(buyers)]
                try:
                    await asyncio.gather(*(c.open() for c in connections))
                    started = time.perf_counter()
                    round_statuses = await one_round(connections, created["id"], round_no)
                    measured += time.perf_counter() - started
                finally:
                    await asyncio.gather(*(c.close() for c in connections))
                statuses.update(round_statuses)
                check = hot_sku_round_check(round_statuses, stock, buyers)
                rounds.append({"round": round_no, "product_id": created["id"], **check})
            return measured

        cpu_before = self.cpu.sample()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        wall = time.monotonic()
        with Progress("hot-sku", args.duration, self._log_path("orders-service")):
            measured = asyncio.run(main())
        wall = time.monotonic() - wall
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = CpuMeter.delta(cpu_before, self.cpu.sample(), wall)
        generator_cpu = (
            usage_after.ru_utime - usage_before.ru_utime + usage_after.ru_stime - usage_before.ru_stime
        ) / wall
        total = sum(statuses.values())
        result = ScenarioResult(
            name="hot-sku",
            description=f"{buyers} concurrent buyers of one product with stock {stock}, {len(rounds)} rounds",
            driver="python-asyncio",
            clients=buyers,
            duration_s=round(measured, 2),
            requests=total,
            rps=round(total / measured, 1) if measured else 0.0,
            latency_ms=latency_summary(latencies),
            statuses=dict(sorted(statuses.items())),
            cpu_cores=cpu,
            load_generator_cpu_cores=round(generator_cpu, 3),
            extra={
                "rounds": len(rounds),
                "problem_codes": dict(codes),
                "cpu_ms_per_request": per_request_cpu(cpu, generator_cpu, wall, total),
            },
        )
        failed_rounds = [r for r in rounds if not r["ok"]]
        result.checks["exactly_stock_sold_per_round"] = {
            "ok": not failed_rounds,
            "rounds": len(rounds),
            "failed_rounds": failed_rounds[:5],
        }
        result.checks["no_5xx"] = {"ok": result.errors_5xx == 0, "errors_5xx": result.errors_5xx}
        refusals_ok = set(codes) <= {"insufficient_stock"}
        result.checks["refusals_are_insufficient_stock"] = {"ok": refusals_ok, "codes": dict(codes)}
        checks = stock_checks(self.engine, product_ids)
        sold_out = self._sold_out(product_ids)
        checks["oversell"]["ok"] = checks["oversell"]["ok"] and sold_out["ok"]
        checks["oversell"]["hot_products_sold_out"] = sold_out
        result.checks.update(checks)
        return result

    def _sold_out(self, product_ids: Sequence[int]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = list(
                conn.execute(
                    text(
                        "SELECT id, stock, stock_received FROM products WHERE id IN ("
                        + ", ".join(str(int(p)) for p in product_ids)
                        + ")"
                    )
                )
            )
        wrong = [{"product_id": r.id, "stock": int(r.stock)} for r in rows if r.stock != 0]
        return {"ok": not wrong and len(rows) == len(product_ids), "not_sold_out": wrong[:5]}

    def close(self) -> None:
        self.engine.dispose()
        self.session.close()


def per_request_cpu(cores: dict[str, float], generator_cores: float, wall: float, requests: int) -> dict[str, float]:
    """CPU milliseconds per request, per component: what each request costs the box."""
    if not requests:
        return {}
    costs = {name: round(c * wall / requests * 1000, 3) for name, c in cores.items() if c > 0}
    costs["load-generator"] = round(generator_cores * wall / requests * 1000, 3)
    costs["total"] = round(sum(costs.values()), 3)
    return costs


# --- report -----------------------------------------------------------------------------------


def target_for(name: str) -> dict[str, Any] | None:
    peer = NODE_PEER.get(name)
    if not peer:
        return None
    return {
        "node_rps": peer["rps"],
        "node_p99_ms": peer["p99_ms"],
        "target_rps": round(peer["rps"] * TARGET_FACTOR),
    }


def verdict(result: ScenarioResult) -> str:
    target = target_for(result.name)
    if not result.passed:
        return "CHECK FAILED"
    if target is None:
        return "ok"
    fast = result.rps >= target["target_rps"]
    p99_ok = target["node_p99_ms"] is None or result.latency_ms["p99"] <= target["node_p99_ms"]
    return "beats target" if fast and p99_ok else "below target"


def table(results: Sequence[ScenarioResult]) -> str:
    header = (
        f"{'scenario':<9} {'req/s':>8} {'target':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>8} "
        f"{'requests':>9}  {'statuses':<26} {'gen CPU':>7}  {'checks':<13}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        target = target_for(r.name)
        statuses = " ".join(f"{s}:{n}" for s, n in r.statuses.items())
        lines.append(
            f"{r.name:<9} {r.rps:>8.1f} {(target['target_rps'] if target else '-'):>7} "
            f"{r.latency_ms['p50']:>7.1f} {r.latency_ms['p95']:>7.1f} {r.latency_ms['p99']:>7.1f} "
            f"{r.latency_ms['max']:>8.1f} {r.requests:>9}  {statuses:<26} {r.load_generator_cpu_cores:>7.2f}  "
            f"{verdict(r):<13}"
        )
    lines.append(
        "latency in ms; target = Node peer + 20% (p99 must not exceed the peer's); gen CPU = cores used by "
        "the load generator"
    )
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        model = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        info["cpu_model"] = model.group(1) if model else None
        mem = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
        info["memory_gib"] = round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None
    except OSError:
        pass
    return info


def serve(target: Target) -> int:
    """Keep a bench stack up for profiling; `set -a; . var/bench-stack.env` lets a second run reuse it."""
    assert target.started is not None
    env_file = ROOT / "var" / "bench-stack.env"
    env_file.write_text(
        f"USER_JWT_KEYS={target.started.config.env['USER_JWT_KEYS']}\n"
        f"SERVICE_JWT_KEYS={target.started.config.env['SERVICE_JWT_KEYS']}\n"
        f"ORDERS_DATABASE_URL={target.orders_database_url}\n"
        f"CUSTOMERS_DATABASE_URL={target.started.config.customers_database_url}\n"
        "BENCH_PROCESS_GROUPS="
        + ",".join(f"{name}:{p.process.pid}" for name, p in target.started.processes.items() if p.process)
        + "\n"
    )
    log(f"stack up; settings in {env_file}; Ctrl-C stops it")
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Benchmark the order platform (make bench).")
    parser.add_argument(
        "--duration", type=float, default=float(env.get("BENCH_DURATION", "15")), help="seconds measured per scenario"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=float(env.get("BENCH_WARMUP", "3")),
        help="seconds of unmeasured load before each throughput scenario",
    )
    parser.add_argument("--clients", type=int, default=int(env.get("BENCH_CLIENTS", "20")))
    parser.add_argument("--scenarios", default=env.get("BENCH_SCENARIOS", ",".join(SCENARIOS)))
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(env.get("BENCH_BASE_PORT", "3000")),
        help="BFF port; customers +1, orders +2, SQS +1566",
    )
    parser.add_argument("--fresh-stack", action="store_true", help="never reuse a running stack")
    parser.add_argument("--db-prefix", default=env.get("BENCH_DB_PREFIX", "bench"))
    parser.add_argument("--workers", type=int, default=int(env.get("BENCH_WEB_WORKERS", "2")))
    parser.add_argument("--threads", type=int, default=int(env.get("BENCH_WEB_THREADS", "4")))
    parser.add_argument(
        "--worker-class",
        default=env.get("BENCH_WORKER_CLASS", ""),
        help="gunicorn worker class for both services (default: each service's own, servicekit/gunicorn_conf.py)",
    )
    parser.add_argument("--driver", choices=("auto", "wrk", "python"), default=env.get("BENCH_DRIVER", "auto"))
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk (fall back to Python)")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--hot-buyers", type=int, default=200)
    parser.add_argument("--hot-stock", type=int, default=100)
    parser.add_argument("--replay-keys", type=int, default=100)
    parser.add_argument(
        "--confirm-orders-per-second",
        type=float,
        default=3000,
        help="CREATED orders seeded per second of the confirm scenario",
    )
    parser.add_argument("--out", help="JSON results file (default bench/results/bench-<time>.json)")
    parser.add_argument("--log-dir", help="process logs of a stack we start (default var/bench-log)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="only start the bench stack, write its settings to var/bench-stack.env, run until Ctrl-C",
    )
    parser.add_argument("--keep-running", action="store_true", help="leave a stack we started running")
    parser.add_argument("--drop-databases", action="store_true", help="drop the bench databases at the end")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    if info["loadavg_before"][0] > 0.5:
        log(f"note: load average is {info['loadavg_before'][0]:.2f}: the machine is not quiet, numbers will suffer")
    wrk = None
    if args.driver != "python":
        wrk = ensure_wrk(install=not args.no_install)
        if wrk is None and args.driver == "wrk":
            log("wrk is not available")
            return 2
        if wrk is None:
            log("wrk is not available: using the Python asyncio driver (slower, uses more CPU)")
    target = prepare_target(args)
    if args.serve:
        return serve(target)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    results: list[ScenarioResult] = []
    bench: Bench | None = None
    try:
        bench = Bench(args, target, wrk)
        for name in args.scenario_list:
            log(f"== {name}: {DESCRIPTIONS[name]}")
            result = bench.run_hot_sku() if name == "hot-sku" else bench.run_throughput(name)
            results.append(result)
            failed = [k for k, v in result.checks.items() if not v.get("ok", True)]
            log(
                f"   {result.rps:,.1f} req/s  p50 {result.latency_ms['p50']} ms  p99 {result.latency_ms['p99']} ms  "
                f"statuses {result.statuses}  checks {'FAILED: ' + ', '.join(failed) if failed else 'ok'}"
            )
    finally:
        if bench is not None:
            bench.close()
        if target.started and not args.keep_running:
            log("stopping the stack")
            target.started.stop()
        signal.signal(signal.SIGTERM, previous)
    if args.drop_databases and target.started:
        drop_bench_databases(args.db_prefix)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else RESULTS_DIR / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "timestamp": stamp,
        "machine": info,
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "clients": args.clients,
            "stack": "started by bench" if target.started else "already running",
            "gunicorn": {"workers": args.workers, "threads": args.threads, "worker_class": args.worker_class}
            if target.started
            else None,
            "load_generator": wrk_version(wrk) if wrk and args.driver != "python" else "python-asyncio",
        },
        "targets": {name: target_for(name) for name in NODE_PEER},
        "results": [
            {**r.__dict__, "errors_5xx": r.errors_5xx, "passed": r.passed, "verdict": verdict(r)} for r in results
        ],
        "passed": all(r.passed for r in results),
    }
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    if not args.out:
        (RESULTS_DIR / "latest.json").write_bytes(out.read_bytes())
    log("")
    log(table(results))
    log(f"\nraw numbers: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if document["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
