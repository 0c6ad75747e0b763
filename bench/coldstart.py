"""The BFF's cold start, measured on the `sam build` output (bench/README.md, "Cold start").

    .venv/bin/python -m bench.coldstart [--runs 5] [--build-dir DIR]      (also run by `make bench`)

A cold start is what a new execution environment pays before it answers like a warm one: the
import of the handler module (Lambda's init phase) plus what the first request initialises
(secrets and keys, the HTTP sessions, the SQS client). Each run is a new python3.12 process
started the way Lambda's runtime starts one: `-S` (no site-packages: the function's package and
the ServiceKit layer are all there is), `-B` (the package's directory is read-only in Lambda, so
nothing is written). It imports the handler, then invokes it with real create-and-confirm
requests against the bench stack (orders created, confirmed, their payment events published),
each a new order with its own key:

    cold start = import + (first request - median of the warm requests after it)

The warm median takes the downstream calls out, so what remains is initialisation. Both wall
time and the process's CPU time are reported; CPU time is what a 512 MB Lambda (a fraction of a
core) stretches.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from orchestrator.local.apigw_adapter import build_event
from servicekit.auth import mint_user_token

from . import ROOT, log
from .fixtures import expect
from .target import Target

FUNCTIONS = {
    "OrchestratorFunction": "orchestrator.bff.handler",
    "PaymentsFunction": "orchestrator.payments.handler",
    "SweeperFunction": "orchestrator.sweeper.handler",
}
TARGET_MS = 250.0
WARM_REQUESTS = 5

# Runs inside the measured process: stdlib only until the handler is imported.
_CHILD = r"""
import json, resource, sys, time

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

spec = json.loads(sys.argv[1])
sys.path[:0] = spec["path"]
wall, used = time.perf_counter(), cpu()
module = __import__(spec["module"], fromlist=["lambda_handler"])
result = {"import_ms": (time.perf_counter() - wall) * 1000, "import_cpu_ms": (cpu() - used) * 1000, "requests": []}

class Context:
    function_name = "bench-coldstart"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench-coldstart"
    memory_limit_in_mb = 512
    log_group_name = "/aws/lambda/bench-coldstart"
    log_stream_name = "bench"
    def __init__(self, n):
        self.aws_request_id = f"bench-coldstart-{n}"
        self.deadline = time.time() + 29
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.time()) * 1000)

for n, event in enumerate(spec["events"]):
    wall, used = time.perf_counter(), cpu()
    response = module.lambda_handler(event, Context(n))
    result["requests"].append(
        {"ms": (time.perf_counter() - wall) * 1000, "cpu_ms": (cpu() - used) * 1000, "status": response["statusCode"]}
    )
with open(spec["out"], "w") as out:
    json.dump(result, out)
"""


@dataclass
class ColdStart:
    import_ms: float
    import_cpu_ms: float
    first_ms: float
    first_cpu_ms: float
    warm_ms: float
    warm_cpu_ms: float

    @property
    def cold_ms(self) -> float:
        return self.import_ms + max(0.0, self.first_ms - self.warm_ms)

    @property
    def cold_cpu_ms(self) -> float:
        return self.import_cpu_ms + max(0.0, self.first_cpu_ms - self.warm_cpu_ms)


def find_python312() -> str:
    """PYTHON312, else python3.12 on PATH, else a pyenv-installed 3.12 (as scripts/check_sam.sh)."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [os.environ.get("PYTHON312"), shutil.which("python3.12")]
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.12*/bin/python3.12"), reverse=True)
    check = "import sys; assert sys.version_info[:2] == (3, 12)"
    for candidate in filter(None, candidates):
        # pyenv's shim is on PATH even where it has no 3.12 selected: ask the interpreter itself.
        if subprocess.run([candidate, "-c", check], capture_output=True, check=False).returncode == 0:
            return candidate
    raise SystemExit("python3.12 not found: install it or set PYTHON312=/path/to/python3.12")


def sam_build(build_dir: Path, python312: str) -> None:
    """`sam build` of template.yaml into build_dir (SAM CLI from .venv-tools: `make install`)."""
    sam = ROOT / ".venv-tools" / "bin" / "sam"
    if not sam.exists():
        raise SystemExit(f"{sam} is missing: run `make install`")
    env = {
        **os.environ,
        "PATH": f"{Path(python312).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "SAM_CLI_TELEMETRY": "0",
    }
    log(f"sam build into {build_dir} (python {python312})")
    cache = build_dir.parent / "sam-cache"
    command = [str(sam), "build", "--template-file", "template.yaml", "--build-dir", str(build_dir)]
    completed = subprocess.run(
        [*command, "--cache-dir", str(cache)], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"sam build failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")


def package_sizes(build_dir: Path) -> dict[str, float]:
    """MiB per function package and the layer (unzipped, bytecode included)."""
    sizes = {}
    for name in [*FUNCTIONS, "ServiceKitLayer"]:
        files = [p for p in (build_dir / name).rglob("*") if p.is_file()]
        sizes[name] = round(sum(p.stat().st_size for p in files) / 2**20, 1)
    return sizes


def _order_event(token: str, customer_id: int, product_id: int) -> dict[str, Any]:
    body = json.dumps({"customer_id": customer_id, "items": [{"product_id": product_id, "qty": 1}]}).encode()
    headers = [
        ("Authorization", f"Bearer {token}"),
        ("Content-Type", "application/json"),
        ("Idempotency-Key", f"coldstart-{uuid.uuid4()}"),
    ]
    return build_event(
        method="POST",
        target="/orchestrator/create-and-confirm-order",
        headers=headers,
        body=body,
        source_ip="127.0.0.1",
    )


def _fixtures(target: Target) -> tuple[str, int, int]:
    """A customer's token, its id and a product with stock, made through the services' APIs."""
    run = uuid.uuid4().hex[:8]
    admin = mint_user_token(target.user_ring, user_id=900002, role="admin", customer_id=None, ttl_seconds=3600)
    headers = {"Authorization": f"Bearer {admin}"}
    customer = requests.post(
        target.url("customers") + "/customers",
        json={"name": f"Cold start {run}", "email": f"cold.{run}@bench.example"},
        headers=headers,
        timeout=10,
    )
    product = requests.post(
        target.url("orders") + "/products",
        json={"sku": f"COLD-{run}", "name": "Cold start item", "price_cents": 100, "stock": 10**6},
        headers=headers,
        timeout=10,
    )
    customer_id = expect(customer, 201, "cold start: customer")["id"]
    product_id = expect(product, 201, "cold start: product")["id"]
    token = mint_user_token(
        target.user_ring, user_id=900003, role="customer", customer_id=customer_id, ttl_seconds=3600
    )
    return token, customer_id, product_id


def measure_once(python312: str, build_dir: Path, env: dict[str, str], events: list[dict[str, Any]]) -> ColdStart:
    with tempfile.TemporaryDirectory(prefix="coldstart-") as work:
        out = Path(work) / "result.json"
        spec = {
            "path": [str(build_dir / "OrchestratorFunction"), str(build_dir / "ServiceKitLayer" / "python")],
            "module": FUNCTIONS["OrchestratorFunction"],
            "events": events,
            "out": str(out),
        }
        completed = subprocess.run(
            [python312, "-S", "-B", "-c", _CHILD, json.dumps(spec)],
            cwd=work,  # nothing of the repository on sys.path
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if completed.returncode != 0 or not out.exists():
            raise SystemExit(f"cold start run failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
        result = json.loads(out.read_text())
    statuses = [r["status"] for r in result["requests"]]
    if any(status != 201 for status in statuses):
        raise SystemExit(f"cold start run: the BFF answered {statuses}, expected 201 each")
    first, warm = result["requests"][0], result["requests"][1:]
    return ColdStart(
        import_ms=result["import_ms"],
        import_cpu_ms=result["import_cpu_ms"],
        first_ms=first["ms"],
        first_cpu_ms=first["cpu_ms"],
        warm_ms=statistics.median(r["ms"] for r in warm),
        warm_cpu_ms=statistics.median(r["cpu_ms"] for r in warm),
    )


def lambda_env(target: Target) -> dict[str, str]:
    """The BFF's environment as the stack gives it to its local Lambda, plus AWS-like settings."""
    if target.started is None:
        raise SystemExit("the cold start needs a stack started by the bench (its queue and keys): pass --fresh-stack")
    env = target.started.service_env("bff")
    env.update(
        PATH=os.environ.get("PATH", "/usr/bin:/bin"),
        LANG="C.UTF-8",
        AWS_LAMBDA_FUNCTION_NAME="bench-coldstart",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        POWERTOOLS_METRICS_NAMESPACE="B2BPlatform",
    )
    env.pop("PYTHONPATH", None)
    return env


def run(target: Target, runs: int, build_dir: Path | None = None) -> dict[str, Any]:
    """Build (unless given a build), measure `runs` cold starts, return the summary."""
    python312 = find_python312()
    with tempfile.TemporaryDirectory(prefix="bench-sam-") as scratch:
        if build_dir is None:
            build_dir = Path(scratch) / "build"
            sam_build(build_dir, python312)
        env = lambda_env(target)
        token, customer_id, product_id = _fixtures(target)
        samples = []
        for n in range(runs):
            events = [_order_event(token, customer_id, product_id) for _ in range(1 + WARM_REQUESTS)]
            sample = measure_once(python312, build_dir, env, events)
            log(
                f"  cold start {n + 1}/{runs}: import {sample.import_ms:.0f} ms, first request "
                f"{sample.first_ms:.0f} ms, warm {sample.warm_ms:.0f} ms -> {sample.cold_ms:.0f} ms "
                f"(CPU {sample.cold_cpu_ms:.0f} ms)"
            )
            samples.append(sample)
        sizes = package_sizes(build_dir)

    def median(field: str) -> float:
        return round(statistics.median(getattr(s, field) for s in samples), 1)

    summary = {
        "runs": runs,
        "import_ms": median("import_ms"),
        "import_cpu_ms": median("import_cpu_ms"),
        "first_request_ms": median("first_ms"),
        "warm_request_ms": median("warm_ms"),
        "cold_start_ms": median("cold_ms"),
        "cold_start_cpu_ms": median("cold_cpu_ms"),
        "target_ms": TARGET_MS,
        "package_mib": sizes,
    }
    summary["passed"] = summary["cold_start_ms"] <= TARGET_MS
    return summary


def describe(summary: dict[str, Any]) -> str:
    sizes = ", ".join(f"{name} {mib} MiB" for name, mib in summary["package_mib"].items())
    verdict = "meets" if summary["passed"] else "MISSES"
    return (
        f"BFF cold start (median of {summary['runs']}): {summary['cold_start_ms']:.0f} ms "
        f"(CPU {summary['cold_start_cpu_ms']:.0f} ms) = import {summary['import_ms']:.0f} ms + first request "
        f"{summary['first_request_ms']:.0f} ms - warm {summary['warm_request_ms']:.0f} ms; {verdict} the "
        f"{summary['target_ms']:.0f} ms target\npackages (unzipped): {sizes}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from .cli import parse_args
    from .target import prepare_target

    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build-dir", type=Path, help="an existing `sam build` output (default: build one)")
    own, rest = parser.parse_known_args(argv)
    args = parse_args([*rest, "--fresh-stack"] if "--fresh-stack" not in rest else rest)
    target = prepare_target(args)
    try:
        summary = run(target, own.runs, own.build_dir)
    finally:
        if target.started:
            target.started.stop()
    log(describe(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
