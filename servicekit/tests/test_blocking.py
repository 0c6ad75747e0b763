"""servicekit.blocking: a long C call under gevent runs on a native thread, and the worker's other
greenlets go on meanwhile; outside gevent it is a plain call. The gevent case runs in a fresh
interpreter, because monkey-patching changes the process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from servicekit.blocking import off_the_loop

pytest.importorskip("gevent")
argon2 = pytest.importorskip("argon2")


def test_outside_gevent_it_is_a_plain_call():
    assert off_the_loop(threading.get_ident) == threading.get_ident()


def test_under_gevent_a_hash_lets_the_other_greenlets_run():
    script = "from gevent import monkey\nmonkey.patch_all()\n" + textwrap.dedent(
        """
        import threading, time
        import gevent
        from argon2 import PasswordHasher
        from servicekit.blocking import off_the_loop

        hasher = PasswordHasher(time_cost=12)  # long enough to see the loop go on
        loop_thread = threading.get_ident()
        ticks, where = [], []

        def hash_it():
            where.append(off_the_loop(threading.get_ident))
            started = time.monotonic()
            off_the_loop(hasher.hash, "a password")
            where.append(time.monotonic() - started)

        def tick():
            for _ in range(5):
                gevent.sleep(0.01)
                ticks.append(len(where))

        gevent.joinall([gevent.spawn(hash_it), gevent.spawn(tick)], raise_error=True)
        print(where[0] != loop_thread, where[1] > 0.1, ticks)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    other_thread, slow_enough, ticks = result.stdout.strip().split(" ", 2)
    assert other_thread == "True" and slow_enough == "True", result.stdout
    # The ticker ran while the hash was in progress (one entry in `where`: its thread, no time yet).
    assert "1" in ticks.strip("[]").split(", "), ticks
