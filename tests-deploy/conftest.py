"""Shared fixtures of the deploy checks: a generated .env, the compose file, tool locations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from deploycheck import COMPOSE_FILE, COMPOSE_SCHEMA, ROOT, ToolMissing, load_compose, parse_env_file


@pytest.fixture(scope="session")
def dotenv_file(tmp_path_factory):
    """A .env made the way `make env` makes it: .env.example with fresh random secrets."""
    path = tmp_path_factory.mktemp("dotenv") / ".env"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make_env.py"), "--output", str(path)],
        check=True,
        capture_output=True,
    )
    return path


@pytest.fixture(scope="session")
def dotenv(dotenv_file) -> dict[str, str]:
    return parse_env_file(dotenv_file.read_text())


@pytest.fixture(scope="session")
def env_example() -> str:
    return (ROOT / ".env.example").read_text()


@pytest.fixture(scope="session")
def compose_text() -> str:
    return COMPOSE_FILE.read_text()


@pytest.fixture(scope="session")
def compose_raw(compose_text) -> dict:
    """docker-compose.yml as written (YAML anchors merged, ${...} not interpolated)."""
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="session")
def compose(compose_text, dotenv) -> dict:
    """docker-compose.yml as `docker compose` sees it with the generated .env."""
    return load_compose(compose_text, dotenv)


@pytest.fixture(scope="session")
def compose_schema() -> dict:
    """The Compose Specification schema, fetched (pinned, hash-checked) by tools/fetch_compose_schema.py."""
    if not COMPOSE_SCHEMA.exists():
        subprocess.run([sys.executable, str(ROOT / "tools" / "fetch_compose_schema.py")], check=True)
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "fetch_compose_schema.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    return json.loads(COMPOSE_SCHEMA.read_text())


@pytest.fixture
def require_tool():
    """Fail (not skip) with the install command when a lint tool is missing: `make test` installs them."""

    def get(factory, *args):
        try:
            return factory(*args)
        except ToolMissing as exc:
            pytest.fail(str(exc))

    return get
