"""What one hot statement costs the service's CPU, by how it is run (bench/README.md, "Statements").

    .venv/bin/python -m bench.statements [--calls 2000] [--rounds 5]

Runs the three kinds of statement of the hot paths (lock an order with its lines, update an
order, insert an order) on a throwaway MariaDB/MySQL database (`TEST_MYSQL_ADMIN_URL`) through
PyMySQL, the service's engine settings and one Session per batch, each in every way SQLAlchemy
offers, and prints the CPU time of this process per call (µs; the best of `--rounds`). The
round trip's own client CPU is in every row; the "PyMySQL cursor" row is that floor.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from orders_service.cli import migrate
from orders_service.models import order_items_table as order_items
from orders_service.models import orders_table as orders
from servicekit.db import make_engine, make_session_factory
from servicekit.testing import ThrowawayDatabase
from servicekit.timeutil import utcnow

BATCH = 100  # calls per transaction

LOCK_ORDER_SQL = (
    "SELECT orders.id, orders.customer_id, orders.status, orders.total_cents, order_items.product_id, "
    "order_items.qty FROM orders LEFT OUTER JOIN order_items ON order_items.order_id = orders.id "
    "WHERE orders.id = :order_id FOR UPDATE"
)
UPDATE_ORDER_SQL = "UPDATE orders SET payment_status = :payment_status, updated_at = :now WHERE id = :order_id"
INSERT_ORDER_SQL = (
    "INSERT INTO orders (customer_id, status, payment_status, total_cents, created_at, updated_at) "
    "VALUES (:customer_id, 'CREATED', 'NOT_REQUESTED', :total_cents, :now, :now)"
)


def _core_statements() -> dict[str, Any]:
    lock = (
        select(
            orders.c.id,
            orders.c.customer_id,
            orders.c.status,
            orders.c.total_cents,
            order_items.c.product_id,
            order_items.c.qty,
        )
        .select_from(orders.outerjoin(order_items, order_items.c.order_id == orders.c.id))
        .where(orders.c.id == bindparam("order_id"))
        .with_for_update()
    )
    change = (
        update(orders)
        .where(orders.c.id == bindparam("order_id"))
        .values(payment_status=bindparam("payment_status"), updated_at=bindparam("now"))
    )
    add = insert(orders).values(
        customer_id=bindparam("customer_id"),
        status="CREATED",
        payment_status="NOT_REQUESTED",
        total_cents=bindparam("total_cents"),
        created_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    return {"lock": lock, "update": change, "insert": add}


def _pyformat(sql: str) -> str:
    """`:name` → `%(name)s`, PyMySQL's own parameter style (for exec_driver_sql)."""
    return re.sub(r":(\w+)", r"%(\1)s", sql)


Runner = Callable[[Session, str, dict[str, Any]], Any]


def runners() -> dict[str, Runner]:
    """How a statement can be run, each returning rows (a SELECT) or the new id (an INSERT)."""
    core = _core_statements()
    texts = {"lock": text(LOCK_ORDER_SQL), "update": text(UPDATE_ORDER_SQL), "insert": text(INSERT_ORDER_SQL)}
    raw = {"lock": LOCK_ORDER_SQL, "update": UPDATE_ORDER_SQL, "insert": INSERT_ORDER_SQL}
    driver_sql = {kind: _pyformat(sql) for kind, sql in raw.items()}

    def finish(kind: str, result: Any) -> Any:
        if kind == "lock":
            return result.all()
        if kind == "insert":
            return result.lastrowid
        return result.rowcount

    def core_built_per_call(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.execute(_core_statements()[kind], params))

    def core_session(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.execute(core[kind], params))

    def core_connection(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.connection().execute(core[kind], params))

    def text_session(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.execute(texts[kind], params))

    def text_connection(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.connection().execute(texts[kind], params))

    def exec_driver_sql(session: Session, kind: str, params: dict[str, Any]) -> Any:
        return finish(kind, session.connection().exec_driver_sql(driver_sql[kind], params))

    def pymysql_cursor(session: Session, kind: str, params: dict[str, Any]) -> Any:
        # The floor: no SQLAlchemy at all (private to this measurement, never in the service).
        cursor = session.connection().connection.dbapi_connection.cursor()
        cursor.execute(driver_sql[kind], params)
        value = cursor.fetchall() if kind == "lock" else cursor.lastrowid if kind == "insert" else cursor.rowcount
        cursor.close()
        return value

    return {
        "Core, built per call, Session.execute": core_built_per_call,
        "Core, built once, Session.execute": core_session,
        "Core, built once, Connection.execute": core_connection,
        "text(), built once, Session.execute": text_session,
        "text(), built once, Connection.execute": text_connection,
        "Connection.exec_driver_sql": exec_driver_sql,
        "PyMySQL cursor (floor)": pymysql_cursor,
    }


def measure(session_factory, runner: Runner, kind: str, calls: int, order_id: int) -> float:
    """CPU µs of this process per call."""
    now = utcnow()
    params = {
        "lock": {"order_id": order_id},
        "update": {"order_id": order_id, "payment_status": "NOT_REQUESTED", "now": now},
        "insert": {"customer_id": 1, "total_cents": 100, "now": now},
    }[kind]
    spent = 0.0
    for _ in range(max(1, calls // BATCH)):
        with session_factory() as session, session.begin():
            session.connection()  # the transaction's connection, before the clock starts
            started = time.process_time()
            for _ in range(BATCH):
                runner(session, kind, params)
            spent += time.process_time() - started
    return spent / (max(1, calls // BATCH) * BATCH) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per cell (the best is shown)")
    args = parser.parse_args(argv)
    database = ThrowawayDatabase("stmts")
    engine = make_engine(database.url, pool_size=1, max_overflow=0)
    try:
        migrate(database.url, configure_logging=False)
        session_factory = make_session_factory(engine)
        with session_factory() as session, session.begin():
            order_id = runners()["Connection.exec_driver_sql"](
                session, "insert", {"customer_id": 1, "total_cents": 100, "now": utcnow()}
            )
        kinds = ("lock", "update", "insert")
        ways = runners()
        table: dict[str, dict[str, float]] = {name: {} for name in ways}
        for _ in range(args.rounds):  # interleaved, so a busy moment hurts every row alike
            for name, runner in ways.items():
                for kind in kinds:
                    cost = measure(session_factory, runner, kind, args.calls, order_id)
                    table[name][kind] = min(cost, table[name].get(kind, cost))
        print(f"{'CPU µs per call':<42} {'lock order':>10} {'update':>8} {'insert':>8}")
        for name, costs in table.items():
            print(f"{name:<42} {costs['lock']:>10.0f} {costs['update']:>8.0f} {costs['insert']:>8.0f}")
    finally:
        engine.dispose()
        database.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
