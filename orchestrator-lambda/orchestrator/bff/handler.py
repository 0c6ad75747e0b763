"""BFF Lambda entry point: `orchestrator.bff.handler.lambda_handler` (template.yaml).

The cold start's imports (invocation.py and all it needs) run with the cyclic garbage collector
paused: they allocate hundreds of thousands of objects that live as long as the execution
environment, and the collector would walk them again and again while they load (about a fifth
of the import's CPU here; `python -m bench.coldstart`). Once loaded they are moved to the
permanent generation (`gc.freeze`), so later collections during requests skip them too.
"""

from __future__ import annotations

import gc

gc.disable()
try:
    from .invocation import lambda_handler
finally:
    gc.freeze()
    gc.enable()

__all__ = ["lambda_handler"]
