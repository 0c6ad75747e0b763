"""SIGINT/SIGTERM for the local runners (adapter, poller, sweeper timer), without deadlocks.

A Python signal handler runs in the main thread between two bytecodes, possibly while that
thread holds a lock: inside `threading.Event.wait()`, a handler calling `Event.set()` waits for
the Event's own lock forever. So a `StopFlag` is a plain attribute that a handler may set, and
waiting on it is a series of short sleeps (a signal cuts a sleep short: the handler runs, then
the sleep goes on for what is left of its tenth of a second).
"""

from __future__ import annotations

import os
import signal
import threading
import time

_TICK_SECONDS = 0.1


class StopFlag:
    """Set from a signal handler or any thread; `wait()` returns within a tick of it."""

    def __init__(self) -> None:
        self.requested = False

    def set(self, *_: object) -> None:
        """Usable as a signal handler itself."""
        self.requested = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if a stop is requested; True once it is."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, _TICK_SECONDS))
        return self.requested

    def on_signals(self, *signums: int) -> StopFlag:
        """Set on SIGINT and SIGTERM (or the given signals)."""
        for signum in signums or (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.set)
        return self


def exit_when_parent_exits(parent_pid: int, poll_seconds: float = 0.25) -> threading.Thread:
    """End this process when `parent_pid` is no longer its parent (it died; we were re-parented).

    For processes whose parent manages their life and which must not outlive it, where the
    kernel's parent-death signal does not fit: it fires when the *thread* that forked the child
    ends, and e.g. a ProcessPoolExecutor starts its workers from whichever thread submits.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="parent-watch", daemon=True)
    watcher.start()
    return watcher
