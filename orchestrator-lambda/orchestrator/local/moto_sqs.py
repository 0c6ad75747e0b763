"""moto's server (`python -m moto.server`) for the local stack, without four per-request costs.

moto stands in for SQS locally; in AWS none of this runs. Profiled under the bench's BFF load
(bench/README.md, "moto under a backlog"), three of moto 5.2's costs are work that real SQS does
not do per request:

- `Message.visible` and `Message.delayed` read the clock through `moto.core.utils.unix_time_millis`,
  which builds two datetimes and subtracts them. Every SendMessage reads every queued message's
  state twice over (it asks the queue for all its attributes to read one) and every
  ReceiveMessage once, so with 2,000 messages queued one SendMessage cost 61 ms instead of 15.
  The same number, milliseconds since the epoch, comes from `time.time()` for a fraction of it.
- The dispatcher lists moto's package directory (`os.listdir` and an `isdir` per entry, about 150)
  for every request to tell which service it is for. That listing never changes while the
  server runs, so it is read once.
- Every SendMessage reads one queue attribute (`ContentBasedDeduplication`) through
  `Queue.attributes`, which counts the queue's messages three times over to build the three
  `ApproximateNumberOf*` entries it then throws away: 40 % of moto's CPU per send with a few
  thousand messages queued. The attributes are still built by moto's own property, but those three
  counts are made when they are read (`QueueAttributes`), as GetQueueAttributes does.

The fourth is the server: moto serves its WSGI application with Werkzeug's development server,
which closes every connection after its answer on purpose, so every SendMessage and
ReceiveMessage opened a TCP connection (a name lookup and a connect on the client, a new thread
in moto). Here it runs under gunicorn instead (one process, so one in-memory SQS; threads for concurrent requests and
long polls), which keeps connections open and answers in one send (`servicekit.gunicorn_response`).

The replacements return what the originals return (tests/test_moto_sqs.py compares them); the
queue semantics (visibility, delays, redrive) are moto's own, which the SQS integration tests run
against this server. Run as `python -m orchestrator.local.moto_sqs -H HOST -p PORT` (moto's own
`-H` and `-p`).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import moto.backends
import moto.sqs.models
from gunicorn.app.base import BaseApplication
from moto.core import utils as moto_utils

from servicekit import gunicorn_response


def epoch_millis(dt: datetime.datetime | None = None) -> float:
    """`moto.core.utils.unix_time_millis`: now (or a naive UTC `dt`) in ms since the epoch."""
    if dt is None:
        return time.time() * 1000.0
    return moto_utils.unix_time_millis(dt)


def listed_once(list_modules: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    """`moto.backends.list_of_moto_modules`, read from disk once."""
    return functools.cache(lambda: tuple(list_modules()))


# The attributes whose value is a count of the queue's messages, and the Queue property it reads.
COUNTED_ATTRIBUTES = {
    "ApproximateNumberOfMessages": "approximate_number_of_messages",
    "ApproximateNumberOfMessagesDelayed": "approximate_number_of_messages_delayed",
    "ApproximateNumberOfMessagesNotVisible": "approximate_number_of_messages_not_visible",
}
_COUNT_PROPERTIES = frozenset(COUNTED_ATTRIBUTES.values())


class _Uncounted:
    """A queue as moto's `attributes` property reads it, but with its message counts at 0."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def __getattr__(self, name: str) -> Any:
        return 0 if name in _COUNT_PROPERTIES else getattr(self._queue, name)


class QueueAttributes(Mapping[str, Any]):
    """What moto's `Queue.attributes` returns (the same keys in the same order, the same values),
    built by moto's own property, except that the three message counts are made when read."""

    def __init__(self, queue: Any, build: Callable[[Any], dict[str, Any]]) -> None:
        self._queue = queue
        self._values = build(_Uncounted(queue))

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        counted = COUNTED_ATTRIBUTES.get(name)
        return getattr(self._queue, counted) if counted else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def counted_when_read(attributes: property) -> property:
    """`Queue.attributes`, returning a `QueueAttributes` over what the original property builds."""
    build = attributes.fget
    assert build is not None
    return property(lambda queue: QueueAttributes(queue, build))


def install() -> None:
    """Swap the replacements in, in this process (moto's server, before it serves). A moto whose
    names moved (a new version) fails here, rather than serving without them."""
    queue = moto.sqs.models.Queue
    for module, name in ((moto.sqs.models, "unix_time_millis"), (moto.backends, "list_of_moto_modules")):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"moto {moto.__version__}: {module.__name__}.{name} is gone; revisit moto_sqs.py")
    for name in ("attributes", *_COUNT_PROPERTIES):
        if not isinstance(queue.__dict__.get(name), property):
            raise RuntimeError(f"moto {moto.__version__}: Queue.{name} is not a property; revisit moto_sqs.py")
    moto.sqs.models.unix_time_millis = epoch_millis  # the name SQS's models call
    moto.backends.list_of_moto_modules = listed_once(moto.backends.list_of_moto_modules)
    queue.attributes = counted_when_read(queue.attributes)


# Threads serve requests at once, long polls included (up to 20 s each: the payments poller keeps
# a few open); idle keep-alive connections hold no thread.
SERVER_THREADS = 32


class MotoServer(BaseApplication):
    """moto's WSGI application in one gunicorn worker process (moto keeps SQS in its memory)."""

    def __init__(self, host: str, port: int) -> None:
        self.options = {
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": SERVER_THREADS,
            # An idle connection is closed after this; urllib3's pools see that before reusing one.
            "keepalive": 75,
            "timeout": 120,
            "graceful_timeout": 2,  # a long poll in flight is not worth waiting for at shutdown
            "accesslog": None,  # one line per request would be most of the log; errors still go to stderr
            "loglevel": "warning",
            "control_socket_disable": True,
        }
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from moto.server import DomainDispatcherApplication, create_backend_app

        return DomainDispatcherApplication(create_backend_app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto's SQS for the local stack")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("MOTO_PORT", "5000")))
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds its queue URLs with it
    install()
    gunicorn_response.install()
    MotoServer(args.host, args.port).run()


if __name__ == "__main__":
    main()
