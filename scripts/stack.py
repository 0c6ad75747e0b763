#!/usr/bin/env python3
"""The whole platform as local processes on loopback: what `make run` starts.

  moto SQS server :4566 → queues `payments` + `payments-dlq` (redrive)
  payment gateway simulator :3003 (its ledger of charges in var/gateway-ledger.db)
  migrations + demo seed for both databases (SQLite files under var/ unless *_DATABASE_URL is set)
  customers-service :3001, orders-service :3002 (gunicorn)
  BFF :3000 (API Gateway HTTP API adapter → orchestrator Lambda handler)
  payments poller (SQS → payments Lambda, like an event source mapping), sweeper timer

`Stack` is also what the end-to-end tests drive: they start it on MariaDB with free ports and
short timers, stop and restart single processes, and read each process's JSON log file.
Every process runs in its own session (process group); stopping one stops its whole group
(gunicorn workers, the adapter's execution environments) and waits until none is left. On Linux
every process is also tied to the runner (scripts/die_with_parent.py), so none outlives a runner
killed with SIGKILL. How `make run` stops: docs/local-runner.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m", "\033[37m"]
RESET = "\033[0m"

WEB_SERVICES = ("customers-service", "orders-service")
# Process name → POWERTOOLS_SERVICE_NAME, as in template.yaml.
LAMBDA_SERVICE_NAMES = {"bff": "orchestrator", "payments": "payments", "sweeper": "sweeper"}
# Variables that must not leak from the developer's shell into local processes: real AWS
# credentials or endpoints, and database URLs meant for something else.
_NOT_INHERITED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS", "DATABASE_URL")
# Process name → its service identity (docs/auth.md): each gets its own private keys, and no other's.
SERVICE_IDENTITY = {
    "customers-service": "customers-service",
    "orders-service": "orders-service",
    "bff": "orchestrator",
    "payments": "payments",
    "sweeper": "sweeper",
}
PUBLIC_KEYS = "SERVICE_JWT_PUBLIC_KEYS"
# Who signs or verifies user tokens (the rest never see the ring).
USER_RING_HOLDERS = ("customers-service", "orders-service", "bff")


def private_keys_variable(caller: str) -> str:
    """Where .env keeps a caller's private keys (as servicekit.auth.private_keys_variable says)."""
    return caller.upper().replace("-", "_") + "_JWT_PRIVATE_KEYS"


# `make run` refuses to start without these (`make env` generates them).
REQUIRED_SECRETS = (
    "USER_JWT_KEYS",
    *(private_keys_variable(caller) for caller in SERVICE_IDENTITY.values()),
    PUBLIC_KEYS,
    "DEMO_ADMIN_PASSWORD",
    "DEMO_USER_PASSWORD",
    "PAYMENT_GATEWAY_API_KEY",
)


STATE_FILE_NAME = "stack-state.json"


class StackError(RuntimeError):
    """The stack could not start (the message says which process and where its log is)."""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; `#` starts a comment only at the start or after whitespace."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        name, _, value = stripped.partition("=")
        values[name.strip()] = value.split(" #")[0].strip()
    return values


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


# Children are killed by the kernel when the runner dies (prctl PR_SET_PDEATHSIG): Linux only.
PARENT_DEATH_SIGNAL = sys.platform.startswith("linux")
DIE_WITH_PARENT = ROOT / "scripts" / "die_with_parent.py"


class StopRequest:
    """Stop requests (SIGINT/SIGTERM) as plain counters, so a signal handler may record one.

    A Python signal handler runs in the main thread between two bytecodes, possibly while that
    thread holds a lock: inside `threading.Event.wait()`, `Event.set()` from the handler waits
    for the Event's own lock forever. So `signal()` only assigns attributes (no lock, no I/O,
    no logging), and whoever waits looks at `is_set()` every few tens of milliseconds.
    """

    def __init__(self) -> None:
        self.count = 0
        self.signum = 0

    def signal(self, signum: int, _frame: object = None) -> None:
        """Usable as the handler itself: `signal.signal(SIGTERM, request.signal)`."""
        self.signum = signum
        self.count += 1

    def set(self) -> None:
        """A stop requested by code rather than a signal (any thread)."""
        self.count += 1

    def is_set(self) -> bool:
        return self.count > 0


class _Spawner:
    """Forks every child from one thread that lives as long as the runner. The kernel sends the
    parent-death signal when the *thread* that forked a child exits, not the process: a child
    started from a short-lived thread (a pool's, a test's) would die with that thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def popen(self, argv: list[str], *, die_with_parent: bool, **kwargs: Any) -> subprocess.Popen:
        if not (die_with_parent and PARENT_DEATH_SIGNAL):
            return subprocess.Popen(argv, **kwargs)
        tied = [PYTHON, "-I", "-S", str(DIE_WITH_PARENT), str(os.getpid()), "--", *argv]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
            pool = self._pool
        return pool.submit(subprocess.Popen, tied, **kwargs).result()


spawner = _Spawner()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):  # gone (or a foreign process took the id)
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a foreign process took the id
        return False
    return _has_live_member(pgid)


def _has_live_member(pgid: int) -> bool:
    """Whether the group has a member that is not a zombie. An orphan (the adapter's resource
    tracker, say) ends as a zombie of init, which may reap it only a second or two later."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # not Linux: trust kill(0)
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, _ppid, group = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            return True
    return False


@dataclass
class ManagedProcess:
    """One child process (and its process group) whose output goes to a log file.

    Ready when `health_url` answers 200, or when a line containing one of `ready_markers`
    appears in its output after this start, or at once if it has neither.
    """

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    echo: bool = False
    colour: str = ""
    health_url: str | None = None
    ready_markers: tuple[str, ...] = ()
    # Killed by the kernel if the runner dies (Linux); off for a stack meant to outlive its starter.
    die_with_parent: bool = True
    # Processes started together stop together, after those started later (Stack.stop).
    wave: int = 0
    process: subprocess.Popen | None = field(default=None, init=False)
    _pump: threading.Thread | None = field(default=None, init=False)
    _log_offset: int = field(default=0, init=False)

    def start(self, timeout: float = 60.0, *, wait: bool = True, cancel: StopRequest | None = None) -> None:
        if self.running:
            raise StackError(f"{self.name} is already running")
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = spawner.popen(
            self.argv,
            die_with_parent=self.die_with_parent,
            env=dict(self.env),
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches only the runner; it stops children in order
        )
        self._pump = threading.Thread(target=self._copy_output, name=f"log-{self.name}", daemon=True)
        self._pump.start()
        if wait:
            self.wait_ready(timeout, cancel=cancel)

    def _copy_output(self) -> None:
        assert self.process and self.process.stdout
        with open(self.log_path, "ab", buffering=0) as log:
            for line in self.process.stdout:
                log.write(line)
                if self.echo:
                    text = line.decode(errors="replace")
                    sys.stdout.write(f"{self.colour}{self.name:>17} |{RESET} {text}")
                    sys.stdout.flush()

    def _output_since_start(self) -> str:
        if not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def is_ready(self) -> bool:
        if self.health_url:
            try:  # short: a stop request is noticed between two probes
                return requests.get(self.health_url, timeout=2).status_code == 200
            except requests.RequestException:
                return False
        if self.ready_markers:
            output = self._output_since_start()
            return any(marker in output for marker in self.ready_markers)
        return True

    def wait_ready(self, timeout: float = 60.0, *, cancel: StopRequest | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            if self.process is not None and self.process.poll() is not None:
                raise StackError(self._failure(f"exited with code {self.process.returncode}"))
            if self.is_ready():
                return
            time.sleep(0.1)
        raise StackError(self._failure(f"was not ready within {timeout:.0f}s"))

    def _failure(self, what: str) -> str:
        if self._pump:
            self._pump.join(timeout=1)
        tail = "\n".join(self._output_since_start().splitlines()[-15:])
        return f"{self.name} {what}; log: {self.log_path}\n{tail}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self, timeout: float = 20.0, *, force: Callable[[], bool] | None = None) -> None:
        """SIGTERM to the whole process group, wait, SIGKILL what is left; no orphans.

        SIGKILL comes after `timeout` seconds, or as soon as `force()` (polled) says so.
        """
        self.terminate()
        self.wait_stopped(time.monotonic() + timeout, force=force)

    def terminate(self) -> None:
        """SIGTERM to the process group: the first half of `stop()`."""
        if self.process is not None:
            _signal_group(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, deadline: float, *, force: Callable[[], bool] | None = None) -> None:
        """Wait until the process group is gone; SIGKILL it at `deadline` or once `force()`."""
        if self.process is None:
            return
        pgid = self.process.pid  # leader of its own session
        again = time.monotonic() + 1
        # Workers of the group (gunicorn's, the adapter's environments) may outlive the leader briefly.
        while time.monotonic() < deadline and not (force is not None and force()):
            self.process.poll()  # reaps the leader, so a group of one zombie counts as gone
            if not _group_alive(pgid):
                break
            if time.monotonic() > again:
                # A signal that comes before a process has its handlers may be lost: a gunicorn
                # worker runs with its master's (which only queue it) until it has booted.
                _signal_group(pgid, signal.SIGTERM)
                again = time.monotonic() + 1
            time.sleep(0.05)
        if _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
        self.process.wait()
        settled = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < settled:
            time.sleep(0.05)
        if self._pump:
            self._pump.join(timeout=5)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []


@dataclass
class StackConfig:
    env: dict[str, str]
    customers_database_url: str
    orders_database_url: str
    log_dir: Path
    # Where migrations run, if not as the services' (DML-only) users: a user that may change the
    # schema (CUSTOMERS_/ORDERS_MIGRATE_DATABASE_URL). None: the services' URLs (SQLite, or one
    # all-rights user).
    customers_migrate_database_url: str | None = None
    orders_migrate_database_url: str | None = None
    bff_port: int = 3000
    customers_port: int = 3001
    orders_port: int = 3002
    sqs_port: int = 4566
    gateway_port: int = 3003
    # The gateway simulator's ledger; default: beside the logs (one ledger per stack).
    gateway_ledger_path: Path | None = None
    web_workers: int = 2
    web_threads: int = 4
    bff_environments: int = 4
    sweeper_interval_seconds: float = 30.0
    poller_wait_seconds: int = 1
    poller_batch_size: int = 10
    # Batches handled at once, each in its own environment: the event source mapping's
    # MaximumConcurrency (10 in template.yaml), scaled to a laptop.
    poller_concurrency: int = 4
    # The queue's redrive and redelivery (an event source mapping's behaviour depends on them).
    max_receive_count: int = 5
    visibility_timeout_seconds: int = 30
    echo: bool = False
    # Lets tests put a fault-injecting proxy between the BFF/sweeper and SQS.
    sqs_endpoint_for_publishers: str | None = None
    # Every process dies with the runner, even a runner killed with SIGKILL (Linux). Off only for
    # a stack meant to outlive the process that started it (`bench/run.py --keep-running`).
    die_with_runner: bool = True
    # A stop of the whole stack is graceful for this long at most; SIGKILL for what is left then.
    stop_timeout_seconds: float = 10.0

    @property
    def sqs_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sqs_port}"

    @property
    def urls(self) -> dict[str, str]:
        return {
            "bff": f"http://127.0.0.1:{self.bff_port}",
            "customers": f"http://127.0.0.1:{self.customers_port}",
            "orders": f"http://127.0.0.1:{self.orders_port}",
            "sqs": self.sqs_endpoint,
            "gateway": f"http://127.0.0.1:{self.gateway_port}",
        }

    @property
    def ledger_path(self) -> Path:
        return self.gateway_ledger_path or self.log_dir / "gateway-ledger.db"

    @property
    def ports(self) -> dict[str, int]:
        return {
            "BFF_PORT": self.bff_port,
            "CUSTOMERS_PORT": self.customers_port,
            "ORDERS_PORT": self.orders_port,
            "SQS_PORT": self.sqs_port,
            "GATEWAY_PORT": self.gateway_port,
        }


def default_config(echo: bool = True) -> StackConfig:
    """Configuration for `make run`: .env plus the environment (the environment wins).

    STACK_VAR_DIR moves the SQLite files and logs (default var/ in the repository).
    """
    env = {**read_env_file(ROOT / ".env"), **os.environ}
    var = Path(env.get("STACK_VAR_DIR") or ROOT / "var").resolve()
    var.mkdir(parents=True, exist_ok=True)
    return StackConfig(
        env=env,
        customers_database_url=env.get("CUSTOMERS_DATABASE_URL") or f"sqlite:///{var / 'customers.db'}",
        orders_database_url=env.get("ORDERS_DATABASE_URL") or f"sqlite:///{var / 'orders.db'}",
        customers_migrate_database_url=env.get("CUSTOMERS_MIGRATE_DATABASE_URL") or None,
        orders_migrate_database_url=env.get("ORDERS_MIGRATE_DATABASE_URL") or None,
        log_dir=var / "log",
        bff_port=int(env.get("BFF_PORT", "3000")),
        customers_port=int(env.get("CUSTOMERS_PORT", "3001")),
        orders_port=int(env.get("ORDERS_PORT", "3002")),
        sqs_port=int(env.get("SQS_PORT", "4566")),
        gateway_port=int(env.get("GATEWAY_PORT", "3003")),
        gateway_ledger_path=var / "gateway-ledger.db",
        sweeper_interval_seconds=float(env.get("SWEEPER_INTERVAL_SECONDS", "30")),
        max_receive_count=int(env.get("PAYMENTS_MAX_RECEIVE_COUNT", "5")),
        visibility_timeout_seconds=int(env.get("PAYMENTS_VISIBILITY_TIMEOUT_SECONDS", "30")),
        echo=echo,
    )


class Stack:
    def __init__(self, config: StackConfig, *, cancel: StopRequest | None = None) -> None:
        self.config = config
        self.processes: dict[str, ManagedProcess] = {}
        self.queue_urls: dict[str, str] = {}
        self.demo: dict[str, Any] = {}
        # Set (by a signal handler too) to abandon a start in progress; set again while stopping,
        # it turns the stop into SIGKILL for whatever is left.
        self.cancel = cancel or StopRequest()
        self._wave = 0  # how many `_start_together` groups have been started

    # --- environment per process ------------------------------------------------------------

    def _base_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in self.config.env.items()
            if not k.endswith(("DATABASE_URL", "JWT_PRIVATE_KEYS", "JWT_KEYS", PUBLIC_KEYS))
            and k not in _NOT_INHERITED
            and v is not None
        }
        env.setdefault("APP_ENV", "development")
        env.setdefault("AWS_REGION", "us-east-1")
        env["AWS_DEFAULT_REGION"] = env["AWS_REGION"]
        # moto accepts any credentials; dummies also keep real ones away from local processes.
        env["AWS_ACCESS_KEY_ID"] = "local"
        env["AWS_SECRET_ACCESS_KEY"] = "local"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def service_env(self, name: str) -> dict[str, str]:
        urls = self.config.urls
        env = self._base_env()
        env["CUSTOMERS_API_URL"] = urls["customers"]
        env["ORDERS_API_URL"] = urls["orders"]
        env["SERVICE_NAME"] = name
        env.update(self._keys_of(name))
        if name in WEB_SERVICES:
            customers = name == "customers-service"
            env["DATABASE_URL"] = self.config.customers_database_url if customers else self.config.orders_database_url
            env["PORT"] = str(self.config.customers_port if customers else self.config.orders_port)
            env["HOST"] = "127.0.0.1"
            env["WEB_CONCURRENCY"] = str(self.config.web_workers)
            env["GUNICORN_THREADS"] = str(self.config.web_threads)
        elif name in LAMBDA_SERVICE_NAMES:
            env["POWERTOOLS_SERVICE_NAME"] = LAMBDA_SERVICE_NAMES[name]
            publishers = name in ("bff", "sweeper")
            endpoint = self.config.sqs_endpoint_for_publishers if publishers else None
            env["AWS_ENDPOINT_URL_SQS"] = endpoint or self.config.sqs_endpoint
            env["PAYMENTS_QUEUE_URL"] = self.queue_urls.get("payments", "")
            env["PAYMENTS_DLQ_URL"] = self.queue_urls.get("payments-dlq", "")
            env["PAYMENT_GATEWAY_URL"] = urls["gateway"]
        elif name == "gateway":  # PAYMENT_SIMULATION_MODE, its key and GATEWAY_FAULT_* come from the env
            env["GATEWAY_HOST"] = "127.0.0.1"
            env["GATEWAY_PORT"] = str(self.config.gateway_port)
            env["GATEWAY_LEDGER_PATH"] = str(self.config.ledger_path)
        return env

    def _keys_of(self, name: str) -> dict[str, str]:
        """A process's own identity's private keys (as SERVICE_JWT_PRIVATE_KEYS), the public keys
        for the services that verify service tokens, the user ring for those that need it."""
        env = self.config.env
        keys: dict[str, str] = {}
        if name in SERVICE_IDENTITY:
            keys["SERVICE_JWT_PRIVATE_KEYS"] = env.get(private_keys_variable(SERVICE_IDENTITY[name])) or ""
        if name in WEB_SERVICES:
            keys[PUBLIC_KEYS] = env.get(PUBLIC_KEYS) or ""
        if name in USER_RING_HOLDERS:
            keys["USER_JWT_KEYS"] = env.get("USER_JWT_KEYS") or ""
        return {k: v for k, v in keys.items() if v}

    def _process(
        self,
        name: str,
        argv: list[str],
        *,
        health_url: str | None = None,
        ready_markers: tuple[str, ...] = (),
        echo: bool | None = None,
    ) -> ManagedProcess:
        existing = self.processes.get(name)
        if existing is not None and existing.running:
            raise StackError(f"{name} is already running")
        position = list(self.processes).index(name) if name in self.processes else len(self.processes)
        colour = COLOURS[position % len(COLOURS)]
        process = ManagedProcess(
            name=name,
            argv=argv,
            env=self.service_env(name),
            log_path=self.config.log_dir / f"{name}.log",
            echo=self.config.echo if echo is None else echo,
            colour=colour,
            health_url=health_url,
            ready_markers=ready_markers,
            die_with_parent=self.config.die_with_runner,
            wave=self._wave,
        )
        self.processes[name] = process
        return process

    # --- steps ------------------------------------------------------------------------------

    def _run_once(self, name: str, argv: list[str], timeout: float = 300.0, env: dict[str, str] | None = None) -> str:
        """Run a step (migration, seed) to its end; a stop request ends it at once, like a service."""
        if self.cancel.is_set():
            raise KeyboardInterrupt
        process = spawner.popen(
            argv,
            die_with_parent=self.config.die_with_runner,
            env={**self.service_env(name), **(env or {})},
            cwd=str(ROOT),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # like every other child: the runner alone decides when it stops
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.1)  # retrying loses no output
                break
            except subprocess.TimeoutExpired:
                if self.cancel.is_set() or time.monotonic() > deadline:
                    self._end(process)
                    if self.cancel.is_set():
                        raise KeyboardInterrupt from None
                    raise StackError(f"{name}: {' '.join(argv[1:])} took more than {timeout:.0f}s") from None
        if process.returncode != 0:
            raise StackError(f"{name}: {' '.join(argv[1:])} failed:\n{stdout}\n{stderr}")
        return stdout

    def _end(self, process: subprocess.Popen) -> None:
        """SIGTERM to a step's process group, SIGKILL after a few seconds (at once if urgent)."""
        _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while process.poll() is None and time.monotonic() < deadline and self.cancel.count < 2:
            time.sleep(0.05)
        if _group_alive(process.pid):
            _signal_group(process.pid, signal.SIGKILL)
        process.communicate()

    def _prepare_database(self, service: str, seed: bool) -> str:
        package = service.replace("-", "_")
        customers = service == "customers-service"
        migrate_url = (
            self.config.customers_migrate_database_url if customers else self.config.orders_migrate_database_url
        )
        self._run_once(
            service,
            [PYTHON, "-m", f"{package}.cli", "migrate"],
            env={"DATABASE_URL": migrate_url} if migrate_url else None,
        )
        return self._run_once(service, [PYTHON, "-m", f"{package}.cli", "seed-demo"]) if seed else ""

    def prepare_databases(self, seed: bool = True) -> None:
        """Migrate both databases (in parallel) and seed the demo data: admin, the demo customer
        and its `user` login (passwords from DEMO_*_PASSWORD), a few products."""
        with ThreadPoolExecutor(max_workers=2) as pool:
            outputs = list(pool.map(lambda service: self._prepare_database(service, seed), WEB_SERVICES))
        if seed:
            # customers-service prints {'customer_id': ..., 'admin_username': ..., 'user_username': ...}
            for line in reversed(outputs[0].strip().splitlines()):
                try:
                    self.demo = dict(ast.literal_eval(line.strip()))
                    break
                except (ValueError, SyntaxError, TypeError):
                    continue

    def start_sqs(self, *, wait: bool = True) -> ManagedProcess:
        sqs = self._process(
            "sqs",
            [PYTHON, "-m", "orchestrator.local.moto_sqs", "-H", "127.0.0.1", "-p", str(self.config.sqs_port)],
            health_url=f"{self.config.sqs_endpoint}/moto-api/",
            echo=False,  # one access-log line per poll: in var/log/sqs.log only
        )
        sqs.start(wait=wait, cancel=self.cancel)
        return sqs

    def sqs_client(self, endpoint_url: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "sqs",
            endpoint_url=endpoint_url or self.config.sqs_endpoint,
            region_name=self.config.env.get("AWS_REGION") or "us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

    def create_queues(self) -> dict[str, str]:
        """`payments` + `payments-dlq` with the configured redrive and visibility (idempotent)."""
        from orchestrator.local.queues import ensure_payment_queues

        queues = ensure_payment_queues(
            self.sqs_client(),
            max_receive_count=self.config.max_receive_count,
            visibility_timeout_seconds=self.config.visibility_timeout_seconds,
        )
        self.queue_urls = {"payments": queues.queue_url, "payments-dlq": queues.dlq_url}
        return self.queue_urls

    def start_gateway(self, *, wait: bool = True) -> ManagedProcess:
        """The payment provider's API (gateway simulator), with its durable ledger."""
        self.config.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        gateway = self._process(
            "gateway",
            [PYTHON, "-m", "gateway_simulator"],
            health_url=f"{self.config.urls['gateway']}/health",
        )
        gateway.start(wait=wait, cancel=self.cancel)
        return gateway

    def start_web_service(self, name: str, *, wait: bool = True) -> ManagedProcess:
        package = name.replace("-", "_")
        port = self.config.customers_port if name == "customers-service" else self.config.orders_port
        process = self._process(
            name,
            [PYTHON, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf", f"{package}.wsgi:app"],
            health_url=f"http://127.0.0.1:{port}/health",
        )
        process.start(wait=wait, cancel=self.cancel)
        return process

    def start_bff(self, *, wait: bool = True) -> ManagedProcess:
        process = self._process(
            "bff",
            [
                PYTHON,
                "-m",
                "orchestrator.local.apigw_adapter",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.config.bff_port),
                "--environments",
                str(self.config.bff_environments),
            ],
            # /ready: an execution environment started and the configuration and secrets loaded.
            health_url=f"{self.config.urls['bff']}/ready",
        )
        process.start(wait=wait, cancel=self.cancel)
        return process

    def start_payments_poller(self, *, wait: bool = True) -> ManagedProcess:
        process = self._process(
            "payments",
            [
                PYTHON,
                "-m",
                "orchestrator.local.sqs_poller",
                "--queue-url",
                self.queue_urls["payments"],
                "--endpoint-url",
                self.config.sqs_endpoint,
                "--batch-size",
                str(self.config.poller_batch_size),
                "--wait-seconds",
                str(self.config.poller_wait_seconds),
                "--concurrency",
                str(self.config.poller_concurrency),
            ],
            ready_markers=("sqs_poller_started",),
        )
        process.start(wait=wait, cancel=self.cancel)
        return process

    def start_sweeper(self, *, wait: bool = True) -> ManagedProcess:
        process = self._process(
            "sweeper",
            [
                PYTHON,
                "-m",
                "orchestrator.local.sweeper_timer",
                "--interval",
                str(self.config.sweeper_interval_seconds),
            ],
            # The timer runs the sweeper at once; ready after that first run.
            ready_markers=("sweep_finished", "sweep_failed"),
        )
        process.start(wait=wait, cancel=self.cancel)
        return process

    def check_ports(self) -> None:
        busy = [f"{name}={port}" for name, port in self.config.ports.items() if port_in_use(port)]
        if busy:
            raise StackError(
                f"port(s) already in use: {', '.join(busy)}. Another `make run`? Stop it, or choose other "
                "ports, e.g. `BFF_PORT=3100 CUSTOMERS_PORT=3101 ORDERS_PORT=3102 SQS_PORT=4576 GATEWAY_PORT=3103 "
                "make run`."
            )

    def _start_together(self, *starters: Callable[..., ManagedProcess]) -> None:
        self._wave += 1
        processes = [start(wait=False) for start in starters]
        for process in processes:
            process.wait_ready(cancel=self.cancel)

    def start(self, *, seed: bool = True) -> None:
        try:
            self.check_ports()
            sqs = self.start_sqs(wait=False)
            gateway = self.start_gateway(wait=False)
            self.prepare_databases(seed=seed)
            sqs.wait_ready(cancel=self.cancel)
            gateway.wait_ready(cancel=self.cancel)  # before the payments poller charges through it
            self.create_queues()
            self._start_together(
                lambda **kw: self.start_web_service("customers-service", **kw),
                lambda **kw: self.start_web_service("orders-service", **kw),
            )
            self._start_together(self.start_bff, self.start_payments_poller, self.start_sweeper)
            self.write_state()
        except BaseException:
            self.stop()
            raise

    # --- single processes (tests) -----------------------------------------------------------

    def stop_process(self, name: str) -> None:
        self.processes[name].stop()

    def start_process(self, name: str, env: Mapping[str, str] | None = None) -> None:
        """Start a stopped process again (same command, same log file), with env overrides."""
        process = self.processes[name]
        if env:
            process.env = {**process.env, **env}
        process.start(cancel=self.cancel)
        self.write_state()

    @property
    def state_path(self) -> Path:
        """Where the running stack says which process has which pid (beside the log directory)."""
        return self.config.log_dir.parent / STATE_FILE_NAME

    def write_state(self) -> None:
        """Record each running process's pid, for tools that act on one process of a running
        stack (scripts/payments_consumer.py holds and releases the payments poller)."""
        state = {"processes": {name: p.pid for name, p in self.processes.items() if p.running}}
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        temporary.replace(self.state_path)

    def restart(self, name: str, env: Mapping[str, str] | None = None) -> None:
        self.stop_process(name)
        self.start_process(name, env)

    def log_lines(self, name: str) -> list[str]:
        return self.processes[name].log_lines()

    def log_records(self, name: str) -> list[dict[str, Any]]:
        """The JSON objects among a process's log lines."""
        records = []
        for line in self.log_lines(name):
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    def stop(self, timeout: float | None = None) -> None:
        """Stop every process, those started last first (the poller finishes its batch while
        orders-service still answers) and those started together at once, within `timeout`
        seconds in all (default `config.stop_timeout_seconds`); SIGKILL for whatever is left
        then, or as soon as another stop request arrives (a second Ctrl-C)."""
        requests_before = self.cancel.count
        deadline = time.monotonic() + (self.config.stop_timeout_seconds if timeout is None else timeout)

        def force() -> bool:  # a request that came while stopping, or a second one in all
            return self.cancel.count > requests_before or self.cancel.count >= 2

        self.state_path.unlink(missing_ok=True)
        for wave in sorted({p.wave for p in self.processes.values()}, reverse=True):
            together = [p for p in reversed(self.processes.values()) if p.wave == wave]
            for process in together:
                process.terminate()
            for process in together:
                process.wait_stopped(deadline, force=force)

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


# --- make run ---------------------------------------------------------------------------------


def demo_product(stack: Stack) -> dict[str, Any] | None:
    """Log in as the demo user through the BFF and read the catalogue: proves the public path
    works and gives the banner's example a real product id."""
    bff = stack.config.urls["bff"]
    password = stack.config.env.get("DEMO_USER_PASSWORD", "")
    try:
        login = requests.post(f"{bff}/auth/login", json={"username": "user", "password": password}, timeout=15)
        login.raise_for_status()
        token = login.json()["access_token"]
        products = requests.get(f"{bff}/products", headers={"Authorization": f"Bearer {token}"}, timeout=15)
        products.raise_for_status()
        in_stock = [p for p in products.json()["data"] if p["stock"] >= 2]
        return in_stock[0] if in_stock else None
    except (requests.RequestException, KeyError, ValueError) as exc:
        print(f"warning: the demo login through the BFF failed ({exc}); see {stack.config.log_dir}", file=sys.stderr)
        return None


def without_password(url: str) -> str:
    """`mysql+pymysql://user:secret@host/db` → `mysql+pymysql://user:***@host/db`."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{sep}{userinfo.split(':', 1)[0]}:***@{host}{slash}{path}"


def banner(stack: Stack, product: Mapping[str, Any] | None = None) -> str:
    env = stack.config.env
    urls = stack.config.urls
    bff = urls["bff"]
    admin_password = env.get("DEMO_ADMIN_PASSWORD", "<see .env>")
    user_password = env.get("DEMO_USER_PASSWORD", "<see .env>")
    customer_id = stack.demo.get("customer_id", "?")
    product_id = product["id"] if product else 1
    product_note = f"  # {product['sku']}: {product['name']}" if product else ""
    login_body = json.dumps({"username": "user", "password": user_password})
    order_body = json.dumps({"items": [{"product_id": product_id, "qty": 2}]})
    return f"""
B2B order platform is up (Ctrl-C stops everything).

  BFF (public API)     {bff}   docs: {bff}/docs
  customers-service    {urls["customers"]}   docs: {urls["customers"]}/docs
  orders-service       {urls["orders"]}   docs: {urls["orders"]}/docs
  SQS (moto)           {urls["sqs"]}   queues: payments, payments-dlq
  payment gateway      {urls["gateway"]}   simulator, ledger: {stack.config.ledger_path}
  databases            {without_password(stack.config.customers_database_url)}
                       {without_password(stack.config.orders_database_url)}
  logs                 {stack.config.log_dir}/<process>.log
  payments             PAYMENT_SIMULATION_MODE={env.get("PAYMENT_SIMULATION_MODE") or "random"} (the gateway's)

Demo logins: admin / {admin_password}
             user / {user_password}   (customer {customer_id}, "Demo Buyer Co": a customer user
             acts for itself, so customer_id may be left out of its requests)

Try it (bash):
  BFF={bff}
  TOKEN=$(curl -s $BFF/auth/login -H 'Content-Type: application/json' \\
    -d '{login_body}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -w '\\n' $BFF/products -H "Authorization: Bearer $TOKEN"
  ORDER=$(curl -s -X POST $BFF/orchestrator/create-and-confirm-order \\
    -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -H "Idempotency-Key: demo-$(date +%s)" \\
    -d '{order_body}' \\
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["order"]["id"])'){product_note}
  sleep 2; curl -s -w '\\n' $BFF/orders/$ORDER -H "Authorization: Bearer $TOKEN"

The order is CONFIRMED with payment PENDING at once, then PAID, or CANCELED with cancel_reason
payment_failed (random mode approves ~70%). Resending with the same Idempotency-Key replays it.

The charges the gateway made for that order (its ledger: one entry per charge, docs/payment-gateway.md):
  curl -s -w '\n' "{urls["gateway"]}/v1/charges?order_id=$ORDER" \
    -u "$(sed -n 's/^PAYMENT_GATEWAY_API_KEY=//p' .env):"
"""


class _StopAnnouncer:
    """Says "stopping…" the moment a stop is requested, and "killing…" when another request
    comes while stopping: from a thread of its own, since a signal handler must not print."""

    def __init__(self, request: StopRequest) -> None:
        self.request = request
        self.stopping = False  # also set when the stack stops for another reason
        self._seen = 0  # stop requests already announced
        self._done = threading.Event()  # between threads only, never set by a signal handler
        self._thread = threading.Thread(target=self._run, name="stop-announcer", daemon=True)

    def start(self) -> _StopAnnouncer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.wait(0.05):
            self._announce()

    def _announce(self) -> None:
        count = self.request.count
        if count == self._seen:
            return
        if self._seen == 0 and not self.stopping:
            self.stopping = True
            print("\nstopping… (Ctrl-C again kills what is left at once)", flush=True)
            if count > 1:
                print("killing what is left…", flush=True)
        else:
            print("killing what is left…", flush=True)
        self._seen = count

    def close(self) -> None:
        """Stop watching; say what was not said yet (a stop quicker than a look)."""
        if not self._done.is_set():
            self._done.set()
            self._thread.join(timeout=1)
            self._announce()


def _serve(stack: Stack, request: StopRequest, announcer: _StopAnnouncer) -> int:
    """The stack is up: print the banner, then wait for a stop request or a process to exit."""
    product: list[dict[str, Any] | None] = []
    # The demo login goes through every service: seconds on a cold start, so off the main
    # thread, which keeps watching for stop requests.
    lookup = threading.Thread(target=lambda: product.append(demo_product(stack)), name="demo-login", daemon=True)
    lookup.start()
    banner_shown = False
    while not request.is_set():
        dead = [p.name for p in stack.processes.values() if not p.running]
        if dead:
            announcer.stopping = True
            print(f"process(es) exited: {', '.join(dead)}; stopping the stack", file=sys.stderr, flush=True)
            return 1
        if not banner_shown and not lookup.is_alive():
            print(banner(stack, product[0] if product else None), flush=True)
            banner_shown = True
        time.sleep(0.1)  # a signal interrupts the sleep: its handler runs, then the loop sees it
    return 0


def main(argv: list[str] | None = None) -> int:
    # First of all, so that no moment is left where a signal finds the default handlers. The
    # handlers only count (StopRequest); everything else happens in this thread as it notices.
    request = StopRequest()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request.signal)
    parser = argparse.ArgumentParser(description="Run the whole platform locally (Ctrl-C stops it).")
    parser.add_argument("--quiet", action="store_true", help="do not echo process logs to the terminal")
    args = parser.parse_args(argv)
    config = default_config(echo=not args.quiet)
    for name in REQUIRED_SECRETS:
        if not config.env.get(name):
            print(f"{name} is not set: run `make env` (creates .env with random secrets)", file=sys.stderr)
            return 2
    if not PARENT_DEATH_SIGNAL:
        print(
            f"note: on {sys.platform} the processes are not tied to this runner: if it is killed with SIGKILL, "
            "they keep running (docs/local-runner.md says how to find them)",
            file=sys.stderr,
        )
    stack = Stack(config, cancel=request)
    announcer = _StopAnnouncer(request).start()
    try:
        print(f"starting the stack; logs in {config.log_dir}", flush=True)
        try:
            stack.start()  # stops what it started before raising
        except (KeyboardInterrupt, StackError) as exc:
            if request.is_set():  # a stop request abandoned the start
                announcer.close()
                print("stopped during start-up: every process has exited", flush=True)
                return 128 + (request.signum or signal.SIGINT)
            print(f"\nthe stack did not start: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            return_code = _serve(stack, request, announcer)
        finally:
            stack.stop()
            announcer.close()
            print("stopped: every process has exited", flush=True)
        # One request stops the stack as asked (0); a second one cut the stop short.
        return 128 + request.signum if request.count > 1 and request.signum else return_code
    finally:
        announcer.close()


if __name__ == "__main__":
    sys.exit(main())
