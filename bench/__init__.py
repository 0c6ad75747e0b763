"""`make bench`: throughput and latency of the order platform, with correctness checks.

    .venv/bin/python -m bench [--duration 15] [--clients 20] [--scenarios create,confirm,...]

Uses the stack already answering on the bench ports (BFF, customers-service, orders-service;
keys and ORDERS_DATABASE_URL from the environment or .env), otherwise starts one itself on
MariaDB/MySQL (`target.py`), loads it with wrk or the small asyncio client (`load.py`,
`http_client.py`), meters the CPU of every process (`cpu.py`), checks that stock stayed
conserved (`checks.py`) and reports (`report.py`). bench/README.md says what each scenario
measures and holds the latest numbers.

Modules, one job each: cli (the command line and a run), scenarios (what each scenario does),
fixtures (customers, products and orders it needs), target (the stack: reuse or start),
databases (the bench's own databases and users), load (wrk and the Python driver), http_client,
cpu, checks, report, tools (installing wrk), statements (what one SQL statement costs).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"


def log(message: str) -> None:
    print(message, flush=True)
