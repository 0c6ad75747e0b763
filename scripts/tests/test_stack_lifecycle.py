"""How scripts/stack.py starts and stops a process: tied to the runner's life, SIGTERM again when
the first one was lost, SIGKILL at once when forced. (The whole runner under signals:
tests-e2e/test_runner_signals.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SCRIPTS))

from stack import PARENT_DEATH_SIGNAL, ManagedProcess, StopRequest  # noqa: E402

# A child that misses the first SIGTERM (as a gunicorn worker does while it boots with its
# master's handlers), then exits cleanly on the next one.
LATE_HANDLER = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(1.5)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(1)
"""
DEAF = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(probe, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def managed(tmp_path: Path, code: str) -> ManagedProcess:
    return ManagedProcess(
        name="child",
        argv=[sys.executable, "-c", code],
        env=dict(os.environ),
        log_path=tmp_path / "child.log",
        ready_markers=("ready",),
    )


def test_stop_repeats_sigterm_until_the_process_listens(tmp_path):
    child = managed(tmp_path, LATE_HANDLER)
    child.start(timeout=30)
    child.stop(timeout=30)
    assert child.process is not None and child.process.returncode == 0  # its own clean exit, no SIGKILL


def test_a_forced_stop_kills_at_once(tmp_path):
    child = managed(tmp_path, DEAF)
    child.start(timeout=30)
    child.stop(timeout=600, force=lambda: True)  # the test's own timeout would catch a 600 s wait
    assert child.process is not None and child.process.returncode == -signal.SIGKILL


def test_a_start_after_a_stop_request_starts_nothing(tmp_path):
    request = StopRequest()
    request.signal(signal.SIGTERM)
    child = managed(tmp_path, DEAF)
    with pytest.raises(KeyboardInterrupt):
        child.start(cancel=request)
    assert child.process is None


def test_stop_requests_count_what_signal_handlers_record():
    request = StopRequest()
    assert not request.is_set()
    request.signal(signal.SIGINT)
    request.signal(signal.SIGTERM)
    assert request.is_set() and request.count == 2 and request.signum == signal.SIGTERM


RUNNER = """
import sys, threading, time
sys.path.insert(0, {scripts!r})
from stack import ManagedProcess
from pathlib import Path

child = ManagedProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(300)"], {{}}, Path({log!r}))


def start():
    child.start(wait=False)
    # Through the launcher: return once it has exec'd the sleeper, whose tie is set by then.
    while b"die_with_parent" in Path(f"/proc/{{child.pid}}/cmdline").read_bytes():
        time.sleep(0.01)


starter = threading.Thread(target=start)
starter.start()
starter.join()  # the thread that asked for the child is gone
print(child.pid, flush=True)
time.sleep(300)
"""


@pytest.mark.skipif(not PARENT_DEATH_SIGNAL, reason="the parent-death signal is Linux's")
def test_a_child_outlives_the_thread_that_started_it_but_not_a_killed_runner(tmp_path):
    script = RUNNER.format(scripts=str(SCRIPTS), log=str(tmp_path / "sleeper.log"))
    runner = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout is not None
        child_pid = int(runner.stdout.readline())
        time.sleep(0.5)
        assert alive(child_pid), "the child died with the thread that started it"
        runner.kill()
        runner.wait()
        wait_until(lambda: not alive(child_pid), 10, "the child to die with its runner")
    finally:
        runner.kill()
