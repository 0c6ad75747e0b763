"""Smoke test of the bench harness (`python -m bench`): a tiny run of every scenario against a stack
it starts itself on free ports and throwaway databases, then its correctness checks on data that
breaks them. Needs MariaDB/MySQL like the other integration tests; uses wrk when installed and
the harness's Python driver otherwise (it never installs anything here)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import create_engine, text

from bench import ROOT
from bench.checks import hot_sku_round_check, stock_checks
from bench.scenarios import SCENARIOS, WRITES
from bench.target import busy_ports
from servicekit.testing import ThrowawayDatabase


def _free_base_port() -> int:
    """A base port whose whole layout (BFF, services, gateway, SQS) is free."""
    for _ in range(200):
        base = 20000 + secrets.randbelow(20000)
        if not busy_ports(base):
            return base
    raise RuntimeError("no free ports")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("bench")
    out = out_dir / "result.json"
    prefix = f"bsmoke_{secrets.token_hex(3)}"
    argv = [
        sys.executable,
        "-m",
        "bench",
        "--fresh-stack",
        "--no-install",
        f"--base-port={_free_base_port()}",
        f"--db-prefix={prefix}",
        "--duration=1",
        "--warmup=0",
        "--clients=4",
        "--customers=3",
        "--products=3",
        "--replay-keys=8",
        "--confirm-orders-per-second=3000",  # enough CREATED orders for a fast confirm (one each)
        "--hot-buyers=12",
        "--hot-stock=5",
        "--cold-start-runs=1",
        f"--out={out}",
        f"--log-dir={out_dir / 'logs'}",
        "--drop-databases",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCH_")}
    completed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return completed, out


def test_a_tiny_run_produces_the_table_and_the_json(tiny_run):
    completed, out = tiny_run
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["passed"] is True
    results = {r["name"]: r for r in document["results"]}
    assert set(results) == set(SCENARIOS)
    for result in results.values():
        assert result["requests"] > 0 and result["rps"] > 0
        assert {"p50", "p95", "p99", "max"} <= set(result["latency_ms"])
        assert result["statuses"] and result["errors_5xx"] == 0
    for name in WRITES:
        assert results[name]["checks"]["conservation"]["ok"] is True
        assert results[name]["checks"]["oversell"]["ok"] is True
    assert results["hot-sku"]["statuses"].get("201") == 5 * results["hot-sku"]["extra"]["rounds"]
    assert results["replay"]["checks"]["all_200"]["ok"] is True


def test_a_tiny_run_measures_the_bff_cold_start_on_the_sam_build(tiny_run):
    """One cold start: a python3.12 process on the `sam build` output, its requests answered 201."""
    completed, out = tiny_run
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    cold = json.loads(out.read_text())["cold_start"]
    assert cold["runs"] == 1
    assert 0 < cold["import_ms"] <= cold["cold_start_ms"]
    assert cold["first_request_ms"] > 0 and cold["warm_request_ms"] > 0
    assert set(cold["package_mib"]) == {
        "OrchestratorFunction",
        "PaymentsFunction",
        "SweeperFunction",
        "ServiceKitLayer",
    }
    assert "BFF cold start (median of 1)" in completed.stdout
    # The table, one row per scenario, after the header.
    table = completed.stdout[completed.stdout.index("scenario ") :]
    for name in SCENARIOS:
        assert any(line.startswith(name + " ") for line in table.splitlines()), table
    assert "raw numbers:" in completed.stdout


def test_the_stock_checks_fail_on_broken_data():
    database = ThrowawayDatabase("bench")
    engine = create_engine(database.url)
    try:
        from orders_service.cli import migrate

        migrate(database.url, configure_logging=False)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO products (id, sku, name, price_cents, stock, stock_received, created_at, updated_at) "
                    "VALUES (1, 'A', 'a', 100, 5, 10, NOW(6), NOW(6)), (2, 'B', 'b', 100, 7, 7, NOW(6), NOW(6))"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO orders (id, customer_id, status, payment_status, total_cents, created_at, updated_at) "
                    "VALUES (1, 1, 'CREATED', 'NOT_REQUESTED', 300, NOW(6), NOW(6))"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO order_items (order_id, product_id, sku, qty, unit_price_cents) "
                    "VALUES (1, 1, 'A', 3, 100)"
                )
            )
        # Product 1: 10 received, 5 left, 3 held: 2 units vanished.
        checks = stock_checks(engine)
        assert checks["conservation"]["ok"] is False
        assert checks["conservation"]["violations"] == [{"product_id": 1, "stock_received": 10, "stock": 5, "held": 3}]
        assert stock_checks(engine, [2])["conservation"]["ok"] is True
    finally:
        engine.dispose()
        database.drop()


def test_the_hot_sku_check_fails_on_oversell_and_5xx():
    assert hot_sku_round_check(Counter({"201": 100, "409": 100}), stock=100, buyers=200)["ok"] is True
    assert hot_sku_round_check(Counter({"201": 101, "409": 99}), stock=100, buyers=200)["ok"] is False
    assert hot_sku_round_check(Counter({"201": 100, "409": 99, "500": 1}), stock=100, buyers=200)["ok"] is False
    assert hot_sku_round_check(Counter({"201": 99, "409": 101}), stock=100, buyers=200)["ok"] is False


def test_the_statement_measurement_runs_every_way_on_every_kind(capsys):
    from bench import statements

    assert statements.main(["--calls", "100", "--rounds", "1"]) == 0
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.rsplit(None, 3)[0] for row in rows] == list(statements.runners())
    assert all(float(cost) > 0 for row in rows for cost in row.split()[-3:])
