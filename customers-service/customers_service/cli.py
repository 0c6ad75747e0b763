"""Operational commands: `python -m customers_service.cli migrate | seed-demo`.

`seed-demo` creates the demo accounts for local runs only: an `admin` user, a demo customer,
and its `user` login, with passwords from DEMO_ADMIN_PASSWORD / DEMO_USER_PASSWORD (there are
no default passwords). It is idempotent and refuses to run when APP_ENV=production.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from servicekit.config import ConfigError, app_env, database_url, env_secret
from servicekit.db import make_engine, make_session_factory

from .config import DEFAULT_SQLITE_URL

SERVICE_DIR = Path(__file__).resolve().parents[1]


def alembic_config(url: str) -> Config:
    config = Config(str(SERVICE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(SERVICE_DIR / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def seed_demo(url: str) -> dict:
    from .services import demo  # not for `migrate`: importing the services hashes a password

    if app_env() == "production":
        raise ConfigError("seed-demo creates demo logins and never runs with APP_ENV=production")
    admin_password = env_secret("DEMO_ADMIN_PASSWORD")
    user_password = env_secret("DEMO_USER_PASSWORD")
    engine = make_engine(url)
    try:
        return demo.seed_demo(make_session_factory(engine), admin_password=admin_password, user_password=user_password)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m customers_service.cli")
    parser.add_argument("command", choices=["migrate", "seed-demo"])
    args = parser.parse_args(argv)
    url = database_url(DEFAULT_SQLITE_URL)
    try:
        if args.command == "migrate":
            migrate(url)
        else:
            print(seed_demo(url))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
