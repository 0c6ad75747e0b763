"""Alembic environment of orders-service (orders_db only)."""

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

from orders_service.config import database_url, ensure_sqlite_directory
from orders_service.models import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name and not config.attributes.get("skip_logging_config"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    """The caller's URL (cli, tests) if given, else the service's DATABASE_URL / SQLite default."""
    return config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url") or database_url()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    ensure_sqlite_directory(url)
    connectable = create_engine(url, poolclass=pool.NullPool, hide_parameters=True)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
