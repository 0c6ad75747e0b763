"""Typed readers for configuration that comes from environment variables.

Every setting has a safe local default except secrets: those have no default at all, so a
process that lacks one refuses to start instead of running with a guessable value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


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
