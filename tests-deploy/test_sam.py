"""The SAM template: cfn-lint, and samconfig environments matching what deploy.yml deploys.

`sam deploy` cannot run here (no AWS credentials); cfn-lint (with the SAM transform) is the
offline check. `sam validate --lint` and `sam build` run in the deploy workflow before each deploy.
"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml
from deploycheck import ROOT, WORKFLOWS_DIR, run, tool

TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"


def cfn_lint(require_tool, path) -> tuple[int, str]:
    binary = require_tool(tool, "cfn-lint")
    result = run([str(binary), "--format", "parseable", "--", str(path)], timeout=300)
    return result.returncode, result.stdout + result.stderr


def test_template_passes_cfn_lint(require_tool):
    if not TEMPLATE.exists():
        pytest.skip("template.yaml is not written yet (the SAM stack is being built in parallel)")
    code, output = cfn_lint(require_tool, TEMPLATE)
    # cfn-lint exit codes are bit flags: 2 = errors, 4 = warnings, 8 = informational only.
    assert code in (0, 8), output


def test_cfn_lint_fails_a_broken_template(require_tool, tmp_path):
    broken = tmp_path / "template.yaml"
    broken.write_text(
        "AWSTemplateFormatVersion: '2010-09-09'\n"
        "Transform: AWS::Serverless-2016-10-31\n"
        "Resources:\n"
        "  Queue:\n"
        "    Type: AWS::SQS::Queue\n"
        "    Properties:\n"
        "      VisibilityTimeout: forty\n"
        "      RedrivePolicy:\n"
        "        deadLetterTargetArn: !GetAtt Missing.Arn\n"
        "        maxReceiveCount: 5\n"
    )
    code, output = cfn_lint(require_tool, broken)
    assert code & 2, output


def test_samconfig_has_the_environments_the_deploy_workflow_uses():
    if not SAMCONFIG.exists():
        pytest.skip("samconfig.toml is not written yet (the SAM stack is being built in parallel)")
    config = tomllib.loads(SAMCONFIG.read_text())
    used = set(re.findall(r"sam deploy\b.*--config-env\s+(\S+)", (WORKFLOWS_DIR / "deploy.yml").read_text()))
    assert used == {"staging", "production"}
    for environment in used:
        deploy = config.get(environment, {}).get("deploy", {}).get("parameters", {})
        assert deploy.get("stack_name"), f"samconfig.toml [{environment}.deploy.parameters] has no stack_name"
    stacks = {config[env]["deploy"]["parameters"]["stack_name"] for env in used}
    assert len(stacks) == 2, "staging and production must be different stacks"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation short tags (!Ref, !Sub...) as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def runtime_problems(template_text: str, workflow_text: str) -> list[str]:
    template = yaml.load(template_text, Loader=_CfnLoader)
    runtimes = {(template.get("Globals") or {}).get("Function", {}).get("Runtime")}
    runtimes |= {r["Properties"].get("Runtime") for r in template["Resources"].values() if "Properties" in r}
    versions = {r.removeprefix("python") for r in runtimes if r and r.startswith("python")}
    installed = set(re.findall(r"python-version:\s*\"?([0-9.]+)", workflow_text))
    return [f"sam build needs Python {v}; deploy.yml installs {sorted(installed)}" for v in versions - installed]


def test_deploy_workflow_builds_with_the_functions_runtime():
    if not TEMPLATE.exists():
        pytest.skip("template.yaml is not written yet (the SAM stack is being built in parallel)")
    workflow = (WORKFLOWS_DIR / "deploy.yml").read_text()
    assert runtime_problems(TEMPLATE.read_text(), workflow) == []
    assert runtime_problems(TEMPLATE.read_text(), workflow.replace('"3.12"', '"3.11"'))
