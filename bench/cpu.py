"""CPU accounting: the process groups of the stack, the database server, and this process."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

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


def own_cpu_seconds() -> float:
    """User + system CPU of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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


class CpuWindow:
    """`with CpuWindow(meter) as window:` the cores each component and this process used meanwhile."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter = meter
        self.wall = 0.0
        self.cores: dict[str, float] = {}
        self.own_cores = 0.0

    def __enter__(self) -> CpuWindow:
        self._before, self._own, self._started = self.meter.sample(), own_cpu_seconds(), time.monotonic()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.monotonic() - self._started
        self.cores = CpuMeter.delta(self._before, self.meter.sample(), self.wall)
        self.own_cores = (own_cpu_seconds() - self._own) / self.wall


def per_request_cpu(cores: dict[str, float], generator_cores: float, wall: float, requests: int) -> dict[str, float]:
    """CPU milliseconds per request, per component: what each request costs the box."""
    if not requests:
        return {}
    costs = {name: round(c * wall / requests * 1000, 3) for name, c in cores.items() if c > 0}
    costs["load-generator"] = round(generator_cores * wall / requests * 1000, 3)
    costs["total"] = round(sum(costs.values()), 3)
    return costs
