"""Long C calls that release the GIL (argon2's password hashing), kept off a gevent worker's loop.

A gevent worker serves all its requests on one thread: a call that runs for tens of milliseconds
in C stops every other request of that worker, GIL released or not. `off_the_loop` runs such a
call on a small pool of native threads instead and waits for it cooperatively, so the worker's
other requests go on meanwhile. At most `BLOCKING_THREADS` (default: `GUNICORN_THREADS`, else 4)
run at once per worker: argon2 takes 64 MiB per hash, the bound a gthread worker of as many
threads had. Outside gevent (tests, the CLI, gthread workers) it is a plain call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .db import gevent_patched

T = TypeVar("T")

_pool: Any = None
_pool_lock = threading.Lock()


def _threads() -> int:
    return max(1, int(os.environ.get("BLOCKING_THREADS") or os.environ.get("GUNICORN_THREADS") or "4"))


def _gevent_pool() -> Any:
    global _pool
    with _pool_lock:
        if _pool is None:
            from gevent.threadpool import ThreadPool

            _pool = ThreadPool(maxsize=_threads())
        return _pool


def off_the_loop(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)`, on a native thread when this process is a gevent worker."""
    if not gevent_patched():
        return call(*args)
    return _gevent_pool().apply(call, args)
