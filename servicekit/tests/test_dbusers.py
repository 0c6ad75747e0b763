"""Least-privilege database users on a real MariaDB: the runtime user changes rows, never the
schema; the migration user changes the schema; provisioning is idempotent and takes back DDL an
older setup granted; `python -m servicekit.dbusers` does it from the environment."""

from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from servicekit.config import ConfigError, database_users_config
from servicekit.dbusers import (
    MIGRATION_PRIVILEGES,
    RUNTIME_PRIVILEGES,
    DatabaseUser,
    provision,
    provision_statements,
    runtime_user,
)
from servicekit.testing import ADMIN_URL, ThrowawayDatabase

DENIED = (OperationalError, ProgrammingError)  # 1142 "command denied" (the class varies by statement)


def run(url: str, *statements: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def denied(url: str, statement: str) -> bool:
    try:
        run(url, statement)
    except DENIED as exc:
        assert "denied" in str(exc).lower(), exc
        return True
    return False


@pytest.fixture(scope="module")
def database():
    db = ThrowawayDatabase("dbusers", dml_only=True)
    run(db.migrate_url, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)")
    yield db
    db.drop()


def test_the_runtime_user_changes_rows(database):
    run(
        database.url,
        "INSERT INTO items VALUES (1, 'a'), (2, 'b')",
        "UPDATE items SET name = 'c' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
        "SELECT id FROM items WHERE id = 1 FOR UPDATE",  # the row locks the services take
    )
    engine = create_engine(database.url, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, name FROM items")).all() == [(1, "c")]
    engine.dispose()
    run(database.url, "DELETE FROM items")


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE intruder (id INT PRIMARY KEY)",
        "ALTER TABLE items ADD COLUMN extra INT",
        "DROP TABLE items",
        "TRUNCATE TABLE items",
        "CREATE INDEX items_name ON items (name)",
        "CREATE VIEW item_names AS SELECT name FROM items",
        "LOCK TABLES items WRITE",
    ],
)
def test_the_runtime_user_cannot_change_the_schema(database, statement):
    assert denied(database.url, statement)


def test_neither_user_reaches_another_database(database):
    other = ThrowawayDatabase("dbusers_other", dml_only=True)
    try:
        run(other.migrate_url, "CREATE TABLE secrets (id INT PRIMARY KEY)")
        for url in (database.url, database.migrate_url):
            assert denied(url, f"SELECT * FROM `{other.name}`.secrets")
    finally:
        other.drop()


def test_the_migration_user_changes_the_schema(database):
    run(
        database.migrate_url,
        "CREATE TABLE scratch (id INT PRIMARY KEY)",
        "ALTER TABLE scratch ADD COLUMN note VARCHAR(10)",
        "CREATE INDEX scratch_note ON scratch (note)",
        "INSERT INTO scratch VALUES (1, 'x')",
        "DROP TABLE scratch",
    )


def test_provisioning_is_idempotent_and_takes_back_ddl(database):
    """An older setup gave the runtime user DDL: provisioning again leaves it DML only, and a
    second run changes nothing."""
    grant_all = f"GRANT ALL PRIVILEGES ON `{database.name}`.* TO '{database.user}'@'127.0.0.1'"
    run(ADMIN_URL, grant_all)
    run(database.url, "CREATE TABLE leftover (id INT PRIMARY KEY)", "DROP TABLE leftover")  # DDL works now
    users = [runtime_user(database.user, urlsplit(database.url).password)]
    for _ in range(2):
        provision(ADMIN_URL, database.name, users, client_hosts=("127.0.0.1", "localhost"), create_database=False)
        assert denied(database.url, "CREATE TABLE leftover (id INT PRIMARY KEY)")
        run(database.url, "SELECT COUNT(*) FROM items")


def test_provision_statements_grant_exactly_the_lists_and_bind_passwords():
    statements = provision_statements("shop_db", [runtime_user("shop_app", "pa'ss")])
    sql = [s for s, _ in statements]
    assert sql[0] == "CREATE USER IF NOT EXISTS 'shop_app'@'%' IDENTIFIED BY :password"
    assert statements[0][1] == {"password": "pa'ss"} and "pa'ss" not in " ".join(sql)
    assert f"GRANT {', '.join(RUNTIME_PRIVILEGES)} ON `shop_db`.* TO 'shop_app'@'%'" in sql
    revoke = next(s for s in sql if s.startswith("REVOKE"))
    assert all(p in revoke for p in ("CREATE", "ALTER", "DROP", "GRANT OPTION")) and "SELECT" not in revoke
    assert set(RUNTIME_PRIVILEGES) < set(MIGRATION_PRIVILEGES)
    for bad in ("shop`db", "x; DROP DATABASE y"):
        with pytest.raises(ValueError):
            provision_statements(bad, [runtime_user("shop_app", "p")])
    with pytest.raises(ValueError):
        provision_statements("shop_db", [runtime_user("shop'app", "p")])
    with pytest.raises(ValueError):
        provision_statements("shop_db", [DatabaseUser("shop_app", "p", ("ALL PRIVILEGES",))])
    assert "pa'ss" not in repr(runtime_user("shop_app", "pa'ss"))


def test_the_cli_provisions_from_the_environment():
    """`python -m servicekit.dbusers`, as the deploy's migration task runs it."""
    admin = urlsplit(ADMIN_URL)
    # The CLI requires an administrator password (a secret, never empty): a stand-in administrator.
    db = ThrowawayDatabase("dbusers_cli")
    admin_user, admin_password = f"a_{db.name[-8:]}", "admin-pw-1"
    run(
        ADMIN_URL,
        f"CREATE USER '{admin_user}'@'127.0.0.1' IDENTIFIED BY '{admin_password}'",
        f"GRANT ALL PRIVILEGES ON *.* TO '{admin_user}'@'127.0.0.1' WITH GRANT OPTION",
    )
    app, migrator = f"ca_{db.name[-8:]}", f"cm_{db.name[-8:]}"
    env = {
        "DB_HOST": admin.hostname or "127.0.0.1",
        "DB_PORT": str(admin.port or 3306),
        "DB_NAME": db.name,
        "DB_ADMIN_USER": admin_user,
        "DB_ADMIN_PASSWORD": admin_password,
        "DB_APP_USER": app,
        "DB_APP_PASSWORD": "app pw%:/@",
        "DB_MIGRATE_USER": migrator,
        "DB_MIGRATE_PASSWORD": "migrate-pw",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "servicekit.dbusers"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert "app pw" not in done.stdout + done.stderr
        config = database_users_config(env)
        host, port = env["DB_HOST"], env["DB_PORT"]
        migrate_url = f"mysql+pymysql://{migrator}:migrate-pw@{host}:{port}/{db.name}"
        app_url = f"mysql+pymysql://{app}:app%20pw%25%3A%2F%40@{host}:{port}/{db.name}"
        run(migrate_url, "CREATE TABLE t (id INT PRIMARY KEY)")
        run(app_url, "INSERT INTO t VALUES (1)")
        assert denied(app_url, "DROP TABLE t")
        assert config.runtime.name == app and config.migration.privileges == MIGRATION_PRIVILEGES
        with pytest.raises(ConfigError, match="DB_MIGRATE_PASSWORD"):
            database_users_config({k: v for k, v in env.items() if k != "DB_MIGRATE_PASSWORD"})
    finally:
        statements = [f"DROP USER IF EXISTS '{u}'@'%'" for u in (app, migrator)]
        run(ADMIN_URL, *statements, f"DROP USER IF EXISTS '{admin_user}'@'127.0.0.1'")
        db.drop()
