"""Dockerfiles: hadolint, our image policy, the build context, and the image's files actually running.

No Docker engine here: the last test lays the image's files out exactly as its COPY instructions
would (from the .dockerignore-filtered context), then runs the migration command, the CMD and
the HEALTHCHECK from that layout with the image's ENV.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time

import pytest
from deploycheck import (
    IMAGES,
    ROOT,
    ImageSpec,
    build_context,
    dockerfile_problems,
    healthcheck_instruction_argv,
    image_command,
    parse_dockerfile,
    run,
    simulate_image,
    tool,
)

from servicekit.testing import ServiceKeySet

IDS = [spec.component_dir for spec in IMAGES]


@pytest.fixture(scope="module")
def context_files() -> list[str]:
    return build_context(ROOT, (ROOT / ".dockerignore").read_text())


def hadolint(require_tool, path) -> tuple[int, list[dict]]:
    binary = require_tool(tool, "hadolint")
    result = run([str(binary), "--no-color", "--failure-threshold", "warning", "--format", "json", str(path)])
    return result.returncode, json.loads(result.stdout or "[]")


def test_every_component_has_its_dockerfile():
    found = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("*/Dockerfile"))
    assert found == sorted(spec.dockerfile for spec in IMAGES)


@pytest.mark.parametrize("spec", IMAGES, ids=IDS)
def test_hadolint_finds_nothing_at_warning_level(require_tool, spec: ImageSpec):
    code, findings = hadolint(require_tool, ROOT / spec.dockerfile)
    serious = [f for f in findings if f["level"] in ("error", "warning")]
    assert code == 0 and not serious, json.dumps(findings, indent=1)


def test_hadolint_fails_a_bad_dockerfile(require_tool, tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "RUN apt-get update && apt-get install -y curl\n"
        "RUN cd /app && pip install flask\n"
        "ADD . /app\n"
        "CMD python app.py\n"
    )
    code, findings = hadolint(require_tool, bad)
    assert code != 0
    assert {"DL3007", "DL3008", "DL3003", "DL3013", "DL3020", "DL3025"} <= {f["code"] for f in findings}


@pytest.mark.parametrize("spec", IMAGES, ids=IDS)
def test_dockerfile_policy(spec: ImageSpec):
    """python:3.11-slim, non-root USER, HEALTHCHECK on /health with python, the server as CMD
    (no migration on start), dependency layers before code, the expected port."""
    assert dockerfile_problems((ROOT / spec.dockerfile).read_text(), spec) == []


BROKEN_DOCKERFILES = {
    "runs as root": lambda text: text.replace("USER 10001:10001", "USER root"),
    "no user": lambda text: text.replace("USER 10001:10001\n", ""),
    "no healthcheck": lambda text: "\n".join(
        line for line in text.splitlines() if "HEALTHCHECK" not in line and "urllib.request" not in line
    ),
    "healthcheck with curl": lambda text: text.replace(
        'CMD ["python", "-c"', 'CMD ["curl", "-f", "http://127.0.0.1:3001/health"]\n# ["python", "-c"'
    ),
    "migrates on start": lambda text: text.replace(
        'CMD ["gunicorn"', 'CMD ["sh", "-c", "python -m customers_service.cli migrate && exec gunicorn"]\n# ["gunicorn"'
    ),
    "shell-form CMD": lambda text: text.replace(
        'CMD ["gunicorn", "-c", "python:servicekit.gunicorn_conf", "customers_service.wsgi:app"]',
        "CMD gunicorn -c python:servicekit.gunicorn_conf customers_service.wsgi:app",
    ),
    "code before dependencies": lambda text: text.replace(
        "WORKDIR /app\n",
        "WORKDIR /app\nCOPY customers-service/customers_service customers-service/customers_service\n",
        1,
    ),
    "whole context copied": lambda text: text.replace("WORKDIR /app\n", "WORKDIR /app\nCOPY . .\n", 1),
    "another base": lambda text: text.replace("FROM python:3.11-slim", "FROM python:3.12"),
}


@pytest.mark.parametrize("breakage", sorted(BROKEN_DOCKERFILES))
def test_dockerfile_policy_rejects_broken_copies(breakage):
    spec = IMAGES[0]
    text = (ROOT / spec.dockerfile).read_text()
    broken = BROKEN_DOCKERFILES[breakage](text)
    assert broken != text, f"the {breakage!r} edit no longer applies: update the test"
    assert dockerfile_problems(broken, spec), breakage


# --- build context ------------------------------------------------------------------------------

FORBIDDEN_SEGMENTS = {".git", ".venv", ".venv-tools", "node_modules", "var", "tests", "__pycache__", ".aws-sam"}


def forbidden_in_context(files: list[str]) -> list[str]:
    bad = []
    for name in files:
        parts = name.split("/")
        hidden = parts[-1].startswith(".env") or name.endswith(".pyc") or any(p.endswith(".egg-info") for p in parts)
        if FORBIDDEN_SEGMENTS & set(parts) or parts[0].startswith("tests-") or hidden:
            bad.append(name)
    return bad


def test_build_context_is_small_and_clean(context_files):
    assert forbidden_in_context(context_files) == []
    top = {name.split("/")[0] for name in context_files}
    assert top <= {"servicekit", "customers-service", "orders-service", "orchestrator-lambda", "gateway-simulator"}, top
    size = sum((ROOT / name).stat().st_size for name in context_files)
    assert size < 3_000_000, f"build context is {size} bytes"


def test_dockerignore_check_catches_a_leaky_context(tmp_path):
    unwanted = {".env", ".venv/lib/x.py", "var/orders.db", "customers-service/tests/t.py"}
    for name in (*unwanted, "servicekit/servicekit/a.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    real = build_context(tmp_path, (ROOT / ".dockerignore").read_text())
    assert real == ["servicekit/servicekit/a.py"]
    leaky = build_context(tmp_path, ".git\n")
    assert unwanted <= set(forbidden_in_context(leaky))


# --- the image's files, running ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SERVICE_KEYS = ServiceKeySet.generate()
IDENTITY_OF = {"customers-service": "customers-service", "orders-service": "orders-service"}


def ring(kid: str) -> str:
    return f"{kid}:{secrets.token_urlsafe(32)}"


def wait_healthy(argv: list[str], env: dict[str, str], server: subprocess.Popen, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            out = server.stdout.read() if server.stdout else ""
            pytest.fail(f"the image's CMD exited with {server.returncode}:\n{out[-3000:]}")
        last = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10)
        if last.returncode == 0:
            return
        time.sleep(0.3)
    pytest.fail(f"HEALTHCHECK never passed: {last.stderr[-2000:] if last else ''}")


@pytest.mark.parametrize("spec", IMAGES, ids=IDS)
def test_image_layout_migrates_serves_and_passes_its_healthcheck(spec: ImageSpec, context_files, tmp_path):
    text = (ROOT / spec.dockerfile).read_text()
    image = simulate_image(text, context_files, ROOT, tmp_path / "image")
    assert image.problems == []
    port = free_port()
    venv_bin = os.path.dirname(sys.executable)
    env = {
        **image.env,
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "USER_JWT_KEYS": ring("u1"),
        # The image's own service identity (the gateway simulator has none; it ignores these).
        **SERVICE_KEYS.env_for(IDENTITY_OF.get(spec.component_dir, "orchestrator")),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9",
        "PAYMENTS_QUEUE_URL": "http://127.0.0.1:9/123456789012/payments",
        "PAYMENTS_DLQ_URL": "http://127.0.0.1:9/123456789012/payments-dlq",
        # The gateway simulator's own names for its address and ledger.
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_LEDGER_PATH": str(tmp_path / "gateway-ledger.db"),
        "PAYMENT_GATEWAY_API_KEY": f"sk_test_{secrets.token_urlsafe(24)}",
    }
    where = subprocess.run(
        ["python", "-c", f"import {spec.package} as p, servicekit as s; print(p.__file__); print(s.__file__)"],
        env=env,
        cwd=image.workdir,
        capture_output=True,
        text=True,
    )
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(image.root)) for line in where.stdout.split()), where.stdout

    if spec.package in ("customers_service", "orders_service"):
        migrate = subprocess.run(
            ["python", "-m", f"{spec.package}.cli", "migrate"],
            env=env,
            cwd=image.workdir,
            capture_output=True,
            text=True,
        )
        assert migrate.returncode == 0, migrate.stderr[-3000:]

    command = image_command(parse_dockerfile(text))
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
        command[command.index("--host") + 1] = "127.0.0.1"
    server = subprocess.Popen(
        command, env=env, cwd=image.workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_healthy(healthcheck_instruction_argv(parse_dockerfile(text)), env, server)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_image_layout_check_catches_missing_files(context_files, tmp_path):
    """Without the COPY of migrations/, the image could not migrate; a COPY of a path the
    .dockerignore drops fails the build."""
    spec = IMAGES[0]
    text = (ROOT / spec.dockerfile).read_text()
    no_migrations = text.replace("COPY customers-service/migrations customers-service/migrations\n", "")
    assert no_migrations != text
    image = simulate_image(no_migrations, context_files, ROOT, tmp_path / "image")
    env = {**image.env, "PATH": f"{os.path.dirname(sys.executable)}:/usr/bin:/bin"}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite'}"
    migrate = subprocess.run(
        ["python", "-m", f"{spec.package}.cli", "migrate"], env=env, cwd=image.workdir, capture_output=True, text=True
    )
    assert migrate.returncode != 0

    ignored = text.replace("COPY customers-service/alembic.ini", "COPY customers-service/tests/conftest.py")
    assert simulate_image(ignored, context_files, ROOT, tmp_path / "image2").problems
