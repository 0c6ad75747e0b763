"""The sweeper's EventBridge schedule, locally: invoke its handler every N seconds.

    python -m orchestrator.local.sweeper_timer [--interval 30] [--once]

Each tick sends the event a `rate(...)` schedule sends. A failed run is logged and the next
tick comes as usual (EventBridge would retry; the sweeper's steps are idempotent either way).
SIGINT/SIGTERM stop it between runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import uuid
from datetime import UTC, datetime
from typing import Any

from .lambda_context import (
    LOCAL_ACCOUNT_ID,
    Handler,
    LocalLambdaContext,
    ensure_local_aws_credentials,
    load_handler,
    log_json,
)
from .stop_signals import StopFlag

DEFAULT_HANDLER = "orchestrator.sweeper.handler.lambda_handler"
DEFAULT_FUNCTION_NAME = "SweeperFunction"


def scheduled_event(now: datetime | None = None, region: str = "us-east-1") -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/local-sweeper-schedule"],
        "detail": {},
    }


class SweeperTimer:
    def __init__(
        self, handler: Handler, interval_seconds: float, *, function_name: str = DEFAULT_FUNCTION_NAME
    ) -> None:
        self.handler = handler
        self.interval_seconds = interval_seconds
        self.function_name = function_name
        self._stop = StopFlag()  # stop() may be a signal handler's call

    def tick(self) -> Any:
        """One scheduled invocation; returns the handler's result, or None if it failed."""
        try:
            return self.handler(scheduled_event(), LocalLambdaContext(self.function_name, timeout_seconds=60))
        except Exception as exc:
            log_json("sweep_failed", logger="sweeper_timer", level="ERROR", error=f"{type(exc).__name__}: {exc}")
            return None

    def run(self) -> None:
        while not self._stop.requested:
            self.tick()
            self._stop.wait(self.interval_seconds)

    def stop(self) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the sweeper Lambda on a timer.")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between runs")
    parser.add_argument("--handler", default=DEFAULT_HANDLER)
    parser.add_argument("--once", action="store_true", help="run once and exit (non-zero if it failed)")
    args = parser.parse_args(argv)
    ensure_local_aws_credentials(os.environ.get("AWS_ENDPOINT_URL_SQS"))  # the sweeper publishes to SQS
    timer = SweeperTimer(load_handler(args.handler), args.interval)
    if args.once:
        raise SystemExit(0 if timer.tick() is not None else 1)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: timer.stop())
    timer.run()


if __name__ == "__main__":
    main()
