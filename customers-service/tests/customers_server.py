"""customers-service under gunicorn, as a real process, for tests where a process boundary matters."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from servicekit.testing import ServerProcess


def customers_server(
    database_url: str,
    key_ring_values: Mapping[str, str],
    orders_url: str,
    log_path: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    **env: str,
) -> ServerProcess:
    return ServerProcess(
        "customers_service.wsgi:app",
        env={
            "DATABASE_URL": database_url,
            "APP_ENV": "test",
            "ORDERS_API_URL": orders_url,
            "SERVICE_NAME": "customers-service",
            **key_ring_values,
            **env,
        },
        workers=workers,
        threads=threads,
        log_path=log_path,
    )
