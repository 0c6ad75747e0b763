"""The ledger: one row per charge actually made, keyed by its idempotency key, in SQLite.

Durable before anyone hears of it: a charge is committed (WAL, `synchronous=FULL`) before its
answer is written, so a charge whose answer was lost, or a process killed after the commit, is
still there when the same key comes back, and that key replays it. The unique index on the key is
what makes "never charge twice" hold even if two processes shared the file.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    idempotency_key TEXT NOT NULL UNIQUE,
    request_fingerprint TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    customer_id INTEGER,
    amount_cents INTEGER NOT NULL,
    currency TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    decline_code TEXT,
    charge_json TEXT NOT NULL,
    response_status INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_order ON charges (order_id, seq);
"""

COLUMNS = (
    "seq",
    "id",
    "idempotency_key",
    "request_fingerprint",
    "order_id",
    "customer_id",
    "amount_cents",
    "currency",
    "outcome",
    "decline_code",
    "charge_json",
    "response_status",
    "response_body",
    "created_at",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM charges"


@dataclass(frozen=True)
class Charge:
    id: str
    idempotency_key: str
    request_fingerprint: str
    order_id: int
    customer_id: int | None
    amount_cents: int
    currency: str
    outcome: str  # succeeded | failed
    decline_code: str | None
    charge_json: str  # the Stripe-style charge object
    response_status: int  # what the first request was answered, replayed as is
    response_body: str
    created_at: str  # ISO 8601 UTC, milliseconds, `Z`
    seq: int | None = None

    def ledger_entry(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idempotency_key": self.idempotency_key,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "amount_cents": self.amount_cents,
            "currency": self.currency,
            "outcome": self.outcome,
            "decline_code": self.decline_code,
            "created_at": self.created_at,
        }

    def charge_object(self) -> dict[str, Any]:
        return orjson.loads(self.charge_json)


class Ledger:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # Autocommit mode: every write is an explicit BEGIN IMMEDIATE ... COMMIT.
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def ping(self) -> None:
        with self._lock:
            self._db.execute("SELECT 1").fetchone()

    def find_by_key(self, idempotency_key: str) -> Charge | None:
        return self._one(f"{_SELECT} WHERE idempotency_key = ?", (idempotency_key,))

    def find_by_id(self, charge_id: str) -> Charge | None:
        return self._one(f"{_SELECT} WHERE id = ?", (charge_id,))

    def insert(self, charge: Charge) -> tuple[Charge, bool]:
        """Commit a new charge; (the stored charge, True). If its key is already there (another
        process got it first), nothing is written: (that charge, False)."""
        values = [getattr(charge, name) for name in COLUMNS[1:]]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute(
                    f"INSERT INTO charges ({', '.join(COLUMNS[1:])}) VALUES ({', '.join('?' * len(values))})", values
                )
                self._db.execute("COMMIT")
                seq = cursor.lastrowid
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                existing = self._one_locked(f"{_SELECT} WHERE idempotency_key = ?", (charge.idempotency_key,))
                if existing is None:  # pragma: no cover - a duplicate charge id, 62^24 to one
                    raise
                return existing, False
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return Charge(**{**charge.__dict__, "seq": seq}), True

    def by_order(self, order_id: int) -> list[Charge]:
        return self._many(f"{_SELECT} WHERE order_id = ? ORDER BY seq", (order_id,))

    def page(self, limit: int, starting_after: Charge | None = None) -> tuple[list[Charge], bool]:
        """Newest first, like Stripe's lists; `starting_after` continues after that charge."""
        if starting_after is None:
            rows = self._many(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (limit + 1,))
        else:
            rows = self._many(f"{_SELECT} WHERE seq < ? ORDER BY seq DESC LIMIT ?", (starting_after.seq, limit + 1))
        return rows[:limit], len(rows) > limit

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM charges").fetchone()[0]

    def _one(self, sql: str, params: tuple[Any, ...]) -> Charge | None:
        with self._lock:
            return self._one_locked(sql, params)

    def _one_locked(self, sql: str, params: tuple[Any, ...]) -> Charge | None:
        row = self._db.execute(sql, params).fetchone()
        return _charge(row) if row else None

    def _many(self, sql: str, params: tuple[Any, ...]) -> list[Charge]:
        with self._lock:
            return [_charge(row) for row in self._db.execute(sql, params).fetchall()]


def _charge(row: tuple[Any, ...]) -> Charge:
    return Charge(**dict(zip(COLUMNS, row, strict=True)))
