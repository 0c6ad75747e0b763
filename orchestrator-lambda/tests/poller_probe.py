"""A stand-in for the payments handler in the poller's concurrency test (test_integration_sqs.py).

Each batch leaves a mark named after its process, then waits (up to 10 s) until PROBE_EXPECTED
marks exist, i.e. that many batches are in flight at once, and writes whether that happened.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    directory = Path(os.environ["PROBE_DIR"])
    mark = directory / f"{os.getpid()}-{uuid.uuid4().hex}"
    mark.write_text("started")
    deadline = time.monotonic() + 10
    while len(list(directory.iterdir())) < int(os.environ["PROBE_EXPECTED"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    mark.write_text("together" if len(list(directory.iterdir())) >= int(os.environ["PROBE_EXPECTED"]) else "alone")
    return {"batchItemFailures": []}
