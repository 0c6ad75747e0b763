"""scripts/run_migrations.py against stubbed AWS APIs (botocore's Stubber checks every request's
shape against the real API models): it starts one task per service in the private subnets without
a public IP, waits, and fails unless every container exited 0."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

SCRIPT = Path(__file__).resolve().parents[1] / "run_migrations.py"
spec = importlib.util.spec_from_file_location("run_migrations", SCRIPT)
run_migrations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_migrations)

CLUSTER = "b2b-staging"
OUTPUTS = {
    "ClusterName": CLUSTER,
    "CustomersMigrationTaskDefinition": "arn:aws:ecs:us-east-1:111111111111:task-definition/customers-migrate:3",
    "OrdersMigrationTaskDefinition": "arn:aws:ecs:us-east-1:111111111111:task-definition/orders-migrate:3",
    "CustomersMigrationSecurityGroup": "sg-0customers",
    "OrdersMigrationSecurityGroup": "sg-0orders",
    "MigrationSubnets": "subnet-0a,subnet-0b",
    "MigrationsLogGroup": "/b2b/staging/migrations",
}
ARNS = {
    "Customers": "arn:aws:ecs:us-east-1:111111111111:task/b2b-staging/c1",
    "Orders": "arn:aws:ecs:us-east-1:111111111111:task/b2b-staging/o1",
}


class StubbedSession:
    def __init__(self):
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        self.clients = {name: session.client(name) for name in ("cloudformation", "ecs")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}

    def client(self, name):
        return self.clients[name]


def stopped_task(arn: str, exit_codes: dict[str, int | None]) -> dict:
    return {
        "taskArn": arn,
        "lastStatus": "STOPPED",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": name, "exitCode": code} for name, code in exit_codes.items() if code is not None]
        + [{"name": name, "reason": "dependency not met"} for name, code in exit_codes.items() if code is None],
    }


def stub_run(session: StubbedSession, orders_exit_codes: dict[str, int | None]) -> None:
    cloudformation, ecs = session.stubs["cloudformation"], session.stubs["ecs"]
    cloudformation.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "b2b-platform-staging",
                    "CreationTime": "2025-01-01T00:00:00Z",
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in OUTPUTS.items()],
                }
            ]
        },
        {"StackName": "b2b-platform-staging"},
    )
    for service, security_group in (("Customers", "sg-0customers"), ("Orders", "sg-0orders")):
        ecs.add_response(
            "run_task",
            {"tasks": [{"taskArn": ARNS[service]}], "failures": []},
            {
                "cluster": CLUSTER,
                "taskDefinition": OUTPUTS[f"{service}MigrationTaskDefinition"],
                "launchType": "FARGATE",
                "count": 1,
                "startedBy": "deploy-migrations",
                "networkConfiguration": {
                    "awsvpcConfiguration": {
                        "subnets": ["subnet-0a", "subnet-0b"],
                        "securityGroups": [security_group],
                        "assignPublicIp": "DISABLED",
                    }
                },
            },
        )
    tasks = [
        stopped_task(ARNS["Customers"], {"db-users": 0, "migrate": 0}),
        stopped_task(ARNS["Orders"], orders_exit_codes),
    ]
    expected = {"cluster": CLUSTER, "tasks": list(ARNS.values())}
    running = [{**tasks[0], "lastStatus": "RUNNING"}, tasks[1]]
    ecs.add_response("describe_tasks", {"tasks": running}, expected)  # the waiter's first poll
    ecs.add_response("describe_tasks", {"tasks": tasks}, expected)  # the waiter's second poll
    ecs.add_response("describe_tasks", {"tasks": tasks}, expected)  # the script's own look
    for stub in session.stubs.values():
        stub.activate()


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr("time.sleep", lambda _seconds: None)


def test_both_migration_tasks_run_privately_and_succeed(capsys):
    session = StubbedSession()
    stub_run(session, {"db-users": 0, "migrate": 0})
    assert run_migrations.main(["--stack-name", "b2b-platform-staging"], session=session) == 0
    for stub in session.stubs.values():
        stub.assert_no_pending_responses()
    assert "migrations done" in capsys.readouterr().out


@pytest.mark.parametrize(
    "exit_codes, expected",
    [
        ({"db-users": 0, "migrate": 1}, "container migrate exited 1"),
        ({"db-users": 1, "migrate": None}, "container db-users exited 1"),
    ],
    ids=["alembic failed", "provisioning failed, migrate never ran"],
)
def test_a_failed_container_fails_the_deploy(capsys, exit_codes, expected):
    session = StubbedSession()
    stub_run(session, exit_codes)
    assert run_migrations.main(["--stack-name", "b2b-platform-staging"], session=session) == 1
    err = capsys.readouterr().err
    assert f"Orders: {expected}" in err and "Customers" not in err
    assert "/b2b/staging/migrations" in err


def test_a_task_that_cannot_start_is_an_error():
    session = StubbedSession()
    session.stubs["ecs"].add_response("run_task", {"tasks": [], "failures": [{"reason": "RESOURCE:ENI"}]}, None)
    session.stubs["ecs"].activate()
    with pytest.raises(RuntimeError, match="RESOURCE:ENI"):
        run_migrations.start_migrations(session.client("ecs"), OUTPUTS)
