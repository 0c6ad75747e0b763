"""GitHub workflows: actionlint, and what CI and deploy must do (checked on broken copies too)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from deploycheck import ROOT, WORKFLOWS_DIR, actionlint_command, run

CI = WORKFLOWS_DIR / "ci.yml"
DEPLOY = WORKFLOWS_DIR / "deploy.yml"


def load(path) -> dict:
    return yaml.safe_load(path.read_text())


def triggers(doc: dict) -> dict:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` key as True
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return on or {}


def steps(job: dict) -> list[dict]:
    return job.get("steps") or []


def uses(job: dict, action: str) -> list[dict]:
    return [step for step in steps(job) if str(step.get("uses", "")).split("@")[0] == action]


def runs(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) for step in steps(job))


def text_of(node) -> str:
    return yaml.safe_dump(node)


# --- actionlint -----------------------------------------------------------------------------------


def actionlint(require_tool, *paths) -> tuple[int, str]:
    result = run([*require_tool(actionlint_command), *map(str, paths)], cwd=str(ROOT))
    return result.returncode, result.stdout + result.stderr


def test_workflows_exist():
    assert sorted(p.name for p in WORKFLOWS_DIR.glob("*.yml")) == ["ci.yml", "deploy.yml"]


def test_actionlint_passes(require_tool):
    code, output = actionlint(require_tool, *sorted(WORKFLOWS_DIR.glob("*.yml")))
    assert code == 0, output


def test_actionlint_fails_a_broken_workflow(require_tool, tmp_path):
    broken = tmp_path / "deploy.yml"
    text = DEPLOY.read_text().replace("needs: staging", "needs: stagin")
    text = text.replace("role-to-assume: ${{ vars.AWS_DEPLOY_ROLE_ARN }}", "role-to-asume: x", 1)
    broken.write_text(text)
    code, output = actionlint(require_tool, broken)
    assert code != 0
    assert "stagin" in output and "role-to-asume" in output


# --- action pinning ---------------------------------------------------------------------------------


def pinning_problems(doc: dict) -> list[str]:
    problems = []
    for job_name, job in (doc.get("jobs") or {}).items():
        for step in steps(job):
            ref = step.get("uses")
            if not ref or ref.startswith("./"):
                continue
            if ref.startswith("docker://"):
                if ":" not in ref.removeprefix("docker://") or ref.endswith(":latest"):
                    problems.append(f"{job_name}: {ref} has no pinned tag")
                continue
            _, _, version = ref.partition("@")
            if not re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", version):
                problems.append(f"{job_name}: {ref} is not pinned to a version (at least @vN) or a commit")
    return problems


@pytest.mark.parametrize("path", [CI, DEPLOY], ids=["ci", "deploy"])
def test_actions_are_pinned(path):
    assert pinning_problems(load(path)) == []


def test_pinning_check_catches_branch_refs():
    doc = load(CI)
    doc["jobs"]["test"]["steps"][0]["uses"] = "actions/checkout@main"
    doc["jobs"]["test"]["steps"].append({"uses": "some/action"})
    assert len(pinning_problems(doc)) == 2


# --- CI -------------------------------------------------------------------------------------------


def ci_problems(doc: dict) -> list[str]:
    problems = []
    on = triggers(doc)
    if "pull_request" not in on or "push" not in on:
        problems.append("CI must run on push and pull_request")
    permissions = doc.get("permissions")
    if not isinstance(permissions, dict) or permissions != {"contents": "read"}:
        problems.append("CI's token must be read-only (permissions: contents: read)")
    jobs = [job for job in (doc.get("jobs") or {}).values() if "make test" in runs(job)]
    if not jobs:
        return [*problems, "no job runs `make test`"]
    job = jobs[0]
    databases = [
        service
        for service in (job.get("services") or {}).values()
        if re.match(r"^(mysql:8|mariadb:(10\.(1[1-9])|1[1-9]))", str(service.get("image", "")))
    ]
    if not databases:
        problems.append("no MySQL 8 / MariaDB 10.11+ service container")
    else:
        service = databases[0]
        env = service.get("env") or {}
        flags = {
            "MYSQL_ALLOW_EMPTY_PASSWORD",
            "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
            "MARIADB_ALLOW_EMPTY_PASSWORD",
        } & set(env)
        if not flags or any(str(env[name]).lower() in ("", "0", "no", "false") for name in flags):
            problems.append("the database must accept root without a password (what `make test` expects)")
        if "3306:3306" not in [str(p) for p in service.get("ports") or []]:
            problems.append("the database must be on 127.0.0.1:3306 (ports: 3306:3306)")
        if "--health-cmd" not in str(service.get("options", "")):
            problems.append("the database service needs a health check, or tests start before it answers")
    matrix = ((job.get("strategy") or {}).get("matrix") or {}).get("python-version") or []
    if not {"3.11", "3.12"} <= {str(v) for v in matrix}:
        problems.append("Python 3.11 and 3.12 must both be tested")
    setup_python = uses(job, "actions/setup-python")
    if not setup_python or "matrix.python-version" not in str(setup_python[0].get("with", {}).get("python-version")):
        problems.append("setup-python must install the matrix version")
    setup_node = uses(job, "actions/setup-node")
    if not setup_node or str(setup_node[0].get("with", {}).get("node-version")) != "20":
        problems.append("setup-node must install node 20")
    if not uses(job, "actions/checkout"):
        problems.append("no checkout")
    return problems


def test_ci_workflow():
    assert load(CI).get("name") == "CI"
    assert ci_problems(load(CI)) == []


@pytest.mark.parametrize("breakage", ["no database", "one python", "no make test", "write token", "no node"])
def test_ci_check_catches_mistakes(breakage):
    doc = load(CI)
    job = doc["jobs"]["test"]
    if breakage == "no database":
        job.pop("services")
    elif breakage == "one python":
        job["strategy"]["matrix"]["python-version"] = ["3.11"]
    elif breakage == "no make test":
        for step in job["steps"]:
            if "run" in step:
                step["run"] = "pytest"
    elif breakage == "write token":
        doc["permissions"] = "write-all"
    else:
        job["steps"] = [s for s in job["steps"] if "setup-node" not in str(s.get("uses"))]
    assert ci_problems(doc)


# --- deploy ---------------------------------------------------------------------------------------


def deploy_problems(doc: dict, ci_name: str) -> list[str]:
    problems = []
    on = triggers(doc)
    run_trigger = on.get("workflow_run") or {}
    if set(on) - {"workflow_run", "workflow_dispatch"}:
        problems.append(f"deploy must run only after CI (or by hand), not on {sorted(set(on))}")
    if ci_name not in (run_trigger.get("workflows") or []) or run_trigger.get("types") != ["completed"]:
        problems.append("deploy must be triggered by CI's completed workflow_run")
    if run_trigger.get("branches") != ["main"]:
        problems.append("deploy must be limited to main")
    if "secrets." in text_of(doc) and re.search(r"secrets\.\w*(AWS|KEY|SECRET)", text_of(doc), re.I):
        problems.append("AWS credentials from repository secrets: use OIDC (role-to-assume)")
    jobs = doc.get("jobs") or {}
    deploy_jobs = {name: job for name, job in jobs.items() if "sam deploy" in runs(job)}
    envs = {}
    for name, job in deploy_jobs.items():
        match = re.search(r"sam deploy\b.*--config-env\s+(\S+)", runs(job))
        envs[match.group(1) if match else None] = (name, job)
        permissions = job.get("permissions") or doc.get("permissions") or {}
        if not isinstance(permissions, dict) or permissions.get("id-token") != "write":
            problems.append(f"{name}: needs permissions id-token: write for OIDC")
        aws = uses(job, "aws-actions/configure-aws-credentials")
        if not aws or not aws[0].get("with", {}).get("role-to-assume"):
            problems.append(f"{name}: must assume a role with aws-actions/configure-aws-credentials")
        for step in aws:
            keys = set(step.get("with", {}))
            if keys & {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"}:
                problems.append(f"{name}: long-lived AWS keys given to configure-aws-credentials")
        if "sam build" not in runs(job):
            problems.append(f"{name}: no sam build")
        checkout = uses(job, "actions/checkout")
        if not checkout or "workflow_run.head_sha" not in str(checkout[0].get("with", {}).get("ref")):
            problems.append(f"{name}: must check out the commit CI tested (workflow_run.head_sha)")
    if set(envs) != {"staging", "production"}:
        return [*problems, f"expected sam deploy --config-env staging and production, got {sorted(map(str, envs))}"]
    staging_name, staging = envs["staging"]
    production_name, production = envs["production"]
    condition = str(staging.get("if", ""))
    if "workflow_run.conclusion == 'success'" not in condition:
        problems.append("staging must deploy only when CI succeeded")
    needs = production.get("needs")
    if staging_name not in (needs if isinstance(needs, list) else [needs]):
        problems.append("production must need the staging deploy")
    environment = production.get("environment")
    environment_name = environment.get("name") if isinstance(environment, dict) else environment
    if environment_name != "production":
        problems.append("production must run in the `production` GitHub environment (required reviewers)")
    if str(staging.get("environment", "")) != "staging" and (staging.get("environment") or {}).get("name") != "staging":
        problems.append("staging must run in the `staging` GitHub environment")
    return problems


def test_deploy_workflow():
    assert deploy_problems(load(DEPLOY), load(CI)["name"]) == []


@pytest.mark.parametrize(
    "breakage", ["long-lived keys", "no id-token", "no approval", "any branch", "on push", "not after success"]
)
def test_deploy_check_catches_mistakes(breakage):
    doc = copy.deepcopy(load(DEPLOY))
    staging, production = doc["jobs"]["staging"], doc["jobs"]["production"]
    if breakage == "long-lived keys":
        for step in uses(production, "aws-actions/configure-aws-credentials"):
            step["with"] = {
                "aws-access-key-id": "${{ secrets.AWS_ACCESS_KEY_ID }}",
                "aws-secret-access-key": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
                "aws-region": "us-east-1",
            }
    elif breakage == "no id-token":
        staging["permissions"] = {"contents": "read"}
    elif breakage == "no approval":
        production.pop("environment")
    elif breakage == "any branch":
        triggers(doc)["workflow_run"].pop("branches")
    elif breakage == "on push":
        triggers(doc)["push"] = {"branches": ["main"]}
    else:
        staging["if"] = "always()"
    assert deploy_problems(doc, "CI")
