"""Helpers for tests: throwaway MySQL databases, key rings, tokens, real server processes.

Tests never depend on state a previous run left: each run creates its own database and a
least-privilege user on the MariaDB/MySQL server at `TEST_MYSQL_ADMIN_URL` and drops both.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from .auth import KeyRing, mint, mint_service_token, mint_user_token
from .dbusers import migration_user, provision, runtime_user

ADMIN_URL = os.environ.get("TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/")
# Test users connect over TCP to 127.0.0.1 or through the socket as localhost.
_CLIENT_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class ThrowawayDatabase:
    """A database and a user that may touch only it, dropped by `drop()`.

    With `dml_only=True` it is set up as in production (servicekit.dbusers): `url` is a runtime
    user with SELECT/INSERT/UPDATE/DELETE only, and `migrate_url` a separate migration user
    that may also change the schema; migrate with `migrate_url`, run the service with `url`.
    Otherwise `url` may do anything on its database and `migrate_url` is the same URL.
    """

    prefix: str
    dml_only: bool = False
    name: str = field(init=False)
    user: str = field(init=False)
    password: str = field(init=False, repr=False)
    url: str = field(init=False, repr=False)
    migrate_user: str = field(init=False)
    migrate_url: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        suffix = secrets.token_hex(4)
        self.name = f"t_{self.prefix}_{suffix}"
        self.user = f"u_{self.prefix[:16]}_{suffix}"
        self.password = secrets.token_urlsafe(18)
        admin = urlsplit(ADMIN_URL)
        host = admin.hostname or "127.0.0.1"
        port = admin.port or 3306
        engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            if not self.dml_only:
                for client_host in _CLIENT_HOSTS:
                    conn.execute(
                        text(f"CREATE USER '{self.user}'@'{client_host}' IDENTIFIED BY :pw"), {"pw": self.password}
                    )
                    conn.execute(text(f"GRANT ALL PRIVILEGES ON `{self.name}`.* TO '{self.user}'@'{client_host}'"))
        engine.dispose()
        self.url = f"mysql+pymysql://{self.user}:{self.password}@{host}:{port}/{self.name}?charset=utf8mb4"
        if self.dml_only:
            self.migrate_user = f"m_{self.prefix[:16]}_{suffix}"
            migrate_password = secrets.token_urlsafe(18)
            provision(
                ADMIN_URL,
                self.name,
                [runtime_user(self.user, self.password), migration_user(self.migrate_user, migrate_password)],
                client_hosts=_CLIENT_HOSTS,
                create_database=False,
            )
            self.migrate_url = (
                f"mysql+pymysql://{self.migrate_user}:{migrate_password}@{host}:{port}/{self.name}?charset=utf8mb4"
            )
        else:
            self.migrate_user = self.user
            self.migrate_url = self.url

    def _admin(self, statements: Callable[[Connection], None]) -> None:
        engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                statements(conn)
        finally:
            engine.dispose()

    def kill_connections(self) -> int:
        """KILL every connection of this database's user (what a restart of the server does to
        its clients); returns how many there were."""
        killed = 0

        def kill(conn: Connection) -> None:
            nonlocal killed
            ids = conn.execute(
                text("SELECT id FROM information_schema.PROCESSLIST WHERE user = :user"), {"user": self.user}
            ).scalars()
            for connection_id in ids:
                try:
                    conn.execute(text(f"KILL CONNECTION {int(connection_id)}"))
                    killed += 1
                except OperationalError:  # gone meanwhile (unknown thread id)
                    pass

        self._admin(kill)
        return killed

    def _lock(self, lock: bool) -> None:
        clause = "ACCOUNT LOCK" if lock else "ACCOUNT UNLOCK"

        def alter(conn: Connection) -> None:
            for client_host in _CLIENT_HOSTS:
                conn.execute(text(f"ALTER USER '{self.user}'@'{client_host}' {clause}"))

        self._admin(alter)

    def cut(self) -> None:
        """A database outage for this database's user only, never the shared server: new
        connections are refused ("account is locked") and open ones are killed."""
        self._lock(True)  # first, so that no killed client gets back in before the lock
        self.kill_connections()

    def restore(self) -> None:
        """End `cut()`: connections are accepted again."""
        self._lock(False)

    @contextmanager
    def outage(self) -> Iterator[None]:
        self.cut()
        try:
            yield
        finally:
            self.restore()

    def drop(self) -> None:
        engine = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
            for user in {self.user, self.migrate_user}:
                for client_host in _CLIENT_HOSTS:
                    conn.execute(text(f"DROP USER IF EXISTS '{user}'@'{client_host}'"))
        engine.dispose()


def random_key_ring_value(kid: str = "k1") -> str:
    return f"{kid}:{secrets.token_urlsafe(32)}"


@dataclass
class TokenFactory:
    """Mints the tokens tests need, valid and deliberately broken."""

    user_ring: KeyRing
    service_ring: KeyRing

    def admin(self, user_id: int = 1) -> str:
        return mint_user_token(self.user_ring, user_id=user_id, role="admin", customer_id=None, ttl_seconds=600)

    def customer(self, customer_id: int, user_id: int = 100) -> str:
        return mint_user_token(
            self.user_ring, user_id=user_id, role="customer", customer_id=customer_id, ttl_seconds=600
        )

    def service(self, caller: str, audience: str) -> str:
        return mint_service_token(self.service_ring, caller=caller, audience=audience)

    def expired_admin(self) -> str:
        claims = {"iss": "customers-service", "aud": "b2b-api", "sub": "1", "role": "admin", "customer_id": None}
        return mint(self.user_ring, claims, ttl_seconds=60, now=time.time() - 3600)

    def wrong_audience_admin(self) -> str:
        claims = {"iss": "customers-service", "aud": "someone-else", "sub": "1", "role": "admin", "customer_id": None}
        return mint(self.user_ring, claims, ttl_seconds=600)

    def wrong_key_admin(self) -> str:
        other = KeyRing.parse(random_key_ring_value(self.user_ring.signing_kid))
        return mint_user_token(other, user_id=1, role="admin", customer_id=None, ttl_seconds=600)

    def alg_none_admin(self) -> str:
        import base64

        import orjson

        def b64(obj: dict) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(obj)).decode().rstrip("=")

        now = int(time.time())
        header = {"alg": "none", "typ": "JWT", "kid": self.user_ring.signing_kid}
        payload = {
            "iss": "customers-service",
            "aud": "b2b-api",
            "sub": "1",
            "role": "admin",
            "customer_id": None,
            "iat": now,
            "exp": now + 600,
        }
        return f"{b64(header)}.{b64(payload)}."

    def bad_tokens(self) -> dict[str, str | None]:
        """Every kind of token a protected route must refuse with 401."""
        return {
            "missing": None,
            "expired": self.expired_admin(),
            "wrong_audience": self.wrong_audience_admin(),
            "wrong_key": self.wrong_key_admin(),
            "alg_none": self.alg_none_admin(),
            "garbage": "not-a-jwt",
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A service run for real under gunicorn, for tests that need true concurrency."""

    def __init__(
        self,
        wsgi_app: str,
        *,
        env: Mapping[str, str],
        port: int | None = None,
        workers: int = 2,
        threads: int = 8,
        log_path: Path | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        full_env.setdefault("WEB_CONCURRENCY", str(workers))
        full_env.setdefault("GUNICORN_THREADS", str(threads))
        self.log_path = log_path
        self._log_file = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:servicekit.gunicorn_conf", wsgi_app],
            env=full_env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(cwd) if cwd else None,
        )
        self.wait_until_healthy()

    def wait_until_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.base_url} exited with {self.process.returncode}; see {self.log_path}")
            try:
                if requests.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.base_url} did not become healthy in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log_file is not subprocess.DEVNULL:
            self._log_file.close()
