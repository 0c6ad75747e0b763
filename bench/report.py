"""Results: one scenario's numbers and checks, the table printed at the end, the JSON document."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Targets: a Node/Express + mysql2 peer on the same kind of box, plus 20% (see bench/README.md).
NODE_PEER = {
    "create": {"rps": 618, "p99_ms": 54},
    "confirm": {"rps": 1088, "p99_ms": 28},
    "replay": {"rps": 3929, "p99_ms": None},
}
TARGET_FACTOR = 1.2


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

    def summary(self) -> str:
        failed = [name for name, check in self.checks.items() if not check.get("ok", True)]
        return (
            f"   {self.rps:,.1f} req/s  p50 {self.latency_ms['p50']} ms  p99 {self.latency_ms['p99']} ms  "
            f"statuses {self.statuses}  checks {'FAILED: ' + ', '.join(failed) if failed else 'ok'}"
        )

    def document(self) -> dict[str, Any]:
        return {**self.__dict__, "errors_5xx": self.errors_5xx, "passed": self.passed, "verdict": verdict(self)}


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
