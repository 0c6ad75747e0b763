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
from urllib.parse import quote, urlsplit

import requests
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from .auth import (
    SERVICE_IDENTITIES,
    SERVICE_ROLE,
    KeyRing,
    ServicePublicKeys,
    ServiceSigningKeys,
    generate_service_key,
    mint,
    mint_service_token,
    mint_user_token,
    private_keys_variable,
)
from .dbusers import provision, runtime_user

ADMIN_URL = os.environ.get("TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/")
CLIENT_HOSTS = ("127.0.0.1", "localhost")  # the user exists for both ways of reaching the server


def _admin(statements: Callable[[Connection], None], admin_url: str = ADMIN_URL) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn:
            statements(conn)
    finally:
        engine.dispose()


def create_database(name: str, user: str, password: str, *, admin_url: str = ADMIN_URL) -> str:
    """A fresh database `name` (one left by an earlier run is dropped) and a `user` who may touch
    only it; its URL. Names are quoted identifiers and the user, host and password bound values,
    so no value becomes SQL."""

    def create(conn: Connection) -> None:
        _drop(conn, name, user)
        database = conn.dialect.identifier_preparer.quote_identifier(name)
        conn.execute(text(f"CREATE DATABASE {database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        for host in CLIENT_HOSTS:
            account = {"user": user, "host": host}
            conn.execute(text("CREATE USER :user@:host IDENTIFIED BY :password"), {**account, "password": password})
            conn.execute(text(f"GRANT ALL PRIVILEGES ON {database}.* TO :user@:host"), account)

    _admin(create, admin_url)
    return database_url(name, user, password, admin_url=admin_url)


def database_url(name: str, user: str, password: str, *, admin_url: str = ADMIN_URL) -> str:
    """How `user` reaches database `name` on the server of `admin_url`."""
    admin = urlsplit(admin_url)
    host, port = admin.hostname or "127.0.0.1", admin.port or 3306
    return f"mysql+pymysql://{quote(user)}:{quote(password)}@{host}:{port}/{quote(name)}?charset=utf8mb4"


def drop_database(name: str, *users: str, admin_url: str = ADMIN_URL) -> None:
    """Drop what `create_database` made, and any other `users` (whatever of it exists)."""
    _admin(lambda conn: _drop(conn, name, *users), admin_url)


def _drop(conn: Connection, name: str, *users: str) -> None:
    conn.execute(text(f"DROP DATABASE IF EXISTS {conn.dialect.identifier_preparer.quote_identifier(name)}"))
    for user in users:
        for host in CLIENT_HOSTS:
            conn.execute(text("DROP USER IF EXISTS :user@:host"), {"user": user, "host": host})


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
        if not self.dml_only:
            self.url = create_database(self.name, self.user, self.password)
            self.migrate_user, self.migrate_url = self.user, self.url
            return
        # As in production: the migration user owns the schema, the runtime user gets DML only.
        self.migrate_user = f"m_{self.prefix[:16]}_{suffix}"
        self.migrate_url = create_database(self.name, self.migrate_user, secrets.token_urlsafe(18))
        provision(
            ADMIN_URL,
            self.name,
            [runtime_user(self.user, self.password)],
            client_hosts=CLIENT_HOSTS,
            create_database=False,
        )
        self.url = database_url(self.name, self.user, self.password)

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
                    conn.execute(text("KILL CONNECTION :id"), {"id": int(connection_id)})
                    killed += 1
                except OperationalError:  # gone meanwhile (unknown thread id)
                    pass

        _admin(kill)
        return killed

    def _lock(self, lock: bool) -> None:
        statement = text("ALTER USER :user@:host ACCOUNT LOCK" if lock else "ALTER USER :user@:host ACCOUNT UNLOCK")

        def alter(conn: Connection) -> None:
            for host in CLIENT_HOSTS:
                conn.execute(statement, {"user": self.user, "host": host})

        _admin(alter)

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
        drop_database(self.name, *{self.user, self.migrate_user})


def random_key_ring_value(kid: str = "k1") -> str:
    return f"{kid}:{secrets.token_urlsafe(32)}"


@dataclass
class ServiceKeySet:
    """A fresh key pair per service identity, as `make env` makes them: `private[caller]` is that
    caller's SERVICE_JWT_PRIVATE_KEYS, `public` the SERVICE_JWT_PUBLIC_KEYS every verifier gets."""

    private: dict[str, str] = field(repr=False)
    public: str

    @classmethod
    def generate(cls, callers: tuple[str, ...] = SERVICE_IDENTITIES) -> ServiceKeySet:
        private, public = {}, []
        for caller in callers:
            private_entry, public_entry = generate_service_key(caller)
            private[caller] = private_entry
            public.append(public_entry)
        return cls(private, ",".join(public))

    def signing(self, caller: str) -> ServiceSigningKeys:
        return ServiceSigningKeys.parse(self.private[caller])

    def public_keys(self) -> ServicePublicKeys:
        return ServicePublicKeys.parse(self.public)

    def env_for(self, caller: str) -> dict[str, str]:
        """What one process gets: its own private keys and everyone's public keys."""
        return {"SERVICE_JWT_PRIVATE_KEYS": self.private[caller], "SERVICE_JWT_PUBLIC_KEYS": self.public}

    def dotenv(self) -> dict[str, str]:
        """The per-caller variables of .env (`make env`), which scripts/stack.py hands out."""
        values = {private_keys_variable(caller): key for caller, key in self.private.items()}
        return {**values, "SERVICE_JWT_PUBLIC_KEYS": self.public}


@dataclass
class TokenFactory:
    """Mints the tokens tests need, valid and deliberately broken."""

    user_ring: KeyRing
    service_keys: ServiceKeySet

    def admin(self, user_id: int = 1) -> str:
        return mint_user_token(self.user_ring, user_id=user_id, role="admin", customer_id=None, ttl_seconds=600)

    def customer(self, customer_id: int, user_id: int = 100) -> str:
        return mint_user_token(
            self.user_ring, user_id=user_id, role="customer", customer_id=customer_id, ttl_seconds=600
        )

    def service(self, caller: str, audience: str) -> str:
        """`caller`'s token; a caller without keys in the set (a stranger) signs with a key of
        its own that no verifier knows."""
        if caller not in self.service_keys.private:
            self.service_keys.private[caller] = generate_service_key(caller)[0]  # never published
        return mint_service_token(self.service_keys.signing(caller), caller=caller, audience=audience)

    def forged_service(self, caller: str, audience: str, *, signed_by: str, kid_of: str | None = None) -> str:
        """A token with `caller`'s claims signed with `signed_by`'s private key, its header naming
        the kid of `kid_of` (default: the signer's own key): what a compromised `signed_by` could
        make. Every verifier must refuse it (401)."""
        import jwt

        signer = self.service_keys.signing(signed_by)
        kid = self.service_keys.signing(kid_of or signed_by).signing_kid
        now = int(time.time())
        claims = {"iss": caller, "sub": caller, "aud": audience, "role": SERVICE_ROLE, "iat": now, "exp": now + 300}
        return jwt.encode(claims, signer.keys[signer.signing_kid], algorithm="EdDSA", headers={"kid": kid})

    def service_with_user_ring(self, caller: str, audience: str) -> str:
        """Service claims signed with the user-token ring (HS256): a verifier must refuse it."""
        claims = {"iss": caller, "sub": caller, "aud": audience, "role": SERVICE_ROLE}
        return mint(self.user_ring, claims, ttl_seconds=300)

    def expired_admin(self) -> str:
        claims = {"iss": "customers-service", "aud": "b2b-api", "sub": "1", "role": "admin", "customer_id": None}
        return mint(self.user_ring, claims, ttl_seconds=60, now=time.time() - 3600)

    def long_lived_admin(self) -> str:
        """Signed with the right key, but living longer than a user token may (1 h)."""
        claims = {"iss": "customers-service", "aud": "b2b-api", "sub": "1", "role": "admin", "customer_id": None}
        return mint(self.user_ring, claims, ttl_seconds=24 * 3600)

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
            "long_lived": self.long_lived_admin(),
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
