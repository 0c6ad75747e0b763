"""Checks the Lambda packages of a `sam build` (scripts/check_sam.sh runs it with python3.12 -S).

    python3.12 -S scripts/check_lambda_packages.py BUILD_DIR

Each function carries only what it needs (docs/adr/0008-lambda-cold-start.md), so this fails if:
- a package holds something no function imports (Flask and its kin, the X-Ray SDK, the
  services' database stack, tests, the local runtime), or the BFF's own dependencies reach the
  payments or sweeper package;
- botocore carries a service model other than those the functions call;
- a module has no compiled bytecode, or bytecode Python would re-check against its source;
- a handler, or what a function imports on first use (the BFF's OpenAPI document, the Secrets
  Manager and SSM clients that fetch its secrets in AWS), fails to load from the package and the layer alone.
Each function is imported in a fresh interpreter, so one package cannot lend another a module.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FUNCTIONS = {
    "OrchestratorFunction": "orchestrator.bff.handler",
    "PaymentsFunction": "orchestrator.payments.handler",
    "SweeperFunction": "orchestrator.sweeper.handler",
}
NEVER = {
    "flask", "werkzeug", "jinja2", "markupsafe", "click", "itsdangerous", "blinker",
    "aws_xray_sdk", "wrapt", "sqlalchemy", "pymysql", "MySQLdb", "gunicorn", "gevent",
    "alembic", "flask_smorest", "webargs", "tests", "bin",
}  # fmt: skip
BFF_ONLY = {"marshmallow", "apispec", "flask_swagger_ui"}
# SQS is one signed POST (orchestrator/sqs.py); the secrets come through Powertools' boto3 clients.
BOTOCORE_SERVICES = {"secretsmanager", "ssm"}
SERVER_ONLY_SERVICEKIT = {"web.py", "db.py", "dbtypes.py", "dbusers.py", "gunicorn_conf.py", "testing.py"}
PYC_FLAGS_UNCHECKED_HASH = 0b01  # PEP 552: hash-based, source not checked

# What each function loads on first use, beyond its handler module.
FIRST_USE = """
import boto3
from aws_lambda_powertools.utilities import parameters  # noqa: F401  (its secrets in AWS)
for service in ("secretsmanager", "ssm"):
    boto3.client(service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
"""
BFF_FIRST_USE = """
from orchestrator.bff.openapi import openapi_document, swagger_ui_html
from servicekit.openapi import swagger_ui_asset
assert openapi_document()["paths"] and swagger_ui_html()
assert swagger_ui_asset("swagger-ui-bundle.js")
"""


def top_level(directory: Path) -> set[str]:
    return {p.name.removesuffix(".py") for p in directory.iterdir() if not p.name.endswith(".dist-info")}


def bytecode_problems(directory: Path) -> list[str]:
    problems = []
    tag = f"cpython-{sys.version_info.major}{sys.version_info.minor}"
    for source in directory.rglob("*.py"):
        pyc = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not pyc.exists():
            problems.append(f"{source.relative_to(directory)}: no {pyc.name}")
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        if flags != PYC_FLAGS_UNCHECKED_HASH:
            problems.append(f"{pyc.relative_to(directory)}: not unchecked-hash bytecode (flags {flags})")
    return problems[:5]


def import_problems(build: Path, function: str, module: str) -> list[str]:
    code = f"import sys\nsys.path[:0] = {[str(build / function), str(build / 'ServiceKitLayer' / 'python')]!r}\n"
    code += f"import {module} as m\nassert callable(m.lambda_handler)\n" + FIRST_USE
    if function == "OrchestratorFunction":
        code += BFF_FIRST_USE
    result = subprocess.run([sys.executable, "-S", "-B", "-c", code], capture_output=True, text=True, cwd="/")
    return [] if result.returncode == 0 else [f"import failed:\n{result.stderr[-2000:]}"]


def check(build: Path) -> list[str]:
    problems: list[str] = []
    layer = build / "ServiceKitLayer" / "python"
    if top_level(layer) != {"servicekit"}:
        problems.append(f"ServiceKitLayer: holds {sorted(top_level(layer))}, expected servicekit alone")
    leaked = SERVER_ONLY_SERVICEKIT & {p.name for p in (layer / "servicekit").iterdir()}
    if leaked:
        problems.append(f"ServiceKitLayer: servicekit's server-only modules {sorted(leaked)}")
    problems += [f"ServiceKitLayer: {p}" for p in bytecode_problems(layer)]
    for function, module in FUNCTIONS.items():
        package = build / function
        names = top_level(package)
        unwanted = names & (NEVER if function == "OrchestratorFunction" else NEVER | BFF_ONLY)
        if unwanted:
            problems.append(f"{function}: carries {sorted(unwanted)}")
        if "servicekit" in names:
            problems.append(f"{function}: carries its own servicekit (the layer has it)")
        if (package / "orchestrator" / "local").exists():
            problems.append(f"{function}: carries orchestrator/local (the local runtime)")
        models = {p.name for p in (package / "botocore" / "data").iterdir() if p.is_dir()}
        if models != BOTOCORE_SERVICES:
            problems.append(f"{function}: botocore models {sorted(models)}, expected {sorted(BOTOCORE_SERVICES)}")
        problems += [f"{function}: {p}" for p in bytecode_problems(package)]
        problems += [f"{function}: {p}" for p in import_problems(build, function, module)]
        if not problems:
            print(f"   {function}: {module}.lambda_handler ok, {len(names)} top-level entries")
    return problems


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    problems = check(Path(sys.argv[1]))
    for problem in problems:
        print(f"   {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
