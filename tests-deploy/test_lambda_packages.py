"""How each Lambda is packaged (docs/adr/0008-lambda-cold-start.md), checked statically.

scripts/check_sam.sh builds the packages and checks what is in them
(scripts/check_lambda_packages.py); this checks the inputs: every function and the ServiceKit
layer is built by its Makefile, each function's requirements are pins the local runtime uses
too, and nothing asks for the X-Ray SDK the packages no longer carry.
"""

from __future__ import annotations

import re
import subprocess
import sys

from deploycheck import ROOT
from test_sam import functions, load_template

LAMBDA_DIR = ROOT / "orchestrator-lambda"
PACKAGES = {
    "OrchestratorFunction": "bff",
    "PaymentsFunction": "payments",
    "SweeperFunction": "sweeper",
}
PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$")


def pins(path) -> dict[str, str]:
    """name -> version of every `name==version` line, following `-r` includes."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif line:
            match = PIN.match(line)
            assert match, f"{path.name}: {line!r} is not an exact pin"
            found[match.group(1).lower()] = match.group(2)
    return found


def test_every_function_and_the_layer_are_built_by_their_makefile():
    template = load_template()
    resources = template["Resources"]
    for name in PACKAGES:
        assert resources[name]["Metadata"]["BuildMethod"] == "makefile", name
        assert resources[name]["Properties"]["CodeUri"] == "orchestrator-lambda/"
    assert set(functions(template)) == set(PACKAGES)
    layer = resources["ServiceKitLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert layer["Properties"]["ContentUri"] == "servicekit/"
    makefile = (LAMBDA_DIR / "Makefile").read_text()
    for name, package in PACKAGES.items():
        assert re.search(rf"^build-{name}:\n\t\$\(MAKE\) package FUNCTION={package}\b", makefile, re.M), name
    assert "build-ServiceKitLayer:" in (ROOT / "servicekit" / "Makefile").read_text()


def test_function_requirements_are_the_local_runtimes_pins():
    runtime = pins(LAMBDA_DIR / "requirements.txt")
    for package in PACKAGES.values():
        wanted = pins(LAMBDA_DIR / "packages" / f"{package}.txt")
        assert wanted, package
        different = {name: version for name, version in wanted.items() if runtime.get(name) != version}
        assert not different, f"packages/{package}.txt pins {different}, requirements.txt {runtime}"


def test_only_the_bff_carries_its_schemas_and_docs():
    bff = pins(LAMBDA_DIR / "packages" / "bff.txt")
    assert {"marshmallow", "apispec"} <= set(bff)
    for package in ("payments", "sweeper"):
        assert not {"marshmallow", "apispec", "flask-swagger-ui", "flask"} & set(
            pins(LAMBDA_DIR / "packages" / f"{package}.txt")
        )


def test_nothing_asks_for_the_xray_sdk():
    texts = [
        (LAMBDA_DIR / "requirements.txt").read_text(),
        (LAMBDA_DIR / "pyproject.toml").read_text(),
        *(p.read_text() for p in (LAMBDA_DIR / "packages").glob("*.txt")),
    ]
    assert not any(re.search(r"aws-xray-sdk|\[tracer\]|\bwrapt\b", text) for text in texts)
    sources = "\n".join(p.read_text() for p in (LAMBDA_DIR / "orchestrator").rglob("*.py"))
    assert "Tracer" not in sources and "aws_xray_sdk" not in sources


def test_the_package_check_refuses_a_package_with_an_extra_dependency(tmp_path):
    """scripts/check_lambda_packages.py on a fake build: a Flask leak and uncompiled code are caught."""
    build = tmp_path / "build"
    layer = build / "ServiceKitLayer" / "python" / "servicekit"
    layer.mkdir(parents=True)
    for name in ("OrchestratorFunction", "PaymentsFunction", "SweeperFunction"):
        for service in ("secretsmanager", "ssm"):
            (build / name / "botocore" / "data" / service).mkdir(parents=True)
    (build / "PaymentsFunction" / "flask").mkdir()
    (build / "SweeperFunction" / "module.py").write_text("x = 1\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_lambda_packages.py"), str(build)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "PaymentsFunction: carries ['flask']" in result.stderr
    assert "SweeperFunction: module.py: no module.cpython" in result.stderr
