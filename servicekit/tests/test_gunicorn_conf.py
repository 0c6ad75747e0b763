"""The shared gunicorn settings' hooks (servicekit.gunicorn_conf), each in a fresh interpreter:
the hooks change process-wide state (gevent's server class), as they do in a worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("gevent")


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


@pytest.mark.parametrize(("worker_class", "expected"), [("gevent", "1"), ("gthread", "100")])
def test_a_gevent_worker_accepts_one_connection_per_wake_up(worker_class, expected):
    """With gevent's default (up to 100 per wake-up) the first worker to wake takes every pending
    connection of a burst; one at a time, the workers sharing the socket take turns."""
    out = run(
        f"""
        from types import SimpleNamespace
        from gevent.baseserver import BaseServer
        from servicekit import gunicorn_conf

        worker = SimpleNamespace(cfg=SimpleNamespace(worker_class_str={worker_class!r}))
        gunicorn_conf.post_worker_init(worker)
        print(BaseServer.max_accept)
        """
    )
    assert out == expected


@pytest.mark.parametrize("worker_class", ["gevent", "gthread"])
def test_a_worker_freezes_what_its_app_loaded_and_collects_young_objects_less_often(worker_class):
    """Full collections then skip the objects loaded once (a pause of tens of milliseconds each
    under load before); the youngest generation waits for 10,000 net new objects, not 700."""
    out = run(
        f"""
        import gc
        from types import SimpleNamespace
        from servicekit import gunicorn_conf

        loaded = [{{"object": i}} for i in range(5000)]  # what an app's import leaves alive
        before = gc.get_freeze_count()
        worker = SimpleNamespace(cfg=SimpleNamespace(worker_class_str={worker_class!r}))
        gunicorn_conf.post_worker_init(worker)
        print(before, gc.get_freeze_count() >= len(loaded), gc.get_threshold()[0])
        """
    )
    assert out == "0 True 10000"
