"""Typed readers for configuration that comes from environment variables.

Every setting has a safe local default except secrets: those have no default at all, so a
process that lacks one refuses to start instead of running with a guessable value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .dbusers import DatabaseUser


class ConfigError(RuntimeError):
    """A setting is missing or malformed; raised at startup, never per request."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (environ if environ is not None else os.environ).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    value = _raw(name, environ)
    return default if value is None else value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from exc
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {number}")
    return number


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {value!r}") from exc
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {number}")
    return number


def env_secret(name: str, *, environ: Mapping[str, str] | None = None) -> str:
    """A secret: required in every environment, never defaulted, never logged."""
    value = _raw(name, environ)
    if value is None:
        raise ConfigError(
            f"{name} is required (no secret has a default); see .env.example, "
            "or run `make env` to generate local values"
        )
    return value


APP_ENVIRONMENTS = ("development", "test", "production")


def app_env(environ: Mapping[str, str] | None = None) -> str:
    value = (env_str("APP_ENV", "development", environ=environ) or "development").lower()
    if value not in APP_ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(APP_ENVIRONMENTS)}, got {value!r}")
    return value


def database_url(default: str, environ: Mapping[str, str] | None = None) -> str:
    """`DATABASE_URL`, or one built from the `DB_*` parts the earlier systems used, else `default`.

    In production a database must be configured explicitly: the SQLite default is for trying
    the platform out, not for running it.
    """
    url = env_str("DATABASE_URL", environ=environ)
    if url:
        return url
    host = env_str("DB_HOST", environ=environ)
    if host:
        from urllib.parse import quote_plus

        user = quote_plus(env_str("DB_USER", "root", environ=environ) or "root")
        password = env_str("DB_PASSWORD", "", environ=environ) or ""
        credentials = f"{user}:{quote_plus(password)}" if password else user
        port = env_int("DB_PORT", 3306, minimum=1, maximum=65535, environ=environ)
        name = env_str("DB_NAME", environ=environ)
        if not name:
            raise ConfigError("DB_NAME is required when DB_HOST is set")
        return f"mysql+pymysql://{credentials}@{host}:{port}/{name}?charset=utf8mb4"
    if app_env(environ) == "production":
        raise ConfigError("DATABASE_URL (or DB_HOST/DB_NAME) is required when APP_ENV=production")
    return default


@dataclass(frozen=True)
class DatabaseUsersConfig:
    """What `python -m servicekit.dbusers` provisions: one database, its two users, and the
    administrator connection that creates them."""

    admin_url: str = field(repr=False)
    database: str
    runtime: DatabaseUser
    migration: DatabaseUser


def database_users_config(environ: Mapping[str, str] | None = None) -> DatabaseUsersConfig:
    """DB_HOST/DB_PORT/DB_NAME (as for the services), DB_ADMIN_USER + DB_ADMIN_PASSWORD (e.g. the
    RDS master user), DB_APP_USER + DB_APP_PASSWORD (runtime, DML only), DB_MIGRATE_USER +
    DB_MIGRATE_PASSWORD (Alembic, DDL). Every password is a secret: required, never defaulted."""
    from urllib.parse import quote_plus

    from .dbusers import migration_user, runtime_user

    host = env_str("DB_HOST", environ=environ)
    name = env_str("DB_NAME", environ=environ)
    if not host or not name:
        raise ConfigError("DB_HOST and DB_NAME are required")
    port = env_int("DB_PORT", 3306, minimum=1, maximum=65535, environ=environ)
    admin_user = env_str("DB_ADMIN_USER", environ=environ)
    app_user = env_str("DB_APP_USER", environ=environ)
    migrate_user = env_str("DB_MIGRATE_USER", environ=environ)
    missing = [
        n
        for n, v in (("DB_ADMIN_USER", admin_user), ("DB_APP_USER", app_user), ("DB_MIGRATE_USER", migrate_user))
        if not v
    ]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required")
    admin_password = env_secret("DB_ADMIN_PASSWORD", environ=environ)
    admin_url = f"mysql+pymysql://{quote_plus(admin_user)}:{quote_plus(admin_password)}@{host}:{port}/?charset=utf8mb4"
    return DatabaseUsersConfig(
        admin_url=admin_url,
        database=name,
        runtime=runtime_user(app_user, env_secret("DB_APP_PASSWORD", environ=environ)),
        migration=migration_user(migrate_user, env_secret("DB_MIGRATE_PASSWORD", environ=environ)),
    )
