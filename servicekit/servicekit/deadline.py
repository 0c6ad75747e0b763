"""A time budget for the work in hand (a Lambda invocation), read before every downstream step.

A Lambda is killed at its timeout; behind API Gateway the client then gets the gateway's bare
503, and an SQS batch comes back whole. So the entry point opens a budget from
`context.get_remaining_time_in_millis()` minus a margin for answering, and every downstream step
asks what is left: `ServiceClient` shortens its timeouts and stops retrying inside the budget,
SQS sends and gateway charges do the same, and a step that cannot fit is not started.

The budget lives in a context variable, so code deep in a call does not need it passed along;
outside any budget nothing is limited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .problems import Problem

_deadline: ContextVar[float | None] = ContextVar("servicekit_deadline", default=None)


@contextmanager
def time_budget(seconds: float | None) -> Iterator[float | None]:
    """Run the block with `seconds` to spend (None: no budget). Yields the `time.monotonic()` deadline."""
    deadline = None if seconds is None else time.monotonic() + seconds
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left in the budget (never negative), or None outside a budget."""
    deadline = _deadline.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def has_time_for(seconds: float) -> bool:
    left = remaining()
    return left is None or left >= seconds


def capped(seconds: float) -> float:
    """`seconds`, or what is left of the budget if that is less."""
    left = remaining()
    return seconds if left is None else min(seconds, left)


class BudgetExhausted(Problem):
    """Not enough time left to start a step: a 503 the client may retry (with its key)."""

    def __init__(self, step: str) -> None:
        super().__init__(
            503,
            "time_budget_exhausted",
            f"The request ran out of time before {step}; retry it (with the same Idempotency-Key)",
            headers={"Retry-After": "1"},
            extra={"step": step},
        )
        self.step = step


def ensure_time_for(step: str, seconds: float) -> None:
    """Raise `BudgetExhausted` unless `seconds` are left for `step`."""
    if not has_time_for(seconds):
        raise BudgetExhausted(step)
