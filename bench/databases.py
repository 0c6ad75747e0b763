"""The bench's own databases: `<prefix>_customers_db` and `<prefix>_orders_db`, a user each.

Made with servicekit.testing's helpers (quoted names, bound values). They are recreated by every
run that starts its own stack and left in place afterwards, for inspection, unless dropped.
"""

from __future__ import annotations

import os
import secrets

from servicekit.testing import create_database, drop_database

ADMIN_URL = os.environ.get("BENCH_MYSQL_ADMIN_URL") or os.environ.get(
    "TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/"
)
SERVICES = ("customers", "orders")


def _names(prefix: str, service: str) -> tuple[str, str]:
    return f"{prefix}_{service}_db", f"{prefix}_{service}"


def create_bench_databases(prefix: str) -> dict[str, str]:
    """Fresh databases and users; their URLs by service."""
    return {
        service: create_database(*_names(prefix, service), secrets.token_urlsafe(18), admin_url=ADMIN_URL)
        for service in SERVICES
    }


def drop_bench_databases(prefix: str) -> None:
    for service in SERVICES:
        drop_database(*_names(prefix, service), admin_url=ADMIN_URL)
