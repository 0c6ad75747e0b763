"""`python -m orders_service.cli migrate|seed-demo`.

Both need only the database (DATABASE_URL / DB_* / the SQLite default), not the JWT secrets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from servicekit.db import make_engine, transaction
from servicekit.timeutil import utcnow

from . import repository as repo
from .config import database_url, ensure_sqlite_directory

SERVICE_DIR = Path(__file__).resolve().parents[1]

DEMO_PRODUCTS = (
    {"sku": "WIDGET-001", "name": "Standard widget", "price_cents": 1_250, "stock": 500},
    {"sku": "WIDGET-002", "name": "Heavy-duty widget", "price_cents": 4_999, "stock": 200},
    {"sku": "GADGET-001", "name": "Gadget, pack of 10", "price_cents": 8_900, "stock": 120},
    {"sku": "BOLT-M8-100", "name": "M8 bolts, box of 100", "price_cents": 1_599, "stock": 1_000},
    {"sku": "CABLE-CAT6-305", "name": "Cat6 cable, 305 m reel", "price_cents": 12_900, "stock": 40},
)


def alembic_config(url: str | None = None, *, configure_logging: bool = True) -> Config:
    config = Config(str(SERVICE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(SERVICE_DIR / "migrations"))
    config.attributes["database_url"] = url or database_url()
    config.attributes["skip_logging_config"] = not configure_logging
    return config


def migrate(url: str | None = None, *, configure_logging: bool = True) -> None:
    """Upgrade the database to the newest revision."""
    command.upgrade(alembic_config(url, configure_logging=configure_logging), "head")


def seed_demo(url: str | None = None) -> list[str]:
    """Insert the demo products whose SKUs do not exist yet; returns the SKUs added."""
    url = url or database_url()
    ensure_sqlite_directory(url)
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:

        def work(conn) -> list[str]:
            existing = repo.existing_skus(conn, (p["sku"] for p in DEMO_PRODUCTS))
            added = []
            now = utcnow()
            for product in DEMO_PRODUCTS:
                if product["sku"] not in existing:
                    repo.insert_product(conn, now=now, **product)
                    added.append(product["sku"])
            return added

        return transaction(engine.connect, work)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orders_service.cli", description=__doc__)
    parser.add_argument("command", choices=("migrate", "seed-demo"))
    args = parser.parse_args(argv)
    if args.command == "migrate":
        migrate()
        print("orders-service: database at head")
    else:
        added = seed_demo()
        print(f"orders-service: seeded {len(added)} demo product(s): {', '.join(added) or 'none needed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
