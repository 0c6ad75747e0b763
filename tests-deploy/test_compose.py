"""docker-compose.yml: schema, secrets, ports, health checks, start order, and every component
started (as far as its first connection) from exactly the environment compose would give it.

`docker compose config`/`up` cannot run here (no Docker engine); these checks stand in for them.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from deploycheck import (
    IMAGES_BY_DOCKERFILE,
    ROOT,
    InterpolationError,
    as_argv,
    depends_on,
    dockerfile_env,
    healthcheck_argv,
    healthcheck_instruction_argv,
    image_command,
    interpolate,
    is_one_shot,
    load_compose,
    parse_dockerfile,
    plaintext_secret_problems,
    probe,
    published_ports,
    references,
    run,
    secret_names,
    service_environment,
    tool,
)

from servicekit.dbusers import MIGRATION_PRIVILEGES, RUNTIME_PRIVILEGES

# moto accepts any credentials; these literals are not secrets (see x-local-aws in the file).
MOTO_DUMMIES = {("AWS_ACCESS_KEY_ID", "moto-local"), ("AWS_SECRET_ACCESS_KEY", "moto-local")}

# Which containers may see which secret: each gets only what it uses.
SECRET_USERS = {
    "MYSQL_ROOT_PASSWORD": {"mysql"},
    "CUSTOMERS_DB_PASSWORD": {"mysql", "customers-seed", "customers-service"},
    "ORDERS_DB_PASSWORD": {"mysql", "orders-seed", "orders-service"},
    "CUSTOMERS_DB_MIGRATE_PASSWORD": {"mysql", "customers-migrate"},
    "ORDERS_DB_MIGRATE_PASSWORD": {"mysql", "orders-migrate"},
    "DEMO_ADMIN_PASSWORD": {"customers-seed"},
    "DEMO_USER_PASSWORD": {"customers-seed"},
    "USER_JWT_KEYS": {"customers-service", "orders-service", "bff"},
    # One service identity per container, its private keys its own (docs/auth.md).
    "CUSTOMERS_SERVICE_JWT_PRIVATE_KEYS": {"customers-service"},
    "ORDERS_SERVICE_JWT_PRIVATE_KEYS": {"orders-service"},
    "ORCHESTRATOR_JWT_PRIVATE_KEYS": {"bff"},
    "PAYMENTS_JWT_PRIVATE_KEYS": {"payments"},
    "SWEEPER_JWT_PRIVATE_KEYS": {"sweeper"},
    "PAYMENT_GATEWAY_API_KEY": {"payment-gateway", "payments"},
}

# The database each container of ours uses: (database, user, the .env variable holding its password).
# Migrations run as the migration user (DDL); everything else as the runtime user (DML only).
DATABASES = {
    "customers-migrate": ("customers_db", "customers_migrate", "CUSTOMERS_DB_MIGRATE_PASSWORD"),
    "customers-seed": ("customers_db", "customers_app", "CUSTOMERS_DB_PASSWORD"),
    "customers-service": ("customers_db", "customers_app", "CUSTOMERS_DB_PASSWORD"),
    "orders-migrate": ("orders_db", "orders_migrate", "ORDERS_DB_MIGRATE_PASSWORD"),
    "orders-seed": ("orders_db", "orders_app", "ORDERS_DB_PASSWORD"),
    "orders-service": ("orders_db", "orders_app", "ORDERS_DB_PASSWORD"),
}

PUBLISHED = {3000: "bff", 3001: "customers-service", 3002: "orders-service", 3003: "payment-gateway"}

# Start order the platform needs (more edges are allowed).
REQUIRED_EDGES = {
    ("customers-migrate", "mysql", "service_healthy"),
    ("orders-migrate", "mysql", "service_healthy"),
    ("customers-seed", "customers-migrate", "service_completed_successfully"),
    ("orders-seed", "orders-migrate", "service_completed_successfully"),
    ("customers-service", "customers-migrate", "service_completed_successfully"),
    ("orders-service", "orders-migrate", "service_completed_successfully"),
    ("sqs-queues", "sqs", "service_healthy"),
    ("bff", "customers-service", "service_healthy"),
    ("bff", "orders-service", "service_healthy"),
    ("bff", "sqs-queues", "service_completed_successfully"),
    ("payments", "orders-service", "service_healthy"),
    ("payments", "sqs-queues", "service_completed_successfully"),
    ("payments", "payment-gateway", "service_healthy"),
    ("sweeper", "orders-service", "service_healthy"),
    ("sweeper", "sqs-queues", "service_completed_successfully"),
}

LONG_RUNNING = {"mysql", "sqs", "customers-service", "orders-service", "bff", "payments", "sweeper", "payment-gateway"}
ONE_SHOTS = {"customers-migrate", "orders-migrate", "customers-seed", "orders-seed", "sqs-queues"}


# --- schema -------------------------------------------------------------------------------------


def schema_errors(document: dict, schema: dict) -> list[str]:
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_matches_the_compose_specification(compose, compose_schema):
    assert schema_errors(compose, compose_schema) == []


@pytest.mark.parametrize(
    "breakage",
    ["unknown condition", "misspelt key", "restart as a mapping", "healthcheck test as a number"],
)
def test_schema_validation_catches_mistakes(compose, compose_schema, breakage):
    broken = copy.deepcopy(compose)
    service = broken["services"]["customers-service"]
    if breakage == "unknown condition":
        service["depends_on"]["mysql"]["condition"] = "healthy"
    elif breakage == "misspelt key":
        service["helthcheck"] = service.pop("healthcheck")
    elif breakage == "restart as a mapping":
        service["restart"] = {"policy": "always"}
    else:
        service["healthcheck"]["test"] = 42
    assert schema_errors(broken, compose_schema)


def test_the_schema_is_the_pinned_one_from_a_registry_package(compose_schema):
    assert compose_schema["title"] == "Compose Specification"
    result = run([sys.executable, str(ROOT / "tools" / "fetch_compose_schema.py"), "--check"])
    assert result.returncode == 0, result.stderr


# --- secrets ----------------------------------------------------------------------------------


def test_no_secret_is_written_in_the_compose_file(compose_raw):
    assert plaintext_secret_problems(compose_raw, MOTO_DUMMIES) == []


@pytest.mark.parametrize(
    "edit",
    [
        ("${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is not set; run make env}", "hunter2hunter2"),
        ("${USER_JWT_KEYS:?USER_JWT_KEYS is not set; run make env}", "${USER_JWT_KEYS:-k1:local-default}"),
        (
            "DB_HOST: mysql\n  DB_PORT",
            "DATABASE_URL: mysql+pymysql://customers_app:s3cret@mysql/customers_db\n  DB_PORT",
        ),
        ("moto-local\n  PAYMENTS", "AKIAREALLOOKINGKEY\n  PAYMENTS"),
    ],
    ids=["literal password", "secret with a default", "password in a URL", "real-looking AWS key"],
)
def test_secret_check_catches_a_committed_secret(compose_text, edit):
    old, new = edit
    assert old in compose_text, f"{old!r} no longer in docker-compose.yml: update the test"
    assert plaintext_secret_problems(yaml.safe_load(compose_text.replace(old, new, 1)), MOTO_DUMMIES)


def test_every_secret_is_required_from_dotenv(compose_text, env_example, dotenv):
    """Each secret is `${VAR:?...}` (compose refuses to start without it) and .env.example marks it
    `# secret` so `make env` generates it; every other variable has a default or is in .env.example."""
    secrets = secret_names(env_example)
    assert set(SECRET_USERS) <= secrets, "a secret compose uses is not generated by make env"
    example_names = set(re.findall(r"^([A-Z0-9_]+)=", env_example, flags=re.M))
    for name, op in references(compose_text):
        if name in secrets:
            assert op == ":?", f"{name} must be ${{{name}:?...}}"
        else:
            assert op in (":-", "-") or name in example_names, f"${name} has no default and is not in .env.example"
    for name in SECRET_USERS:
        without = {key: value for key, value in dotenv.items() if key != name}
        with pytest.raises(InterpolationError, match=name):
            load_compose(compose_text, without)


def test_each_container_gets_only_the_secrets_it_uses(compose_raw, env_example):
    holders: dict[str, set[str]] = {name: set() for name in secret_names(env_example)}
    for service_name, service in compose_raw["services"].items():
        for value in service_environment(service).values():
            for name, _ in references(value):
                if name in holders:
                    holders[name].add(service_name)
    unexpected = set(holders) - set(SECRET_USERS)
    assert not unexpected, f"new secret(s) {unexpected}: decide which containers get them (SECRET_USERS)"
    assert {name: holders[name] for name in SECRET_USERS} == SECRET_USERS


# --- ports, health checks, start order ------------------------------------------------------------


def image_instructions(service: dict) -> list | None:
    build = service.get("build")
    if not build:
        return None
    dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
    context = build.get("context", ".") if isinstance(build, dict) else build
    return parse_dockerfile((ROOT / context / dockerfile).read_text())


def container_env(service: dict) -> dict[str, str]:
    instructions = image_instructions(service)
    base = dockerfile_env(instructions) if instructions else {}
    base.pop("PYTHONPATH", None)  # the image's source layout; the probe imports from the dev venv
    return {**base, **service_environment(service)}


def container_command(service: dict) -> list[str]:
    command = as_argv(service.get("command"))
    if command:
        return command
    instructions = image_instructions(service)
    return image_command(instructions) if instructions else []


def container_healthcheck(service: dict) -> list[str]:
    if "healthcheck" in service:
        return healthcheck_argv(service["healthcheck"])
    instructions = image_instructions(service)
    return healthcheck_instruction_argv(instructions) if instructions else []


def listening_port(service: dict) -> int | None:
    """The port the container's process listens on: --port in its command, else PORT (GATEWAY_PORT
    for the gateway simulator), else the image's."""
    command = container_command(service)
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    env = container_env(service)
    port = env.get("PORT") or env.get("GATEWAY_PORT")
    return int(port) if port else None


def service_ports(compose: dict) -> dict[str, int]:
    ports = {name: listening_port(service) for name, service in compose["services"].items()}
    ports.update({"mysql": 3306, "sqs": 5000})
    return ports


def url_problems(compose: dict, where: str, text: str, own_service: str | None = None) -> list[str]:
    """URLs between containers must name a service and the port it listens on."""
    problems = []
    ports = service_ports(compose)
    for url in re.findall(r"https?://[^\s'\"]+", text):
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 80
        if host in ("127.0.0.1", "localhost") and own_service:
            host = own_service
        if host not in compose["services"]:
            problems.append(f"{where}: {url} names no compose service")
        elif ports.get(host) != port:
            problems.append(f"{where}: {url} but {host} listens on {ports.get(host)}")
    return problems


def test_published_ports(compose):
    published = {}
    for name, service in compose["services"].items():
        for host_ip, host_port, container_port in published_ports(service):
            published[host_port] = name
            assert host_ip == "127.0.0.1", f"{name} publishes {host_port} beyond this machine"
            assert container_port == listening_port(service), f"{name}: {container_port} is not where it listens"
    assert published == PUBLISHED


def test_urls_between_containers_name_real_services_and_ports(compose):
    problems = []
    for name, service in compose["services"].items():
        for key, value in container_env(service).items():
            problems += url_problems(compose, f"{name}.{key}", value)
        problems += url_problems(compose, f"{name}.command", " ".join(container_command(service)))
        problems += url_problems(compose, f"{name}.healthcheck", " ".join(container_healthcheck(service)), name)
    assert problems == []


def test_url_check_catches_a_wrong_port(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["orders-service"]["environment"]["CUSTOMERS_API_URL"] = "http://customers-service:8000"
    env = container_env(broken["services"]["orders-service"])
    assert url_problems(broken, "orders-service", env["CUSTOMERS_API_URL"])


def test_customers_service_reports_deletes_to_orders_service(compose):
    """Without ORDERS_API_URL it would report to its own container's loopback and only log failures."""
    env = container_env(compose["services"]["customers-service"])
    assert env.get("ORDERS_API_URL") == "http://orders-service:3002"
    assert url_problems(compose, "customers-service.ORDERS_API_URL", env["ORDERS_API_URL"]) == []


def healthcheck_problems(compose: dict) -> list[str]:
    problems = []
    for name, service in compose["services"].items():
        check = container_healthcheck(service)
        if is_one_shot(service):
            continue
        if not check:
            problems.append(f"{name} runs for good but has no health check")
            continue
        if check[:2] == ["python", "-c"]:
            try:
                compile(check[2], f"{name}-healthcheck", "exec")
            except SyntaxError as exc:
                problems.append(f"{name}: health check is not valid Python: {exc}")
            env = container_env(service)
            for variable in re.findall(r"environ\[['\"](\w+)['\"]\]", check[2]):
                if variable not in env:
                    problems.append(f"{name}: health check reads {variable}, which the container lacks")
    return problems


def test_long_running_services_have_health_checks(compose):
    assert {n for n, s in compose["services"].items() if not is_one_shot(s)} == LONG_RUNNING
    assert {n for n, s in compose["services"].items() if is_one_shot(s)} == ONE_SHOTS
    assert healthcheck_problems(compose) == []


def test_health_check_check_catches_a_missing_one(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["payments"]["healthcheck"] = {"disable": True}
    broken["services"]["sweeper"]["healthcheck"]["test"] = ["CMD", "python", "-c", "import os; os.environ['NOPE']"]
    assert len(healthcheck_problems(broken)) == 2


def depends_on_problems(compose: dict) -> list[str]:
    services = compose["services"]
    problems = []
    edges = set()
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            edges.add((name, target, condition))
            if target not in services:
                problems.append(f"{name} depends on unknown {target}")
                continue
            expected = "service_completed_successfully" if is_one_shot(services[target]) else "service_healthy"
            if condition != expected:
                problems.append(f"{name} -> {target}: condition {condition!r}, expected {expected!r}")
            if expected == "service_healthy" and not container_healthcheck(services[target]):
                problems.append(f"{name} waits for {target} to be healthy, but it has no health check")
    problems += [f"missing start-order edge {edge}" for edge in sorted(REQUIRED_EDGES - edges)]
    # no cycles
    graph = {name: set(depends_on(service)) for name, service in services.items()}
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        if node in path:
            problems.append(f"dependency cycle: {' -> '.join((*path, node))}")
            return
        if node in done:
            return
        for target in graph.get(node, ()):
            visit(target, (*path, node))
        done.add(node)

    for node in graph:
        visit(node, ())
    return problems


def test_start_order_uses_health_and_completion_conditions(compose):
    assert depends_on_problems(compose) == []


def test_start_order_check_catches_mistakes(compose):
    broken = copy.deepcopy(compose)
    broken["services"]["bff"]["depends_on"] = ["customers-service", "orders-service"]  # no conditions
    broken["services"]["orders-service"]["depends_on"]["orders-migrate"]["condition"] = "service_healthy"
    broken["services"]["mysql"]["depends_on"] = {"customers-migrate": {"condition": "service_completed_successfully"}}
    problems = depends_on_problems(broken)
    assert any("bff -> customers-service" in p for p in problems)
    assert any("orders-service -> orders-migrate" in p for p in problems)
    assert any("cycle" in p for p in problems)


def test_migrations_run_as_one_shots_never_in_a_server(compose):
    services = compose["services"]
    for name in LONG_RUNNING:
        command = " ".join(container_command(services[name]))
        assert not re.search(r"\b(migrate|alembic|seed-demo)\b", command), f"{name} runs {command}"
    for package, name in (("customers_service", "customers-migrate"), ("orders_service", "orders-migrate")):
        assert container_command(services[name]) == ["python", "-m", f"{package}.cli", "migrate"]
        assert services[name]["restart"] == "no"


def test_images_build_from_the_repository_root(compose):
    images: dict[str, set[str]] = {}
    for name, service in compose["services"].items():
        build = service.get("build")
        if not build:
            assert ":" in service.get("image", "") and not service["image"].endswith(":latest"), f"{name}: pin a tag"
            continue
        assert build["context"] == ".", f"{name}: the context must be the repository root (servicekit)"
        assert build["dockerfile"] in IMAGES_BY_DOCKERFILE, f"{name}: unknown Dockerfile {build['dockerfile']}"
        images.setdefault(build["dockerfile"], set()).add(service["image"])
    assert set(images) == set(IMAGES_BY_DOCKERFILE)
    assert all(len(tags) == 1 for tags in images.values()), images


# --- MySQL init script ------------------------------------------------------------------------------

INIT_SCRIPT = ROOT / "deploy" / "mysql" / "init" / "10-service-databases.sh"


def run_init_script(env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    """Run the init script with a stand-in `mysql` that records the SQL it is given."""
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir(exist_ok=True)
    (stub_dir / "mysql").write_text('#!/bin/bash\ncat > "$SQL_OUT"\n')
    (stub_dir / "mysql").chmod(0o755)
    full = {"PATH": f"{stub_dir}:/usr/bin:/bin", "SQL_OUT": str(tmp_path / "init.sql"), **env}
    return subprocess.run(["bash", str(INIT_SCRIPT)], env=full, capture_output=True, text=True, check=False)


def test_mysql_init_script_passes_shellcheck(require_tool):
    result = run([str(require_tool(tool, "shellcheck")), str(INIT_SCRIPT)])
    assert result.returncode == 0, result.stdout


def test_mysql_init_creates_one_least_privilege_user_per_database(compose, tmp_path):
    mysql = compose["services"]["mysql"]
    assert "./deploy/mysql/init:/docker-entrypoint-initdb.d:ro" in mysql["volumes"]
    result = run_init_script(service_environment(mysql), tmp_path)
    assert result.returncode == 0, result.stderr
    sql = (tmp_path / "init.sql").read_text()
    grants = re.findall(r"GRANT (.+?) ON `(\w+)`\.\* TO '(\w+)'@'%'", sql)
    assert {(database, user) for _, database, user in grants} == {
        (database, user) for database, user, _ in DATABASES.values()
    }
    for privileges, _, _ in grants:
        assert "ALL" not in privileges and "GRANT OPTION" not in privileges and "SUPER" not in privileges
    assert "*.*" not in sql
    # The runtime users change rows only; the migration users may change the schema. The same lists
    # as servicekit.dbusers, which provisions the users in AWS.
    assert init_grant_problems(sql) == []
    env = service_environment(mysql)
    for _, user, password_variable in DATABASES.values():
        assert f"'{user}'@'%' IDENTIFIED BY '{env[password_variable]}'" in sql


def init_grant_problems(sql: str) -> list[str]:
    problems = []
    for privileges, database, user in re.findall(r"GRANT (.+?) ON `(\w+)`\.\* TO '(\w+)'@'%'", sql):
        granted = tuple(p.strip() for p in privileges.split(","))
        expected = MIGRATION_PRIVILEGES if user.endswith("_migrate") else RUNTIME_PRIVILEGES
        if granted != expected:
            problems.append(f"{user} on {database}: {granted}, expected {expected}")
        if database != user.rsplit("_", 1)[0] + "_db":
            problems.append(f"{user} is granted rights on {database}, not its own database")
    return problems


def test_init_grant_check_catches_ddl_for_a_runtime_user():
    sql = "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP ON `orders_db`.* TO 'orders_app'@'%';\n"
    sql += "GRANT SELECT ON `customers_db`.* TO 'orders_migrate'@'%';\n"
    assert len(init_grant_problems(sql)) == 3


def test_mysql_init_refuses_to_run_without_passwords(compose, tmp_path):
    env = service_environment(compose["services"]["mysql"])
    env.pop("ORDERS_DB_PASSWORD")
    result = run_init_script(env, tmp_path)
    assert result.returncode != 0 and "ORDERS_DB_PASSWORD" in result.stderr
    env = service_environment(compose["services"]["mysql"])
    env.pop("CUSTOMERS_DB_MIGRATE_PASSWORD")
    result = run_init_script(env, tmp_path)
    assert result.returncode != 0 and "CUSTOMERS_DB_MIGRATE_PASSWORD" in result.stderr


# --- every component, started from its compose environment --------------------------------------


def our_services(compose: dict) -> list[str]:
    return sorted(name for name, service in compose["services"].items() if service.get("build"))


@pytest.fixture(scope="module")
def probes(compose, tmp_path_factory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("probes")
    names = our_services(compose)
    services = compose["services"]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = pool.map(
            lambda name: probe(container_command(services[name]), container_env(services[name]), tmp), names
        )
    return dict(zip(names, results, strict=True))


def test_every_container_of_ours_accepts_its_compose_environment(compose, probes, dotenv):
    """Each command runs with the real Settings/config built from the compose environment
    (with .env interpolated), up to its first database or network connection."""
    assert set(probes) == ONE_SHOTS | (LONG_RUNNING - {"mysql", "sqs"})
    failures = {name: f"{r['error']}\n{r.get('output', '')}" for name, r in probes.items() if not r["ok"]}
    assert not failures, json.dumps(failures, indent=1)
    for name, (database, user, password_variable) in DATABASES.items():
        result = probes[name]
        reached = result["ready"] if result["kind"] == "wsgi" else result
        assert reached.get("reached") == "database", f"{name} never reached its database: {result}"
        target = (reached["host"], reached["port"], reached["database"], reached["user"])
        assert target == ("mysql", 3306, database, user), name
        assert reached["password"] == dotenv[password_variable]


def test_web_services_serve_where_compose_publishes_them(compose, probes):
    for name in ("customers-service", "orders-service"):
        result = probes[name]
        assert result["health_status"] == 200
        assert result["gunicorn"]["bind"] == f"0.0.0.0:{listening_port(compose['services'][name])}"
        assert result["gunicorn"]["workers"] == 2


def test_orchestrator_runners_are_configured_for_the_compose_network(compose, probes):
    services = compose["services"]
    used = {
        "bff": ("customers_api_url", "orders_api_url", "payments_queue_url"),
        "payments": ("orders_api_url", "payments_dlq_url", "payment_gateway_url"),
        "sweeper": ("orders_api_url", "payments_queue_url"),
    }
    for name, keys in used.items():
        settings = probes[name]["settings"]
        problems = []
        for key in keys:
            assert settings[key], f"{name}: {key} is not set"
            problems += url_problems(compose, f"{name}: {key}", settings[key])
        assert problems == []
    assert probes["bff"]["args"]["host"] == "0.0.0.0"
    assert probes["bff"]["args"]["port"] == 3000
    assert probes["payments"]["args"]["queue_url"] == container_env(services["payments"])["PAYMENTS_QUEUE_URL"]
    assert probes["sqs-queues"]["args"]["endpoint_url"] == "http://sqs:5000"


@pytest.mark.parametrize(
    ("service", "change", "expected"),
    [
        ("customers-service", {"SERVICE_JWT_PRIVATE_KEYS": None}, "SERVICE_JWT_PRIVATE_KEYS"),
        ("orders-service", {"SERVICE_JWT_PUBLIC_KEYS": None}, "SERVICE_JWT_PUBLIC_KEYS"),
        ("bff", {"SERVICE_JWT_PRIVATE_KEYS": None}, "SERVICE_JWT_PRIVATE_KEYS"),
        ("orders-service", {"DB_HOST": None}, "DATABASE_URL"),
        ("orders-service", {"USER_JWT_KEYS": "k1:too-short"}, "USER_JWT_KEYS"),
        ("customers-seed", {"APP_ENV": "production"}, "exited with 2"),
        ("bff", {"PAYMENTS_QUEUE_URL": None}, "PAYMENTS_QUEUE_URL"),
        ("payments", {"PAYMENTS_DLQ_URL": None}, "PAYMENTS_DLQ_URL"),
        ("payments", {"PAYMENT_GATEWAY_API_KEY": None}, "PAYMENT_GATEWAY_API_KEY"),
        ("payment-gateway", {"PAYMENT_GATEWAY_API_KEY": None}, "PAYMENT_GATEWAY_API_KEY"),
        ("payment-gateway", {"PAYMENT_SIMULATION_MODE": "sometimes"}, "PAYMENT_SIMULATION_MODE"),
        ("sweeper", {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "AWS_ACCESS_KEY_ID"),
    ],
)
def test_probe_fails_when_the_environment_is_incomplete(compose, tmp_path, service, change, expected):
    target = compose["services"][service]
    env = container_env(target)
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    result = probe(container_command(target), env, tmp_path)
    assert not result["ok"]
    assert expected in result["error"] + result.get("output", "")


def test_the_payment_gateway_keeps_its_ledger_on_its_volume_and_serves_where_payments_call(compose, probes, dotenv):
    service = compose["services"]["payment-gateway"]
    result = probes["payment-gateway"]
    assert result["settings"]["host"] == "0.0.0.0" and result["settings"]["port"] == listening_port(service) == 3003
    assert result["settings"]["api_key"] == dotenv["PAYMENT_GATEWAY_API_KEY"]
    ledger = result["reached"] == "database" and result["path"]
    assert ledger == result["settings"]["ledger_path"] == "/data/gateway-ledger.db"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
    assert mounts["/data"] in compose["volumes"], "the ledger must be on a named volume"
    payments = container_env(compose["services"]["payments"])
    assert payments["PAYMENT_GATEWAY_URL"] == "http://payment-gateway:3003"
    assert payments["PAYMENT_GATEWAY_API_KEY"] == dotenv["PAYMENT_GATEWAY_API_KEY"]
    assert "PAYMENT_SIMULATION_MODE" not in payments  # the simulator decides, not the Lambda


def test_queue_urls_match_what_the_queue_tool_creates(compose):
    """Run the sqs-queues command against moto's server and compare with the URLs compose hands out."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        service = compose["services"]["sqs-queues"]
        command = container_command(service)
        command[command.index("--endpoint-url") + 1] = f"http://{host}:{port}"
        env = {**container_env(service), "PATH": os.environ["PATH"]}
        env.pop("AWS_ENDPOINT_URL_SQS")
        result = subprocess.run(
            [sys.executable, *command[1:], "--format", "json"], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        created = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    handed_out = container_env(compose["services"]["bff"])
    assert urlsplit(created["queue_url"]).path == urlsplit(handed_out["PAYMENTS_QUEUE_URL"]).path
    assert urlsplit(created["dlq_url"]).path == urlsplit(handed_out["PAYMENTS_DLQ_URL"]).path


def test_interpolation_follows_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}/${EMPTY-d}/$$SET/$SET", env) == "x/d/d//$SET/x"
    assert interpolate("${SET:+alt}/${EMPTY:+alt}", env) == "alt/"
    with pytest.raises(InterpolationError, match="EMPTY: needed"):
        interpolate("${EMPTY:?needed}", env)
