"""`make run`'s runner always stops, and nothing it started outlives it.

The real scripts/stack.py, as `make run` starts it (SQLite in a temporary STACK_VAR_DIR, free
ports), gets a signal at a chosen moment: at once, during the migrations, while each process is
starting, once the stack is up, and a second one while it stops. Meanwhile /proc is read every
few milliseconds for every process below the runner. Then, within 10 s of the signal, the
runner must have exited and nothing it started may be left: no process seen below it, and no
process of any session it or its children lead (which catches a worker forked between two
reads). SIGINT goes to the runner's whole process group, as a terminal's Ctrl-C does; SIGKILL
leaves the children to the kernel's parent-death signal and their own parent checks.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from e2e_support import ROOT
from stack import StackConfig

from gateway_simulator.testing import new_api_key
from servicekit.testing import ServiceKeySet, free_port, random_key_ring_value

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; ties children on Linux")

STOP_WITHIN_SECONDS = 10.0
BANNER_LINE = "Try it (bash):"
# The secrets the runner refuses to start without: a new one is one more line here (the service
# identities' keys come from ServiceKeySet, as `make env` makes them). Ports need nothing: every
# variable of StackConfig.ports gets a free port.
SECRETS: dict[str, Callable[[], str]] = {
    "USER_JWT_KEYS": lambda: random_key_ring_value("u1"),
    "DEMO_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
    "DEMO_USER_PASSWORD": lambda: secrets.token_urlsafe(12),
    "PAYMENT_GATEWAY_API_KEY": new_api_key,
}


def runner_env(var_dir: Path) -> dict[str, str]:
    port_names = StackConfig(env={}, customers_database_url="", orders_database_url="", log_dir=var_dir).ports
    return {
        **os.environ,
        **{name: str(free_port()) for name in port_names},
        **{name: make() for name, make in SECRETS.items()},
        **ServiceKeySet.generate().dotenv(),
        "STACK_VAR_DIR": str(var_dir),
        # Not from a developer's .env: SQLite, the default of `make run`.
        "CUSTOMERS_DATABASE_URL": "",
        "ORDERS_DATABASE_URL": "",
    }


# --- /proc ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    ppid: int
    session: int
    state: str
    start_time: str  # with the pid, tells a process from a later one that got the same pid
    cmdline: str


def proc_table() -> dict[int, ProcInfo]:
    """Every process (command lines left empty: `with_cmdline` reads one)."""
    table: dict[int, ProcInfo] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(entry.name)
        table[pid] = ProcInfo(pid, int(fields[1]), int(fields[3]), fields[0], fields[19], "")
    return table


def with_cmdline(info: ProcInfo) -> ProcInfo:
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return info
    return replace(info, cmdline=cmdline.strip())


@dataclass
class Runner:
    """scripts/stack.py in a session of its own (so its process group is a terminal's foreground
    group), its output, and every process seen below it."""

    process: subprocess.Popen
    output: list[str] = field(default_factory=list)
    seen: dict[tuple[int, str], ProcInfo] = field(default_factory=dict)
    sessions: set[int] = field(default_factory=set)
    signalled_at: float | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, var_dir: Path) -> Runner:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "stack.py"), "--quiet"],
            cwd=str(ROOT),
            env=runner_env(var_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        runner = cls(process)
        runner.sessions.add(process.pid)
        threading.Thread(target=runner._read_output, daemon=True).start()
        threading.Thread(target=runner._watch, daemon=True).start()
        return runner

    def _read_output(self) -> None:
        assert self.process.stdout
        for line in self.process.stdout:
            self.output.append(line)

    def _watch(self) -> None:
        while not self._done.is_set():
            table = proc_table()
            below = {self.process.pid}
            grew = True
            while grew:  # the runner's descendants, by following ppid
                found = {pid for pid, info in table.items() if info.ppid in below} - below
                below |= found
                grew = bool(found)
            for pid in below - {self.process.pid}:
                info = with_cmdline(table[pid])
                key = (pid, info.start_time)
                if info.cmdline or key not in self.seen:  # keep what ran there, once it is a zombie
                    self.seen[key] = info
                if info.session != os.getsid(0):
                    self.sessions.add(info.session)
            time.sleep(0.03)

    # What is running, what was printed.

    def running(self, marker: str, count: int = 1) -> bool:
        return sum(marker in info.cmdline for info in list(self.seen.values())) >= count

    def printed(self, text: str) -> bool:
        return any(text in line for line in list(self.output))

    @property
    def text(self) -> str:
        return "".join(self.output)

    def wait_until(self, moment: Callable[[Runner], bool], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not moment(self):
            assert self.process.poll() is None, f"the runner exited on its own:\n{self.text}"
            assert time.monotonic() < deadline, f"the moment never came:\n{self.text}"
            time.sleep(0.01)

    def signal(self, signum: int, *, group: bool = False) -> None:
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()
        try:
            if group:  # as a terminal does: the whole foreground process group
                os.killpg(self.process.pid, signum)
            else:
                os.kill(self.process.pid, signum)
        except ProcessLookupError:  # already gone (a second signal after a quick stop)
            pass

    # The verdict.

    def leftovers(self) -> list[ProcInfo]:
        """Live processes (not zombies) that were seen below the runner or share a session
        with it or one of its children."""
        left = []
        for pid, info in proc_table().items():
            if info.state == "Z" or pid == os.getpid():
                continue
            if (pid, info.start_time) in self.seen or info.session in self.sessions:
                left.append(with_cmdline(info))
        return left

    def assert_everything_gone(self, within: float = STOP_WITHIN_SECONDS) -> int:
        """The runner's exit code, once it and everything it started are gone."""
        assert self.signalled_at is not None
        deadline = self.signalled_at + within
        while self.process.poll() is None or self.leftovers():
            if time.monotonic() > deadline:
                left = "\n".join(f"  {p.pid} ({p.state}) {p.cmdline}" for p in self.leftovers())
                running = "the runner is still running; " if self.process.poll() is None else ""
                self.kill_everything()
                raise AssertionError(f"{running}left {within:.0f}s after the signal:\n{left}\n{self.text}")
            time.sleep(0.05)
        return self.process.returncode

    def kill_everything(self) -> None:
        self.process.kill()
        for info in self.leftovers():
            try:
                os.kill(info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()

    def close(self) -> None:
        if self.process.poll() is None or self.leftovers():
            self.kill_everything()
        self._done.set()


@pytest.fixture
def start_runner(tmp_path):
    runners: list[Runner] = []

    def start() -> Runner:
        runner = Runner.start(tmp_path / f"var{len(runners)}")
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.close()


# --- the moments ---------------------------------------------------------------------------------


def at_once(_: Runner) -> bool:
    return True


def printed(text: str) -> Callable[[Runner], bool]:
    return lambda runner: runner.printed(text)


def running(marker: str, count: int = 1) -> Callable[[Runner], bool]:
    return lambda runner: runner.running(marker, count)


def up(runner: Runner) -> bool:
    return runner.printed(BANNER_LINE)


@dataclass(frozen=True)
class Moment:
    name: str
    reached: Callable[[Runner], bool]
    delay: float = 0.0  # seconds after the moment
    again_after: float | None = None  # a second signal, while stopping
    starting: bool = True  # certainly before the stack is up

    def __str__(self) -> str:
        return self.name


EVERY_KIND = ("moto_sqs", "gunicorn", "apigw_adapter", "spawn_main", "sqs_poller", "sweeper_timer")


def every_process_started(runner: Runner) -> bool:
    """Every kind of process exists, grandchildren included (2 gunicorn masters + 4 workers)."""
    return runner.running("gunicorn", 6) and all(runner.running(marker) for marker in EVERY_KIND)


_random = random.Random(20261202)  # varied but repeatable moments
MOMENTS = [
    Moment("at once", at_once),
    Moment("handlers installed", printed("starting the stack")),
    Moment("migrating", running("cli migrate")),
    Moment("migrating, a bit later", running("cli migrate"), delay=0.4),
    Moment("seeding", running("cli seed-demo")),
    Moment("moto starting", running("moto_sqs")),
    Moment("gunicorn masters starting", running("gunicorn")),
    Moment("gunicorn workers booting", running("gunicorn", 3)),
    Moment("gunicorn workers booting, a bit later", running("gunicorn", 3), delay=0.5),
    Moment("adapter starting", running("apigw_adapter")),
    Moment("execution environment starting", running("spawn_main")),
    Moment("poller and sweeper starting", running("sweeper_timer")),
    Moment("starting, twice", running("gunicorn", 3), again_after=0.1),
    Moment("every process started", every_process_started, delay=0.5, starting=False),
    *(
        Moment(f"after {delay:.1f}s", at_once, delay=delay, starting=False)
        for delay in sorted(round(_random.uniform(0.5, 8.0), 1) for _ in range(4))
    ),
    Moment("up", up, starting=False),
    Moment("up, twice: the second while stopping", up, again_after=1.0, starting=False),
]
assert len(MOMENTS) == 20


def expect_clean_exit(runner: Runner, code: int, signum: int, moment: Moment) -> None:
    text = runner.text
    if moment.name == "at once" and code == -signum:
        return  # the signal came before Python had run main(): nothing was started
    assert "stopping…" in text, text
    if moment.again_after is not None:
        assert code == 128 + signum, text
        assert "killing what is left" in text, text
    elif "stopped during start-up: every process has exited" in text:
        assert code == 128 + signum, text
    else:
        assert not moment.starting, f"{moment} was a start-up moment, yet the stack came up:\n{text}"
        assert "stopped: every process has exited" in text, text
        assert code == 0, text
    if moment.reached is up and moment.again_after is None:
        assert code == 0 and "stopped: every process has exited" in text, text


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_sigterm_at_any_moment_stops_the_runner_and_every_process_it_started(start_runner, moment):
    runner = start_runner()
    runner.wait_until(moment.reached)
    time.sleep(moment.delay)
    group = MOMENTS.index(moment) % 2 == 1  # SIGTERM to the runner, or to its process group
    runner.signal(signal.SIGTERM, group=group)
    if moment.again_after is not None:
        time.sleep(moment.again_after)
        runner.signal(signal.SIGTERM, group=group)
    code = runner.assert_everything_gone()
    expect_clean_exit(runner, code, signal.SIGTERM, moment)
    if "stopped: every process has exited" in runner.text:
        # The stack was up: every kind of process had been seen, so the check above covered them.
        for marker in EVERY_KIND:
            assert runner.running(marker), f"{marker} never seen: {runner.seen}"


@pytest.mark.parametrize(
    "moment",
    [Moment("gunicorn workers booting", running("gunicorn", 3)), Moment("up", up, starting=False)],
    ids=str,
)
def test_ctrl_c_in_a_terminal_stops_the_runner_and_every_process_it_started(start_runner, moment):
    runner = start_runner()
    runner.wait_until(moment.reached)
    runner.signal(signal.SIGINT, group=True)
    code = runner.assert_everything_gone()
    expect_clean_exit(runner, code, signal.SIGINT, moment)


@pytest.mark.parametrize(
    "moment",
    [
        Moment("migrating", running("cli migrate")),
        # Grandchildren too: gunicorn workers, the adapter's execution environment.
        Moment("every process started", every_process_started, starting=False),
    ],
    ids=str,
)
def test_a_runner_killed_with_sigkill_takes_every_child_and_grandchild_with_it(start_runner, moment):
    runner = start_runner()
    runner.wait_until(moment.reached)
    runner.signal(signal.SIGKILL)
    assert runner.assert_everything_gone(within=5.0) == -signal.SIGKILL
