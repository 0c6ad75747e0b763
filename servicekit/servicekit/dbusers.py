"""Each service's two MySQL users: a runtime user with DML only, and a migration user with DDL.

The web servers connect as the runtime user, which can read and change rows of its own
database and nothing else: a bug or an injected statement cannot create, alter or drop a
table. Alembic runs as the migration user. Both are (re)provisioned by an administrator
connection, idempotently: a user is created if missing, its password set, the privileges it
needs granted and every other privilege on that database revoked (so provisioning also takes
back DDL that an older setup gave a runtime user). GRANT comes before REVOKE, so a server
already running as the runtime user never loses its DML while this runs.

    python -m servicekit.dbusers      (the deploy's one-off migration task, before `migrate`)

reads DB_HOST, DB_PORT, DB_NAME, DB_ADMIN_USER/DB_ADMIN_PASSWORD, DB_APP_USER/DB_APP_PASSWORD,
DB_MIGRATE_USER/DB_MIGRATE_PASSWORD (servicekit.config.database_users_config). docs/deploy.md
has the picture; deploy/mysql/init/10-service-databases.sh grants the same lists in compose.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# What the web servers need: rows, never schema.
RUNTIME_PRIVILEGES: tuple[str, ...] = ("SELECT", "INSERT", "UPDATE", "DELETE")
# What Alembic needs on top: tables, columns, indexes, foreign keys (data migrations use DML).
MIGRATION_PRIVILEGES: tuple[str, ...] = (*RUNTIME_PRIVILEGES, "CREATE", "ALTER", "DROP", "INDEX", "REFERENCES")
# Every other privilege that MySQL 8 and MariaDB grant on one database: neither user gets any.
OTHER_DATABASE_PRIVILEGES: tuple[str, ...] = (
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EVENT",
    "TRIGGER",
    "GRANT OPTION",
)
ALL_DATABASE_PRIVILEGES: tuple[str, ...] = (*MIGRATION_PRIVILEGES, *OTHER_DATABASE_PRIVILEGES)

_IDENTIFIER = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_USER_NAME = re.compile(r"^[A-Za-z0-9_]{1,32}$")  # MySQL 8 allows 32 characters
_CLIENT_HOST = re.compile(r"^[A-Za-z0-9_.%:-]{1,255}$")


@dataclass(frozen=True)
class DatabaseUser:
    name: str
    password: str = field(repr=False)  # never printed
    privileges: tuple[str, ...] = RUNTIME_PRIVILEGES


def runtime_user(name: str, password: str) -> DatabaseUser:
    return DatabaseUser(name, password, RUNTIME_PRIVILEGES)


def migration_user(name: str, password: str) -> DatabaseUser:
    return DatabaseUser(name, password, MIGRATION_PRIVILEGES)


def _check(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")
    return value


def provision_statements(
    database: str, users: Iterable[DatabaseUser], client_hosts: Sequence[str] = ("%",)
) -> list[tuple[str, dict[str, str]]]:
    """The SQL that makes `users` exactly what they should be on `database` (idempotent).

    Identifiers are checked against strict patterns (they cannot be bound as parameters);
    passwords are bound."""
    _check(database, _IDENTIFIER, "database name")
    statements: list[tuple[str, dict[str, str]]] = []
    for user in users:
        _check(user.name, _USER_NAME, "user name")
        if not user.password:
            raise ValueError(f"user {user.name!r} needs a password")
        unknown = set(user.privileges) - set(ALL_DATABASE_PRIVILEGES)
        if unknown:
            raise ValueError(f"unknown privileges {sorted(unknown)}")
        others = [p for p in ALL_DATABASE_PRIVILEGES if p not in user.privileges]
        for host in client_hosts:
            account = f"'{user.name}'@'{_check(host, _CLIENT_HOST, 'client host')}'"
            password = {"password": user.password}
            statements += [
                (f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY :password", password),
                (f"ALTER USER {account} IDENTIFIED BY :password", password),
                (f"GRANT {', '.join(user.privileges)} ON `{database}`.* TO {account}", {}),
            ]
            if others:
                statements.append((f"REVOKE {', '.join(others)} ON `{database}`.* FROM {account}", {}))
    return statements


def provision(
    admin_url: str,
    database: str,
    users: Iterable[DatabaseUser],
    *,
    client_hosts: Sequence[str] = ("%",),
    create_database: bool = True,
) -> None:
    """Create `database` if missing and provision `users` on it, as the administrator."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    statements = provision_statements(database, users, client_hosts)
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn:
            if create_database:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4"))
            for sql, params in statements:
                conn.execute(text(sql), params)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .config import ConfigError, database_users_config

    parser = argparse.ArgumentParser(
        prog="python -m servicekit.dbusers",
        description="Create or update a service's DML-only runtime user and its DDL migration user.",
    )
    parser.parse_args(argv)
    try:
        config = database_users_config()
    except ConfigError as exc:
        print(f"dbusers: {exc}", file=sys.stderr)
        return 2
    provision(config.admin_url, config.database, [config.runtime, config.migration])
    print(
        f"dbusers: {config.database}: {config.runtime.name} ({', '.join(RUNTIME_PRIVILEGES)}), "
        f"{config.migration.name} ({', '.join(MIGRATION_PRIVILEGES)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
