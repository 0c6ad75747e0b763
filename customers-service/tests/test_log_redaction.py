"""No secret in any log line, whatever fails (docs/auth.md): a database error during login (the
rehash) and during user creation makes the real server log an unhandled exception, with its
traceback and the failed statement, and still no line carries a password hash, a password or a
token."""

from __future__ import annotations

import pytest
import requests
from argon2 import PasswordHasher
from customers_server import customers_server
from sqlalchemy import create_engine, text

from servicekit.testing import ADMIN_URL
from servicekit.timeutil import utcnow

PASSWORD = "rehash-me-please-1"
NEW_PASSWORD = "brand-new-password-2"
# A hash with weaker parameters than the service's: the next login rehashes it (an UPDATE).
OLD_HASH = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)


@pytest.fixture
def server(database, key_ring_values, orders, tmp_path):
    process = customers_server(
        database.url,
        key_ring_values,
        orders.base_url,
        tmp_path / "customers.log",
        workers=1,
        threads=2,
        LOG_LEVEL="DEBUG",  # everything that is ever logged
    )
    yield process
    process.stop()


@pytest.fixture
def as_root(database):
    engine = create_engine(ADMIN_URL + database.name, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def test_database_errors_at_login_and_user_creation_leak_nothing(server, as_root, tokens):
    now = utcnow()
    with as_root.connect() as conn:
        conn.execute(
            text(
                "INSERT INTO users (username, password_hash, role, customer_id, created_at, updated_at) "
                "VALUES ('old.hash', :hash, 'admin', NULL, :now, :now)"
            ),
            {"hash": OLD_HASH, "now": now},
        )
    admin_token = tokens.admin()
    with as_root.connect() as conn:
        _fail_writes(conn)
    try:
        login = requests.post(
            f"{server.base_url}/auth/login", json={"username": "old.hash", "password": PASSWORD}, timeout=30
        )
        created = requests.post(
            f"{server.base_url}/users",
            json={"username": "new.admin", "password": NEW_PASSWORD, "role": "admin"},
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
        )
    finally:
        with as_root.connect() as conn:
            for event in ("update", "insert"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS fail_user_{event}"))
    assert login.status_code == 500 and login.json()["code"] == "internal_error"
    assert created.status_code == 500 and created.json()["code"] == "internal_error"
    server.stop()  # every line flushed
    lines = server.log_path.read_text().splitlines()
    failures = [line for line in lines if "unhandled_exception" in line]
    # The failures were logged, statement and traceback included: the test saw what it tests.
    assert len(failures) == 2, lines
    assert all("forced by the log test" in line and "Traceback" in line for line in failures)
    assert any("UPDATE users SET password_hash" in line for line in failures)
    assert any("INSERT INTO users" in line for line in failures)
    for line in lines:
        for secret in ("$argon2", OLD_HASH, PASSWORD, NEW_PASSWORD, admin_token, admin_token.split(".")[2]):
            assert secret not in line, line


def _fail_writes(conn) -> None:
    for event in ("UPDATE", "INSERT"):
        conn.execute(
            text(
                f"CREATE TRIGGER fail_user_{event.lower()} BEFORE {event} ON users FOR EACH ROW "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'forced by the log test'"
            )
        )
