#!/usr/bin/env python3
"""Run a deployed stack's one-off migration tasks (both services at once) and wait for them.

The deploy workflow runs it between its two `sam deploy`s: after the first has given the
migration task definitions the new image, before the second rolls the services onto it
(docs/deploy.md, "Every deploy"). Each task first (re)provisions the service's database users
(`python -m servicekit.dbusers`, as the RDS master user), then runs Alembic as the migration
user. Exit status 0 only if every container of every task exited 0.

    python scripts/run_migrations.py --stack-name b2b-platform-staging [--region us-east-1]

AWS credentials come from the environment (the workflow's OIDC session).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

SERVICES = ("Customers", "Orders")


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def start_migrations(ecs: Any, outputs: dict[str, str]) -> dict[str, str]:
    """Start one migration task per service; returns service → task ARN."""
    started = {}
    for service in SERVICES:
        response = ecs.run_task(
            cluster=outputs["ClusterName"],
            taskDefinition=outputs[f"{service}MigrationTaskDefinition"],
            launchType="FARGATE",
            count=1,
            startedBy="deploy-migrations",
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": outputs["MigrationSubnets"].split(","),
                    "securityGroups": [outputs[f"{service}MigrationSecurityGroup"]],
                    "assignPublicIp": "DISABLED",
                }
            },
        )
        if response.get("failures") or not response.get("tasks"):
            raise RuntimeError(f"{service} migration task did not start: {response.get('failures')}")
        started[service] = response["tasks"][0]["taskArn"]
    return started


def task_problems(task: dict[str, Any]) -> list[str]:
    """Why a stopped migration task did not succeed (empty: it did)."""
    problems = []
    for container in task.get("containers", []):
        code = container.get("exitCode")
        if code != 0:
            reason = container.get("reason") or task.get("stoppedReason") or "no exit code"
            problems.append(f"container {container.get('name')} exited {code} ({reason})")
    if not task.get("containers"):
        problems.append(f"no containers ran ({task.get('stoppedReason')})")
    return problems


def wait_for(ecs: Any, cluster: str, started: dict[str, str], timeout_seconds: int) -> list[str]:
    arns = list(started.values())
    ecs.get_waiter("tasks_stopped").wait(
        cluster=cluster, tasks=arns, WaiterConfig={"Delay": 10, "MaxAttempts": max(1, timeout_seconds // 10)}
    )
    tasks = {task["taskArn"]: task for task in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]}
    problems = []
    for service, arn in started.items():
        problems += [f"{service}: {problem}" for problem in task_problems(tasks.get(arn, {}))]
    return problems


def main(argv: list[str] | None = None, *, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region")
    parser.add_argument("--timeout-seconds", type=int, default=900)
    args = parser.parse_args(argv)
    if session is None:
        import boto3

        session = boto3.session.Session(region_name=args.region)
    outputs = stack_outputs(session.client("cloudformation"), args.stack_name)
    ecs = session.client("ecs")
    started = start_migrations(ecs, outputs)
    for service, arn in started.items():
        print(f"{service} migration task started: {arn}")
    problems = wait_for(ecs, outputs["ClusterName"], started, args.timeout_seconds)
    if problems:
        for problem in problems:
            print(f"migration failed - {problem}", file=sys.stderr)
        print(f"logs: CloudWatch log group {outputs.get('MigrationsLogGroup')}", file=sys.stderr)
        return 1
    print("migrations done: both databases at head, users provisioned")
    return 0


if __name__ == "__main__":
    sys.exit(main())
