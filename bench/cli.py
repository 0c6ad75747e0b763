"""The command line: `python -m bench --help`. Runs the scenarios, prints the table, writes the
raw numbers to bench/results/ (bench-<time>.json and latest.json); exit status 1 if a check failed."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from . import RESULTS_DIR, ROOT, coldstart, log
from .databases import drop_bench_databases
from .report import NODE_PEER, ScenarioResult, machine_info, table, target_for
from .scenarios import DESCRIPTIONS, SCENARIOS, Bench
from .target import Target, prepare_target, serve
from .tools import ensure_wrk, wrk_version


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m bench", description="Benchmark the order platform (make bench).")
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
        help="BFF port; customers +1, orders +2, gateway +3, SQS +1566",
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
    parser.add_argument(
        "--cold-start-runs",
        type=int,
        default=int(env.get("BENCH_COLD_START_RUNS", "5")),
        help="BFF cold starts measured on the `sam build` output (bench/coldstart.py); 0 skips",
    )
    parser.add_argument("--drop-databases", action="store_true", help="drop the bench databases at the end")
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(args.scenario_list) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    return args


def _load_generator(args: argparse.Namespace) -> str | None:
    """wrk's path, or None for the Python driver."""
    if args.driver == "python":
        return None
    wrk = ensure_wrk(install=not args.no_install)
    if wrk is None and args.driver == "wrk":
        log("wrk is not available")
        raise SystemExit(2)
    if wrk is None:
        log("wrk is not available: using the Python asyncio driver (slower, uses more CPU)")
    return wrk


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a run like Ctrl-C: the stack we started is stopped


def run_scenarios(
    args: argparse.Namespace, target: Target, wrk: str | None
) -> tuple[list[ScenarioResult], dict[str, Any] | None]:
    """The scenarios, then the BFF's cold start on the same stack (if it was started here)."""
    results: list[ScenarioResult] = []
    cold_start: dict[str, Any] | None = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    bench: Bench | None = None
    try:
        bench = Bench(args, target, wrk)
        for name in args.scenario_list:
            log(f"== {name}: {DESCRIPTIONS[name]}")
            result = bench.run(name)
            results.append(result)
            log(result.summary())
        if args.cold_start_runs > 0 and target.started:
            log("== cold start: the BFF's import and first request, on the sam build output")
            cold_start = coldstart.run(target, args.cold_start_runs)
            log(coldstart.describe(cold_start))
        elif args.cold_start_runs > 0:
            log("cold start skipped: it needs a stack started by the bench (--fresh-stack)")
    finally:
        if bench is not None:
            bench.close()
        if target.started and not args.keep_running:
            log("stopping the stack")
            target.started.stop()
        signal.signal(signal.SIGTERM, previous)
    return results, cold_start


def results_document(
    args: argparse.Namespace,
    target: Target,
    wrk: str | None,
    stamp: str,
    info: dict[str, Any],
    results: list[ScenarioResult],
    cold_start: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
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
            "load_generator": wrk_version(wrk) if wrk else "python-asyncio",
        },
        "targets": {name: target_for(name) for name in NODE_PEER},
        "results": [result.document() for result in results],
        "cold_start": cold_start,
        "passed": all(result.passed for result in results),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp, info = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), machine_info()
    if info["loadavg_before"][0] > 0.5:
        log(f"note: load average is {info['loadavg_before'][0]:.2f}: the machine is not quiet, numbers will suffer")
    wrk = _load_generator(args)
    target = prepare_target(args)
    if args.serve:
        return serve(target)
    results, cold_start = run_scenarios(args, target, wrk)
    if args.drop_databases and target.started:
        drop_bench_databases(args.db_prefix)

    document = results_document(args, target, wrk, stamp, info, results, cold_start)
    out = Path(args.out) if args.out else RESULTS_DIR / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    if not args.out:
        (RESULTS_DIR / "latest.json").write_bytes(out.read_bytes())
    log("")
    log(table(results))
    if cold_start:
        log(coldstart.describe(cold_start))
    log(f"\nraw numbers: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0 if document["passed"] else 1
