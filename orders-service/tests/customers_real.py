"""The real customers-service, run under gunicorn on its own throwaway database.

Offers what the tests need from customers-service: `.base_url`, `.create()`, `.delete(id)`
(soft delete through its admin API, after which its internal endpoint answers 404, and which it
reports to the orders-service at `orders_api_url`).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from pathlib import Path

import requests

from servicekit.testing import ServerProcess, ThrowawayDatabase, TokenFactory


def customers_service_dir() -> Path | None:
    """The customers-service checkout, if it provides its WSGI app and migrations."""
    directory = Path(__file__).resolve().parents[2] / "customers-service"
    has_app = (directory / "customers_service" / "wsgi.py").is_file()
    has_migrations = any((directory / "migrations" / "versions").glob("*.py"))
    return directory if has_app and has_migrations else None


class RealCustomersService:
    def __init__(
        self,
        directory: Path,
        *,
        key_ring_values: dict[str, str],
        tokens: TokenFactory,
        log_path: Path,
        orders_api_url: str,
    ):
        self.database = ThrowawayDatabase("customers", dml_only=True)
        self.log_path = log_path
        env = {
            **key_ring_values,
            "DATABASE_URL": self.database.url,
            "APP_ENV": "test",
            "LOG_LEVEL": "WARNING",
            "ORDERS_API_URL": orders_api_url,
        }
        try:
            subprocess.run(
                [sys.executable, "-m", "customers_service.cli", "migrate"],
                env={**os.environ, **env, "DATABASE_URL": self.database.migrate_url},
                cwd=directory,
                check=True,
                capture_output=True,
                timeout=120,
            )
            self.process = ServerProcess(
                "customers_service.wsgi:app",
                env={**env, "SERVICE_NAME": "customers-service"},
                workers=2,
                threads=8,
                log_path=log_path,
                cwd=directory,
            )
        except BaseException:
            self.database.drop()
            raise
        self.base_url = self.process.base_url
        self._admin = {"Authorization": f"Bearer {tokens.admin()}"}
        self._session = requests.Session()
        self._names = itertools.count(1)

    def create(self, name: str | None = None) -> int:
        body = {"name": name or f"Test customer {next(self._names)}", "email": f"{uuid.uuid4().hex}@example.com"}
        response = self._session.post(f"{self.base_url}/customers", json=body, headers=self._admin, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def delete(self, customer_id: int) -> None:
        response = self._session.delete(f"{self.base_url}/customers/{customer_id}", headers=self._admin, timeout=10)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        self._session.close()
        self.process.stop()
        self.database.drop()
