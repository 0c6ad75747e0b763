"""Each invocation's time budget: what the Lambda runtime says is left, minus a margin to answer.

The margin is what finishing takes after the last downstream step: serialising the answer, the
batch response, flushing metrics. Every downstream step reads the budget (`servicekit.deadline`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from servicekit.deadline import time_budget


@contextmanager
def invocation_budget(context: Any, margin_seconds: float) -> Iterator[float | None]:
    """The rest of the invocation minus `margin_seconds`; no budget when the context has no clock."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    seconds = None if remaining_ms is None else max(0.0, remaining_ms() / 1000 - margin_seconds)
    with time_budget(seconds) as deadline:
        yield deadline
