"""Database outages under load, through the whole stack (docs/database-outages.md).

Several clients keep ordering through the BFF while orders-service's database user, then
customers-service's, is cut off for a few seconds (`ThrowawayDatabase.cut()`: account locked,
every connection killed; only this stack's users, never the shared server). No answer is a 500:
every failure is a 503 problem with `Retry-After`; every request sent after the database is back
succeeds; no order is half made (stock is conserved); and no process logged a 5xx but those 503s.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import requests
from e2e_support import HTTP_TIMEOUT, Bff, E2eStack, running_stack

CLIENTS = 6
CUT_SECONDS = 3.0
INITIAL_STOCK = 100_000
WEB_PROCESSES = ("bff", "customers-service", "orders-service")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("database-outages") / "log") as stack:
        yield stack


@dataclass(frozen=True)
class Attempt:
    started: float
    status: int
    content_type: str
    retry_after: str | None
    code: str | None


def attempt(user: Bff, product_id: int) -> Attempt:
    started = time.monotonic()
    answer = user.place([{"product_id": product_id, "qty": 1}])
    code = None
    if answer.status_code != 201 and answer.content:
        try:
            code = answer.json().get("code")
        except ValueError:
            code = None
    return Attempt(
        started, answer.status_code, answer.headers.get("Content-Type", ""), answer.headers.get("Retry-After"), code
    )


def ordering_under_an_outage(user: Bff, product_id: int, database) -> tuple[list[Attempt], float, Attempt]:
    """Clients order continuously; the database is cut for CUT_SECONDS, then restored. Returns
    every attempt, when the database came back, and the first request sent after that."""
    attempts: list[Attempt] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            result = attempt(user, product_id)
            with lock:
                attempts.append(result)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    database.cut()
    time.sleep(CUT_SECONDS)
    database.restore()
    restored = time.monotonic()
    first = attempt(user, product_id)
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(HTTP_TIMEOUT)
    return attempts, restored, first


def assert_honest_outage(attempts: list[Attempt], restored: float, first: Attempt) -> None:
    assert first.status == 201, first
    statuses = sorted({a.status for a in attempts})
    assert set(statuses) <= {201, 503}, statuses  # never a 500, nor anything else
    outage = [a for a in attempts if a.status == 503]
    assert outage, "the outage was never seen: no 503 at all"
    for answer in outage:
        assert answer.content_type.startswith("application/problem+json"), answer
        assert answer.retry_after and int(answer.retry_after) >= 1, answer
        assert answer.code in {"database_unavailable", "dependency_unavailable"}, answer
    after = [a for a in attempts if a.started >= restored]
    assert after and all(a.status == 201 for a in after), [a for a in after if a.status != 201]


def held_by_orders(admin: Bff, product_id: int) -> int:
    """Units of the product in orders that still hold stock (not CANCELED), read through the BFF."""
    held, cursor = 0, None
    while True:
        page = admin.ok("GET", "/orders", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        for order in page["data"]:
            if order["status"] != "CANCELED":
                held += sum(item["qty"] for item in order["items"] if item["product_id"] == product_id)
        cursor = page["pagination"]["next_cursor"]
        if not cursor:
            return held


def test_database_outages_are_503s_and_heal_at_once(stack: E2eStack, admin: Bff, user: Bff):
    customers_db, orders_db = stack.databases
    product = admin.new_product(stock=INITIAL_STOCK)

    attempts, restored, first = ordering_under_an_outage(user, product["id"], orders_db)
    assert_honest_outage(attempts, restored, first)

    customers_db.cut()
    try:
        login = requests.post(
            f"{stack.bff_url}/auth/login",
            json={"username": "user", "password": stack.env["DEMO_USER_PASSWORD"]},
            timeout=HTTP_TIMEOUT,
        )
        assert login.status_code == 503 and login.headers["Retry-After"], login.text
        assert login.json()["code"] == "database_unavailable"
    finally:
        customers_db.restore()
    attempts, restored, first = ordering_under_an_outage(user, product["id"], customers_db)
    assert_honest_outage(attempts, restored, first)
    Bff.login(stack.bff_url, "user", stack.env["DEMO_USER_PASSWORD"])

    # No order was half made: every unit is either in stock or held by an order.
    assert admin.stock(product["id"]) + held_by_orders(admin, product["id"]) == INITIAL_STOCK

    for process in WEB_PROCESSES:
        records = stack.records(process)
        requests_logged = [r for r in records if "http_request" in (r.get("event"), r.get("message"))]
        assert requests_logged, process
        server_errors = {r.get("status") for r in requests_logged if int(r.get("status") or 0) >= 500}
        assert server_errors <= {503}, (process, server_errors)
        unhandled = [r for r in records if "unhandled_exception" in (r.get("event"), r.get("message"))]
        assert unhandled == [], (process, unhandled[:3])


def test_a_key_retried_after_the_outage_places_one_order(stack: E2eStack, admin: Bff, user: Bff):
    """A client that got the 503 retries with its key once the database is back: one order."""
    _customers_db, orders_db = stack.databases
    product = admin.new_product(stock=10)
    key = uuid.uuid4().hex
    with orders_db.outage():
        answer = user.place([{"product_id": product["id"], "qty": 2}], key=key)
        assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
    retried = user.place([{"product_id": product["id"], "qty": 2}], key=key)
    assert retried.status_code == 201, retried.text
    again = user.place([{"product_id": product["id"], "qty": 2}], key=key)
    assert again.status_code == 201 and again.json()["data"]["order"]["id"] == retried.json()["data"]["order"]["id"]
    assert admin.stock(product["id"]) == 8
