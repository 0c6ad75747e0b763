#!/usr/bin/env python3
"""Hold or release the payments consumer of a running `make run` stack.

    .venv/bin/python scripts/payments_consumer.py hold      # finish the batch in hand, take no more
    .venv/bin/python scripts/payments_consumer.py release   # take messages again

Held, the SQS poller leaves payment events in the queue, so the front door (the BFF) can be
measured alone, and the backlog's drain rate afterwards (`make bench`, the peer comparison). It
signals the poller found in the stack's state file (`var/stack-state.json`, written by
scripts/stack.py; `STACK_VAR_DIR` moves it): SIGUSR1 holds, SIGUSR2 releases.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE_FILE_NAME = "stack-state.json"
POLLER_MODULE = "orchestrator.local.sqs_poller"
SIGNALS = {"hold": signal.SIGUSR1, "release": signal.SIGUSR2}


class ConsumerNotFound(RuntimeError):
    pass


def poller_pid(var_dir: Path) -> int:
    """The pid of the running payments poller, checked against the process table (a stale state
    file must never make us signal some other process)."""
    state_path = var_dir / STATE_FILE_NAME
    try:
        pid = int(json.loads(state_path.read_text())["processes"]["payments"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConsumerNotFound(f"no running stack found ({state_path}: {exc}); is `make run` up?") from None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        raise ConsumerNotFound(f"the payments poller (pid {pid}) is not running") from None
    if POLLER_MODULE not in cmdline:
        raise ConsumerNotFound(f"pid {pid} is not the payments poller any more (stale {state_path})")
    return pid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Hold or release the payments consumer of `make run`.")
    parser.add_argument("action", choices=sorted(SIGNALS))
    parser.add_argument("--var-dir", type=Path, default=Path(os.environ.get("STACK_VAR_DIR") or ROOT / "var"))
    args = parser.parse_args(argv)
    try:
        pid = poller_pid(args.var_dir)
    except ConsumerNotFound as exc:
        print(exc, file=sys.stderr)
        return 1
    os.kill(pid, SIGNALS[args.action])
    print(f"payments consumer (pid {pid}): {args.action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
