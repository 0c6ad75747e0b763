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


STACKS = sorted((ROOT / "deploy" / "cloudformation").glob("*.yaml"))


@pytest.mark.parametrize("path", [TEMPLATE, *STACKS], ids=lambda p: p.name)
def test_templates_pass_cfn_lint(require_tool, path):
    code, output = cfn_lint(require_tool, path)
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
    workflow = (WORKFLOWS_DIR / "deploy.yml").read_text()
    assert runtime_problems(TEMPLATE.read_text(), workflow) == []
    assert runtime_problems(TEMPLATE.read_text(), workflow.replace('"3.12"', '"3.11"'))


# --- parameters, the payment gateway's wiring --------------------------------------------------


class _TaggedCfnLoader(yaml.SafeLoader):
    """Reads !Ref X as {"Ref": X} and !Sub/!GetAtt/... as {"Fn::Sub": ...}: values a test can inspect."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_TaggedCfnLoader.add_multi_constructor("!", _tagged)


def load_template(text: str | None = None) -> dict:
    return yaml.load(text if text is not None else TEMPLATE.read_text(), Loader=_TaggedCfnLoader)


def functions(template: dict) -> dict[str, dict]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


def secret_readers(template: dict) -> dict[str, set[str]]:
    """Secret ARN parameter → the functions that may read it (GetSecretValue policies)."""
    readers: dict[str, set[str]] = {}
    for name, properties in functions(template).items():
        for policy in properties.get("Policies") or []:
            statement = policy.get("AWSSecretsManagerGetSecretValuePolicy") if isinstance(policy, dict) else None
            if statement:
                for parameter in re.findall(
                    r"'Ref': '(\w+SecretArn)'|\$\{(\w+SecretArn)\}", str(statement["SecretArn"])
                ):
                    readers.setdefault("".join(parameter), set()).add(name)
    return readers


def gateway_wiring_problems(template: dict) -> list[str]:
    problems = []
    parameters = template["Parameters"]
    pattern = parameters.get("PaymentGatewayUrl", {}).get("AllowedPattern", "")
    if not (re.fullmatch(pattern, "https://pay.example.com") and not re.fullmatch(pattern, "http://pay.example.com")):
        problems.append(f"PaymentGatewayUrl must take https URLs only, pattern {pattern!r}")
    env = functions(template)["PaymentsFunction"]["Environment"]["Variables"]
    if env.get("PAYMENT_GATEWAY_URL") != {"Ref": "PaymentGatewayUrl"}:
        problems.append(f"PaymentsFunction PAYMENT_GATEWAY_URL is {env.get('PAYMENT_GATEWAY_URL')}")
    if env.get("PAYMENT_GATEWAY_API_KEY_SECRET_ID") != {"Ref": "PaymentGatewayApiKeySecretArn"}:
        problems.append("PaymentsFunction lacks PAYMENT_GATEWAY_API_KEY_SECRET_ID from PaymentGatewayApiKeySecretArn")
    readers = secret_readers(template).get("PaymentGatewayApiKeySecretArn", set())
    if readers != {"PaymentsFunction"}:
        problems.append(f"the gateway's API key must be readable by PaymentsFunction only, not {sorted(readers)}")
    if "PAYMENT_GATEWAY" in str(template.get("Globals")):
        problems.append("the gateway's settings belong to PaymentsFunction, not Globals")
    if "SIMULATION" in str(template).upper():
        problems.append("the payment simulation lives in the gateway simulator, not in the Lambdas")
    return problems


def test_the_payments_function_reaches_the_gateway_over_https_with_its_own_secret():
    assert gateway_wiring_problems(load_template()) == []
    template = load_template()
    readers = secret_readers(template)
    assert readers["UserJwtKeysSecretArn"] == {"OrchestratorFunction"}
    # One service identity per function: each reads its own private key, and no other's.
    for parameter, function in (
        ("OrchestratorJwtKeySecretArn", "OrchestratorFunction"),
        ("PaymentsJwtKeySecretArn", "PaymentsFunction"),
        ("SweeperJwtKeySecretArn", "SweeperFunction"),
    ):
        assert readers[parameter] == {function}
        assert functions(template)[function]["Environment"]["Variables"]["SERVICE_JWT_PRIVATE_KEYS_SECRET_ID"] == {
            "Ref": parameter
        }


def test_gateway_wiring_check_catches_mistakes():
    text = TEMPLATE.read_text()
    leaky = text.replace(
        "        - SQSSendMessagePolicy:\n            QueueName: !GetAtt PaymentsQueue.QueueName\n",
        "        - SQSSendMessagePolicy:\n            QueueName: !GetAtt PaymentsQueue.QueueName\n"
        "        - AWSSecretsManagerGetSecretValuePolicy:\n"
        "            SecretArn: !Ref PaymentGatewayApiKeySecretArn\n",
        1,
    )
    plain_http = text.replace('AllowedPattern: "^https://', 'AllowedPattern: "^https?://', 1)
    unwired = text.replace("PAYMENT_GATEWAY_URL: !Ref PaymentGatewayUrl", "PAYMENT_GATEWAY_URL: http://127.0.0.1:3003")
    for broken in (leaky, plain_http, unwired):
        assert broken != text, "an edit no longer applies: update the test"
        assert gateway_wiring_problems(load_template(broken))


def workflow_parameters() -> set[str]:
    """Parameters deploy.yml adds to samconfig's (the image tags, set to the commit)."""
    return set(re.findall(r'"([A-Z]\w+)=\$IMAGE_TAG"', (WORKFLOWS_DIR / "deploy.yml").read_text()))


def override_problems(template: dict, config: dict) -> list[str]:
    """Every samconfig parameter override names a template parameter and fits its constraints,
    and every parameter without a default is given (by samconfig or by the deploy workflow), in
    each deploy environment. A value with a space must be quoted: SAM splits values at spaces."""
    problems = []
    parameters = template["Parameters"]
    required = {name for name, spec in parameters.items() if "Default" not in spec} - workflow_parameters()
    for environment in ("staging", "production"):
        overrides = config[environment]["deploy"]["parameters"]["parameter_overrides"]
        given = {}
        for item in overrides:
            name, _, value = item.partition("=")
            quoted = len(value) > 1 and value[0] == value[-1] and value[0] in "\"'"
            if " " in value and not quoted:
                problems.append(f"{environment}: {name}={value} has a space: SAM would cut it there (quote it)")
            given[name] = value[1:-1] if quoted else value
        for name, value in given.items():
            spec = parameters.get(name)
            if spec is None:
                problems.append(f"{environment}: {name} is not a parameter of template.yaml")
                continue
            if "AllowedValues" in spec and value not in [str(v) for v in spec["AllowedValues"]]:
                problems.append(f"{environment}: {name}={value} is not one of {spec['AllowedValues']}")
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], value):
                problems.append(f"{environment}: {name}={value} does not match {spec['AllowedPattern']}")
        problems += [f"{environment}: {name} (no default) is not given" for name in sorted(required - set(given))]
    return problems


def test_samconfig_overrides_name_real_parameters_and_give_every_required_one():
    config = tomllib.loads(SAMCONFIG.read_text())
    assert override_problems(load_template(), config) == []
    stale = tomllib.loads(SAMCONFIG.read_text().replace('"PaymentGatewayUrl=https://', '"PaymentGatewayUrl=http://', 1))
    assert override_problems(load_template(), stale)
    removed = tomllib.loads(SAMCONFIG.read_text().replace('"Environment=staging",', '"PaymentSimulationMode=random",'))
    assert len(override_problems(load_template(), removed)) == 2  # unknown name, Environment missing
    unquoted = tomllib.loads(
        SAMCONFIG.read_text().replace("'SweeperSchedule=\"rate(2 minutes)\"'", '"SweeperSchedule=rate(2 minutes)"')
    )
    assert any("has a space" in problem for problem in override_problems(load_template(), unquoted))
    assert workflow_parameters() == {"MigrationImageTag", "ServiceImageTag"}
