"""Lambda execution environments, locally: the handler in this process, or in N worker processes.

An environment runs one invocation at a time and keeps its module state (clients, caches) from
one invocation to the next, as Lambda's do. The local API Gateway adapter runs the BFF in a pool
of them; the SQS poller runs the payments handler in one per concurrent batch, as the event source
mapping's `MaximumConcurrency` lets Lambda do.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import threading
import time
from typing import Any, Protocol

from .lambda_context import Handler, LocalLambdaContext, load_handler
from .stop_signals import exit_when_parent_exits


class Invoker(Protocol):
    def invoke(self, event: dict[str, Any], context: LocalLambdaContext, timeout: float) -> Any: ...

    def close(self, grace: float | None = None) -> None: ...


class InProcessInvoker:
    """One execution environment in this process: events run one at a time."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._lock = threading.Lock()

    def invoke(self, event: dict[str, Any], context: LocalLambdaContext, timeout: float) -> Any:
        with self._lock:
            return self.handler(event, context)

    def close(self, grace: float | None = None) -> None:
        pass


_worker_handlers: dict[str, Handler] = {}


def _start_environment(parent_pid: int) -> None:
    # Ctrl-C and a stop of the whole process group reach the environments too: their parent (the
    # adapter or the poller) ends them itself, after the events in hand (ProcessPoolInvoker.close).
    # If it dies, nobody would.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_when_parent_exits(parent_pid)


def _invoke_in_worker(handler_path: str, event: dict[str, Any], context: LocalLambdaContext) -> Any:
    handler = _worker_handlers.get(handler_path)
    if handler is None:  # this worker's cold start
        handler = _worker_handlers[handler_path] = load_handler(handler_path)
    return handler(event, context)


class ProcessPoolInvoker:
    """N execution environments as worker processes (spawned: fresh interpreters, like Lambda)."""

    def __init__(self, handler_path: str, environments: int = 4) -> None:
        self.handler_path = handler_path
        self.environments = environments
        self._lock = threading.Lock()
        self._closed = False
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.environments,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_environment,
            initargs=(os.getpid(),),
        )

    def invoke(self, event: dict[str, Any], context: LocalLambdaContext, timeout: float) -> Any:
        pool = self._pool
        try:
            return pool.submit(_invoke_in_worker, self.handler_path, event, context).result(timeout=timeout)
        except concurrent.futures.process.BrokenProcessPool:
            with self._lock:  # a worker died (as a Lambda environment can): start afresh
                if self._pool is pool and not self._closed:
                    self._pool = self._new_pool()
            raise

    def close(self, grace: float | None = None) -> None:
        """No new events; each environment finishes the one in hand and exits. After `grace`
        seconds (None: no limit) the environments still busy are killed."""
        with self._lock:
            self._closed = True
        if grace is None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + grace
        while multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        for environment in multiprocessing.active_children():
            environment.kill()
        for environment in multiprocessing.active_children():
            environment.join(timeout=5)
