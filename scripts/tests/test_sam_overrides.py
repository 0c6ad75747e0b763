"""scripts/sam_overrides.py: samconfig's parameter overrides, one per line, as deploy.yml passes them."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "sam_overrides.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_prints_each_environments_overrides_and_stack_name(environment):
    deploy = tomllib.loads((ROOT / "samconfig.toml").read_text())[environment]["deploy"]["parameters"]
    done = run(environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == deploy["parameter_overrides"]
    assert run(environment, "--stack-name").stdout.strip() == deploy["stack_name"]


def test_an_unknown_environment_is_an_error(tmp_path):
    done = run("qa")
    assert done.returncode != 0 and "[qa.deploy.parameters]" in done.stderr
    config = tmp_path / "samconfig.toml"
    config.write_text('[x.deploy.parameters]\nstack_name = "s"\nparameter_overrides = ["A=\\"two\\nlines\\""]\n')
    assert run("x", "--samconfig", str(config)).returncode != 0
