"""The scenarios: what each one loads the stack with, and what it checks afterwards."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from collections import Counter
from typing import Any

import orjson
import requests
from sqlalchemy import create_engine

from . import log
from .checks import hot_sku_round_check, sold_out, stock_checks
from .cpu import CpuMeter, CpuWindow, per_request_cpu
from .fixtures import Fixtures, expect, insert_created_orders, seed
from .http_client import SOCKET_ERRORS, HttpConnection
from .load import Progress, python_load, python_request_factory, run_wrk
from .report import ScenarioResult, latency_summary
from .target import Target

SCENARIOS = ("create", "confirm", "replay", "bff", "hot-sku")
WRITES = ("create", "confirm", "bff", "hot-sku")
DESCRIPTIONS = {
    "create": "POST /orders, 1 item, customer validated via customers-service",
    "confirm": "POST /orders/{id}/confirm, fresh key, pre-created CREATED orders",
    "replay": "POST /orders/{id}/confirm replay of a stored key",
    "bff": "BFF create-and-confirm-order via the API Gateway adapter",
    "hot-sku": "hot SKU: concurrent buyers of one product with limited stock",
}
EXPECTED_STATUS = {"create": "201", "confirm": "200", "replay": "200", "bff": "201"}


class Bench:
    def __init__(self, args: argparse.Namespace, target: Target, wrk: str | None) -> None:
        self.args = args
        self.target = target
        self.wrk = wrk if args.driver in ("auto", "wrk") else None
        self.session = requests.Session()
        self.engine = create_engine(target.orders_database_url, pool_size=2, max_overflow=0, hide_parameters=True)
        self.cpu = CpuMeter(target.process_groups())
        self.fixtures = seed(target, args, self.session)

    def run(self, name: str) -> ScenarioResult:
        return self.run_hot_sku() if name == "hot-sku" else self.run_throughput(name)

    def close(self) -> None:
        self.engine.dispose()
        self.session.close()

    # --- throughput scenarios: create, confirm, replay, bff ----------------------------------

    def _load(self, mode: str, clients: int, duration: float) -> tuple[dict[str, Any], float, str]:
        port = self.target.bff_port if mode == "bff" else self.target.orders_port
        f = self.fixtures
        if self.wrk:
            lo, hi = f.confirm_orders if mode == "confirm" else f.replay_orders
            env = {
                "BENCH_TOKEN": f.admin_token if mode == "bff" else f.orders_token,
                # Keys differ between the warm-up and the measured run; a replay uses the stored ones.
                "BENCH_RUN": f.run_id if mode == "replay" else f"{f.run_id}-{mode}-{secrets.token_hex(2)}",
                "BENCH_CUSTOMERS": ",".join(map(str, f.customers)),
                "BENCH_PRODUCTS": ",".join(map(str, f.products)),
                "BENCH_ORDER_LO": str(lo),
                "BENCH_ORDER_HI": str(hi),
            }
            raw, cpu = run_wrk(self.wrk, f"http://{self.target.host}:{port}", mode, env, clients, duration)
            return raw, cpu, "wrk"
        raw, cpu = python_load(self.target.host, port, clients, duration, python_request_factory(mode, f, clients))
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
                url = f"{self.target.url('orders')}/orders/{order_id}/confirm"
                expect(self.session.post(url, headers=headers), 200, "confirm for replay")
            f.replay_orders = (lo, hi)

    def _warm_up(self, mode: str) -> None:
        args = self.args
        if args.warmup <= 0:
            return
        if mode != "confirm":
            self._load(mode, args.clients, args.warmup)
            return
        # The warm-up confirms orders from the end of the pool; the measured run the start.
        lo, hi = self.fixtures.confirm_orders
        warm = int(args.confirm_orders_per_second * args.warmup) + 500
        self.fixtures.confirm_orders = (hi - warm + 1, hi)
        self._load(mode, args.clients, args.warmup)
        self.fixtures.confirm_orders = (lo, hi - warm)

    def run_throughput(self, mode: str) -> ScenarioResult:
        args = self.args
        self._prepare(mode)
        self._warm_up(mode)
        log_path = self.target.log_path("bff" if mode == "bff" else "orders-service")
        with CpuWindow(self.cpu) as window, Progress(mode, args.duration, log_path):
            raw, generator_cpu, driver = self._load(mode, args.clients, args.duration)
        cpu = window.cores
        if driver == "wrk":
            cpu["bench-runner"] = round(window.own_cores, 3)  # the stack's log pumps, the progress line
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
        result.extra["cpu_ms_per_request"] = per_request_cpu(cpu, generator_cpu, window.wall, result.requests)
        if raw.get("replayed") is not None:
            result.extra["replayed_responses"] = raw["replayed"]
        if raw.get("orders_exhausted"):
            result.extra["orders_exhausted"] = raw["orders_exhausted"]
        expected = EXPECTED_STATUS[mode]
        unexpected = {s: n for s, n in result.statuses.items() if s != expected}
        result.checks["all_" + expected] = {"ok": not unexpected, "other_statuses": unexpected}
        if mode == "replay" and raw.get("replayed") is not None:
            result.checks["replayed_header"] = {"ok": raw["replayed"] == raw["requests"], "replayed": raw["replayed"]}
        if mode in WRITES:
            if mode == "bff":
                time.sleep(0.5)  # let in-flight payment outcomes land (each is atomic anyway)
            result.checks.update(stock_checks(self.engine))
        return result

    # --- hot SKU: rounds of buyers released together on one product --------------------------

    def run_hot_sku(self) -> ScenarioResult:
        args = self.args
        buyers, stock = args.hot_buyers, args.hot_stock
        rounds = HotSkuRounds(self.target, self.fixtures, self.session, buyers=buyers, stock=stock)
        with CpuWindow(self.cpu) as window, Progress("hot-sku", args.duration, self.target.log_path("orders-service")):
            measured = asyncio.run(rounds.run_for(args.duration))
        total = sum(rounds.statuses.values())
        result = ScenarioResult(
            name="hot-sku",
            description=f"{buyers} concurrent buyers of one product with stock {stock}, {len(rounds.rounds)} rounds",
            driver="python-asyncio",
            clients=buyers,
            duration_s=round(measured, 2),
            requests=total,
            rps=round(total / measured, 1) if measured else 0.0,
            latency_ms=latency_summary(rounds.latencies),
            statuses=dict(sorted(rounds.statuses.items())),
            cpu_cores=window.cores,
            load_generator_cpu_cores=round(window.own_cores, 3),
            extra={
                "rounds": len(rounds.rounds),
                "problem_codes": dict(rounds.codes),
                "cpu_ms_per_request": per_request_cpu(window.cores, window.own_cores, window.wall, total),
            },
        )
        failed_rounds = [r for r in rounds.rounds if not r["ok"]]
        result.checks["exactly_stock_sold_per_round"] = {
            "ok": not failed_rounds,
            "rounds": len(rounds.rounds),
            "failed_rounds": failed_rounds[:5],
        }
        result.checks["no_5xx"] = {"ok": result.errors_5xx == 0, "errors_5xx": result.errors_5xx}
        refusals_ok = set(rounds.codes) <= {"insufficient_stock"}
        result.checks["refusals_are_insufficient_stock"] = {"ok": refusals_ok, "codes": dict(rounds.codes)}
        checks = stock_checks(self.engine, rounds.product_ids)
        all_sold = sold_out(self.engine, rounds.product_ids)
        checks["oversell"]["ok"] = checks["oversell"]["ok"] and all_sold["ok"]
        checks["oversell"]["hot_products_sold_out"] = all_sold
        result.checks.update(checks)
        return result


class HotSkuRounds:
    """Rounds of `buyers` connections, each buying one unit of a new product with `stock` units,
    released together; what they got back."""

    def __init__(
        self, target: Target, fixtures: Fixtures, session: requests.Session, *, buyers: int, stock: int
    ) -> None:
        self.target, self.fixtures, self.session = target, fixtures, session
        self.buyers, self.stock = buyers, stock
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.codes: Counter = Counter()
        self.rounds: list[dict[str, Any]] = []
        self.product_ids: list[int] = []

    async def run_for(self, duration: float) -> float:
        """Rounds until `duration` has passed (at least one); the seconds spent buying."""
        f = self.fixtures
        admin = {"Authorization": f"Bearer {f.admin_token}"}
        measured = 0.0
        deadline = time.monotonic() + duration
        while not self.rounds or time.monotonic() < deadline:
            round_no = len(self.rounds) + 1
            body = {"sku": f"HOT-{f.run_id}-{round_no}", "name": "Hot item", "price_cents": 999, "stock": self.stock}
            url = self.target.url("orders") + "/products"
            product_id = expect(self.session.post(url, json=body, headers=admin), 201, "hot product")["id"]
            self.product_ids.append(product_id)
            # Buyers connect once the product exists (a gthread worker holds a thread for an
            # accepted connection until its first request arrives).
            connections = [HttpConnection(self.target.host, self.target.orders_port) for _ in range(self.buyers)]
            try:
                await asyncio.gather(*(c.open() for c in connections))
                started = time.perf_counter()
                round_statuses = await self._round(connections, product_id, round_no)
                measured += time.perf_counter() - started
            finally:
                await asyncio.gather(*(c.close() for c in connections))
            self.statuses.update(round_statuses)
            check = hot_sku_round_check(round_statuses, self.stock, self.buyers)
            self.rounds.append({"round": round_no, "product_id": product_id, **check})
        return measured

    async def _round(self, connections: list[HttpConnection], product_id: int, round_no: int) -> Counter:
        f = self.fixtures
        headers = {"Authorization": f"Bearer {f.orders_token}", "Content-Type": "application/json"}
        gate = asyncio.Event()
        round_statuses: Counter = Counter()

        async def buyer(i: int, connection: HttpConnection) -> None:
            body = orjson.dumps(
                {"customer_id": f.customers[i % len(f.customers)], "items": [{"product_id": product_id, "qty": 1}]}
            )
            key = {"Idempotency-Key": f"{f.run_id}-hot-{round_no}-{i}"}
            await gate.wait()
            started = time.perf_counter()
            try:
                status, _, payload = await connection.request("POST", "/orders", {**headers, **key}, body)
            except SOCKET_ERRORS:
                round_statuses["socket_error"] += 1
                return
            self.latencies.append(time.perf_counter() - started)
            round_statuses[str(status)] += 1
            if status >= 400:
                try:
                    self.codes[orjson.loads(payload).get("code", "?")] += 1
                except orjson.JSONDecodeError:
                    self.codes["not_json"] += 1

        tasks = [asyncio.create_task(buyer(i, c)) for i, c in enumerate(connections)]
        await asyncio.sleep(0.05)
        gate.set()
        await asyncio.gather(*tasks)
        return round_statuses
