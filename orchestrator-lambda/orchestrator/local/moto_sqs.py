"""moto's server (`python -m moto.server`) for the local stack, without two per-request costs.

moto stands in for SQS locally; in AWS none of this runs. Profiled under the bench's BFF load
(bench/README.md, "moto under a backlog"), two of moto 5.2's costs grow with work that real SQS
does not do per request:

- `Message.visible` and `Message.delayed` read the clock through `moto.core.utils.unix_time_millis`,
  which builds two datetimes and subtracts them. Every SendMessage reads every queued message's
  state twice over (it asks the queue for all its attributes to read one) and every
  ReceiveMessage once, so with 2,000 messages queued one SendMessage cost 61 ms instead of 15.
  The same number, milliseconds since the epoch, comes from `time.time()` for a fraction of it.
- The dispatcher lists moto's package directory (`os.listdir` and an `isdir` per entry, about 150)
  for every request to tell which service it is for. That listing never changes while the
  server runs, so it is read once.

Both replacements return what the originals return (tests/test_moto_sqs.py compares them); the
queue semantics (visibility, delays, redrive) are moto's own, which the SQS integration tests run
against this server. Run as `python -m orchestrator.local.moto_sqs -H HOST -p PORT`: moto's own
command line.
"""

from __future__ import annotations

import datetime
import functools
import time
from collections.abc import Callable, Iterable

import moto.backends
import moto.sqs.models
from moto.core import utils as moto_utils


def epoch_millis(dt: datetime.datetime | None = None) -> float:
    """`moto.core.utils.unix_time_millis`: now (or a naive UTC `dt`) in ms since the epoch."""
    if dt is None:
        return time.time() * 1000.0
    return moto_utils.unix_time_millis(dt)


def listed_once(list_modules: Callable[[], Iterable[str]]) -> Callable[[], tuple[str, ...]]:
    """`moto.backends.list_of_moto_modules`, read from disk once."""
    return functools.cache(lambda: tuple(list_modules()))


def install() -> None:
    """Swap the two in, in this process (moto's server, before it serves). A moto whose names
    moved (a new version) fails here, rather than serving with neither swap in place."""
    for module, name in ((moto.sqs.models, "unix_time_millis"), (moto.backends, "list_of_moto_modules")):
        if not callable(getattr(module, name, None)):
            raise RuntimeError(f"moto {moto.__version__}: {module.__name__}.{name} is gone; revisit moto_sqs.py")
    moto.sqs.models.unix_time_millis = epoch_millis  # the name SQS's models call
    moto.backends.list_of_moto_modules = listed_once(moto.backends.list_of_moto_modules)


def main() -> None:
    install()
    from moto.server import main as moto_main

    moto_main()


if __name__ == "__main__":
    main()
