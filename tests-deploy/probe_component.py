"""Start one container's command just far enough to prove it accepts its configuration.

    python probe_component.py --result OUT.json -- COMMAND [ARG...]

Run it with exactly the environment the container would get (image ENV + compose environment).
Nothing leaves the process: the first database connection, outbound connection or listening
socket stops the run, and what it was about to do is the result (host, user, database...).

- `gunicorn -c python:CONF PKG.wsgi:APP`: loads the gunicorn config and the WSGI app (the real
  Settings object), asks the app for /health, then /ready up to its database connection.
- `python -m PKG.cli ...` (one-shots): runs the command until it connects to its database.
- `python -m orchestrator.local.RUNNER ...`: parses the runner's real flags, then builds the
  Lambda's dependencies from the environment (settings, key rings, queue URLs), as a cold start does.
- `python -m gateway_simulator`: its real settings, then the server starts until it opens its
  SQLite ledger (the result carries the file's path).
"""

from __future__ import annotations

import argparse
import importlib
import json
import runpy
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

# Runner module -> (module, function) that builds its Lambda's dependencies from settings.
LAMBDA_BUILDERS = {
    "orchestrator.local.apigw_adapter": ("orchestrator.bff.dependencies", "build_dependencies"),
    "orchestrator.local.sqs_poller": ("orchestrator.payments.handler", "build_processor"),
    "orchestrator.local.sweeper_timer": ("orchestrator.sweeper.handler", "build_sweeper"),
    "orchestrator.local.queues": None,
}


class Reached(BaseException):
    """Raised where the component would first touch the outside world (BaseException: no
    `except Exception` in the component swallows it)."""

    def __init__(self, what: str, **details: Any) -> None:
        super().__init__(what)
        self.what = what
        self.details = details


class ArgsParsed(BaseException):
    def __init__(self, namespace: argparse.Namespace) -> None:
        super().__init__("args parsed")
        self.namespace = namespace


def _address(address: Any) -> Any:
    return list(address) if isinstance(address, tuple) else str(address)


def install_interceptors() -> None:
    def fake_connect(*_args: Any, **kwargs: Any) -> Any:
        raise Reached(
            "database",
            host=kwargs.get("host"),
            port=kwargs.get("port"),
            user=kwargs.get("user"),
            password=kwargs.get("password", kwargs.get("passwd")),
            database=kwargs.get("database", kwargs.get("db")),
        )

    try:
        import pymysql

        pymysql.connect = pymysql.Connect = fake_connect
    except ImportError:
        pass
    try:  # mysqlclient, the C driver servicekit.db prefers when installed (it connects in C)
        import MySQLdb

        MySQLdb.connect = MySQLdb.Connect = fake_connect
    except ImportError:
        pass

    def no_connect(self: socket.socket, address: Any) -> Any:
        raise Reached("network", address=_address(address))

    real_bind = socket.socket.bind

    def no_bind(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == 0:
            return real_bind(self, address)  # an ephemeral port (urllib3's IPv6 probe): not a server
        raise Reached("listen", address=_address(address))

    import sqlite3

    def no_sqlite(database: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise Reached("database", path=str(database))

    sqlite3.connect = no_sqlite  # type: ignore[assignment]

    socket.socket.connect = no_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = no_connect  # type: ignore[method-assign]
    socket.socket.bind = no_bind  # type: ignore[method-assign]


def probe_gunicorn(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="gunicorn", add_help=False)
    parser.add_argument("-c", "--config")
    parser.add_argument("app")
    args, _unknown = parser.parse_known_args(argv[1:])
    result: dict[str, Any] = {"kind": "wsgi"}
    if args.config and args.config.startswith("python:"):
        conf = importlib.import_module(args.config.removeprefix("python:"))
        result["gunicorn"] = {
            name: getattr(conf, name, None) for name in ("bind", "workers", "threads", "worker_class", "preload_app")
        }
    module_name, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module_name), attribute or "application")
    client = app.test_client()
    result["health_status"] = client.get("/health").status_code
    try:
        response = client.get("/ready")
        result["ready"] = {"status": response.status_code}
    except Reached as reached:
        result["ready"] = {"reached": reached.what, **reached.details}
    return result


def probe_runner(module: str, args: list[str]) -> dict[str, Any]:
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, args: Any = None, namespace: Any = None) -> Any:
        raise ArgsParsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = capture  # type: ignore[method-assign]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ArgsParsed as parsed:
        namespace = vars(parsed.namespace)
    else:
        raise RuntimeError(f"{module} did not parse any arguments")
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]
    result: dict[str, Any] = {"kind": "runner", "args": namespace}
    builder = LAMBDA_BUILDERS.get(module, "unknown")
    if builder == "unknown":
        raise RuntimeError(f"probe_component.py does not know runner {module}: add it to LAMBDA_BUILDERS")
    if builder:
        from orchestrator.config import load_settings

        settings = load_settings()
        builder_module, builder_function = builder
        getattr(importlib.import_module(builder_module), builder_function)(settings)
        result["settings"] = {
            "customers_api_url": settings.customers_api_url,
            "orders_api_url": settings.orders_api_url,
            "payments_queue_url": settings.payments_queue_url,
            "payments_dlq_url": settings.payments_dlq_url,
            "aws_region": settings.aws_region,
            "payment_gateway_url": settings.payment_gateway_url,
        }
    return result


def probe_gateway(module: str, args: list[str]) -> dict[str, Any]:
    from gateway_simulator.config import load_settings

    settings = load_settings()
    result: dict[str, Any] = {
        "kind": "gateway",
        "settings": {
            "host": settings.host,
            "port": settings.port,
            "ledger_path": str(settings.ledger_path),
            "api_key": settings.api_key,
            "mode": settings.mode,
        },
    }
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except Reached as reached:
        return {**result, "reached": reached.what, **reached.details}
    except SystemExit as exit_:
        raise RuntimeError(f"{module} exited with {exit_.code}") from None
    raise RuntimeError(f"{module} returned without opening its ledger")


def probe_module(module: str, args: list[str]) -> dict[str, Any]:
    if module == "gateway_simulator":
        return probe_gateway(module, args)
    if module in LAMBDA_BUILDERS or module.startswith("orchestrator.local."):
        return probe_runner(module, args)
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except Reached as reached:
        return {"kind": "one-shot", "reached": reached.what, **reached.details}
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise RuntimeError(f"{module} {' '.join(args)} exited with {exit_.code}") from None
    return {"kind": "one-shot", "reached": None}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    install_interceptors()
    try:
        if command[:1] == ["gunicorn"]:
            result = probe_gunicorn(command)
        elif command[:2] in (["python", "-m"], ["python3", "-m"]):
            result = probe_module(command[2], command[3:])
        else:
            raise RuntimeError(f"no probe for command {command}")
        result["ok"] = True
    except BaseException as exc:  # every failure is the probe's answer
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}
    options.result.write_text(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
