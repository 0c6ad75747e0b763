"""Concurrency against a real gunicorn server (3 workers x 8 threads) with parallel clients.

Each test checks outcomes in the database: stock, order states, and stock conservation
(stock_received = stock + quantity held by orders that are not CANCELED).
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from orders_testkit import assert_stock_conserved, order_status, stock_ledger, stock_of
from sqlalchemy import text

pytestmark = pytest.mark.timeout(120)

CLIENT_THREADS = 32


class Http:
    """requests against the gunicorn server, one Session per client thread."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._local = threading.local()

    def call(self, method: str, path: str, headers: dict[str, str], body=None) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session.request(method, self.base_url + path, json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def http(server) -> Http:
    return Http(server.base_url)


def parallel(calls, threads: int = CLIENT_THREADS) -> list[requests.Response]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda call: call(), calls))


def statuses(responses) -> Counter:
    return Counter(response.status_code for response in responses)


def assert_no_5xx(responses) -> None:
    server_errors = [(r.status_code, r.text[:300]) for r in responses if r.status_code >= 500]
    assert not server_errors, server_errors


def order_body(customer_id, *items):
    return {"customer_id": customer_id, "items": [{"product_id": p, "qty": q} for p, q in items]}


def test_200_orders_for_50_units_sell_exactly_50(api, http, db):
    product = api.new_product(stock=50)
    customer = api.new_customer()
    calls = [
        lambda: http.call("POST", "/orders", api.admin, order_body(customer, (product["id"], 1))) for _ in range(200)
    ]
    responses = parallel(calls)
    assert_no_5xx(responses)
    assert statuses(responses) == {201: 50, 409: 150}
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "insufficient_stock" and body["product_id"] == product["id"]
            assert body["requested"] == 1 and body["available"] == 0
    assert stock_of(db, product["id"]) == 0
    assert len({r.json()["id"] for r in responses if r.status_code == 201}) == 50
    assert assert_stock_conserved(db, [product["id"]])[product["id"]]["held"] == 50


def test_10_cancels_of_one_order_return_stock_once(api, http, db):
    product = api.new_product(stock=20)
    order = api.new_order(api.new_customer(), [(product["id"], 5)])
    responses = parallel([lambda: http.call("POST", f"/orders/{order['id']}/cancel", api.admin)] * 10)
    assert statuses(responses) == {200: 1, 409: 9}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"invalid_state_transition"}
    assert stock_of(db, product["id"]) == 20
    assert_stock_conserved(db, [product["id"]])


def test_10_confirms_with_different_keys_confirm_once(api, http, db):
    order = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])

    def confirm():
        return http.call("POST", f"/orders/{order['id']}/confirm", {**api.admin, "Idempotency-Key": uuid.uuid4().hex})

    responses = parallel([confirm] * 10)
    assert statuses(responses) == {200: 1, 409: 9}
    assert order_status(db, order["id"]) == ("CONFIRMED", "PENDING")


def test_10_confirms_with_one_key_confirm_once_and_replay_it(api, http, db):
    """Confirm stores its key after the change: the twins wait on the order's lock, then find the
    order confirmed and replay the first one's answer (none gets a 409)."""
    order = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])
    key = uuid.uuid4().hex

    def confirm():
        return http.call("POST", f"/orders/{order['id']}/confirm", {**api.admin, "Idempotency-Key": key})

    responses = parallel([confirm] * 10)
    assert statuses(responses) == {200: 10}
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
    assert len({r.text for r in responses}) == 1
    assert order_status(db, order["id"]) == ("CONFIRMED", "PENDING")


def test_one_key_on_two_orders_at_once_confirms_one(api, http, db):
    """Two orders, no shared lock: both changes run, the second key INSERT is a duplicate, and that
    transaction is rolled back (422 for the other request)."""
    customer, product = api.new_customer(), api.new_product()["id"]
    orders = [api.new_order(customer, [(product, 1)])["id"] for _ in range(2)]
    key = uuid.uuid4().hex
    calls = [
        (
            lambda order_id=order_id: http.call(
                "POST", f"/orders/{order_id}/confirm", {**api.admin, "Idempotency-Key": key}
            )
        )
        for order_id in orders * 5
    ]
    responses = parallel(calls)
    assert_no_5xx(responses)
    winners = {r.json()["id"] for r in responses if r.status_code == 200}
    assert len(winners) == 1
    assert all(r.status_code == 422 for r in responses if r.status_code != 200)
    assert sorted(order_status(db, o)[0] for o in orders) == ["CONFIRMED", "CREATED"]


@pytest.fixture(scope="module")
def no_cancel_window_http(service_env, tmp_path_factory):
    """A second server where a CONFIRMED order can no longer be canceled (window 0 s), so a
    confirm/cancel race has two possible winners."""
    from servicekit.testing import ServerProcess

    log_path = tmp_path_factory.mktemp("gunicorn-window") / "orders-service.log"
    env = {**service_env, "CANCEL_WINDOW_SECONDS": "0"}
    process = ServerProcess("orders_service.wsgi:app", env=env, workers=2, threads=8, log_path=log_path)
    yield Http(process.base_url)
    process.stop()


def test_confirm_and_cancel_racing_end_in_one_consistent_state(api, no_cancel_window_http, db):
    http = no_cancel_window_http
    product = api.new_product(stock=100)
    customer = api.new_customer()
    orders = [api.new_order(customer, [(product["id"], 2)]) for _ in range(20)]
    calls = []
    for order in orders:
        path = f"/orders/{order['id']}"
        key = uuid.uuid4().hex
        calls.append(
            lambda p=path, k=key: (p, "confirm", http.call("POST", f"{p}/confirm", {**api.admin, "Idempotency-Key": k}))
        )
        calls.append(lambda p=path: (p, "cancel", http.call("POST", f"{p}/cancel", api.admin)))
    random.Random(7).shuffle(calls)
    results = parallel(calls)
    assert_no_5xx([r for _, _, r in results])

    outcome = {(path, kind): response for path, kind, response in results}
    still_held = 0
    for order in orders:
        path = f"/orders/{order['id']}"
        confirm, cancel = outcome[(path, "confirm")], outcome[(path, "cancel")]
        state = order_status(db, order["id"])
        if confirm.status_code == 200 and cancel.status_code != 200:
            # Confirm won; the cancel then found it CONFIRMED outside the (zero) window.
            assert cancel.json()["code"] == "cancel_window_expired" and state == ("CONFIRMED", "PENDING")
            still_held += 1
        elif cancel.status_code == 200 and confirm.status_code != 200:
            assert confirm.json()["code"] == "invalid_state_transition" and state == ("CANCELED", "NOT_REQUESTED")
        else:  # both in the same microsecond: confirmed, then canceled "within" the window
            assert (confirm.status_code, cancel.status_code, state) == (200, 200, ("CANCELED", "PENDING"))
    assert stock_of(db, product["id"]) == 100 - 2 * still_held
    assert_stock_conserved(db, [product["id"]])


def test_40_two_item_orders_in_opposite_lock_orders_do_not_fail(api, http, db):
    first, second = api.new_product(stock=1000), api.new_product(stock=1000)
    customer = api.new_customer()
    calls = []
    for i in range(40):
        items = [(first["id"], 1), (second["id"], 2)]
        if i % 2:
            items.reverse()
        calls.append(lambda items=items: http.call("POST", "/orders", api.admin, order_body(customer, *items)))
    responses = parallel(calls)
    assert_no_5xx(responses)
    assert statuses(responses) == {201: 40}
    assert stock_of(db, first["id"]) == 960 and stock_of(db, second["id"]) == 920
    assert_stock_conserved(db, [first["id"], second["id"]])


def test_10_parallel_creates_with_one_key_make_one_order(api, http, db):
    product = api.new_product(stock=100)
    customer = api.new_customer()
    key = uuid.uuid4().hex
    headers = {**api.orchestrator, "Idempotency-Key": key}
    body = order_body(customer, (product["id"], 3))
    responses = parallel([lambda: http.call("POST", "/orders", headers, body)] * 10, threads=10)
    assert statuses(responses) == {201: 10}
    assert len({r.content for r in responses}) == 1  # every answer is the same order, byte for byte
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") != "true") == 1
    with db.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar()
    assert count == 1 and stock_of(db, product["id"]) == 97

    other = http.call("POST", "/orders", headers, order_body(customer, (product["id"], 4)))
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_mismatch"
    replay = http.call("POST", "/orders", headers, body)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == responses[0].content
    assert stock_of(db, product["id"]) == 97


def test_parallel_placements_and_creates_with_one_key_make_one_order(api, http, db):
    """A placement shares create's key: twins sent to either endpoint at once make one order, and
    every one of them answers it, byte for byte."""
    product, customer = api.new_product(stock=100), api.new_customer()
    headers = {**api.orchestrator, "Idempotency-Key": uuid.uuid4().hex}
    body = order_body(customer, (product["id"], 3))
    calls = [lambda path=path: http.call("POST", path, headers, body) for path in ("/internal/placements", "/orders")]
    responses = parallel(calls * 5, threads=10)
    assert statuses(responses) == {201: 10}
    assert len({r.content for r in responses}) == 1
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") != "true") == 1
    with db.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar()
    assert count == 1 and stock_of(db, product["id"]) == 97
    assert_stock_conserved(db, [product["id"]])


def test_10_parallel_stores_of_one_bff_answer_keep_the_first(api, http, db):
    """The BFF's stored answer is one INSERT of the key row with its answer: parallel twins wait on
    the key's unique index, then all answer the one stored body; another fingerprint is a 422."""
    key = uuid.uuid4().hex
    path = f"/internal/stored-responses/{key}"

    def store(n: int, fingerprint: str = "f1"):
        body = {"fingerprint": fingerprint, "status": 201, "body": {"n": n}}
        return lambda: http.call("PUT", path, api.orchestrator, body)

    responses = parallel([store(n) for n in range(10)], threads=10)
    assert_no_5xx(responses)
    assert statuses(responses) == {201: 1, 200: 9}
    stored = http.call("GET", path, api.orchestrator).json()["body"]
    assert all(r.json()["body"] == stored for r in responses)
    assert store(99, "other")().status_code == 422
    with db.connect() as conn:
        rows = conn.execute(text("SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = :k"), {"k": key})
        assert rows.scalar() == 1


def settle_over_http(http, api, order_id: int, outcome: str):
    """The payments Lambda's two orders-service calls: claim, then record the outcome (the charge
    between them is the gateway's). Returns the claim's response when nothing was claimed."""
    claim = http.call("POST", f"/internal/orders/{order_id}/payment-claim", api.payments)
    if claim.status_code != 200 or not claim.json()["claimed"]:
        return claim
    body = {"outcome": outcome, "payment_attempt_id": claim.json()["payment"]["attempt_id"]}
    return http.call("POST", f"/internal/orders/{order_id}/payment-outcome", api.payments, body)


@pytest.mark.parametrize("outcome", ["failed", "succeeded"])
def test_two_deliveries_of_a_payment_and_a_cancel_end_in_one_outcome(api, http, db, outcome):
    product = api.new_product(stock=100)
    customer = api.new_customer()
    orders = []
    for _ in range(10):
        order = api.new_order(customer, [(product["id"], 3)])
        assert api.confirm(order["id"]).status_code == 200
        orders.append(order)
    calls = []
    for order in orders:
        for _ in range(2):
            calls.append(lambda o=order: ("payment", o["id"], settle_over_http(http, api, o["id"], outcome)))
        calls.append(lambda o=order: ("cancel", o["id"], http.call("POST", f"/orders/{o['id']}/cancel", api.admin)))
    random.Random(11).shuffle(calls)
    results = parallel(calls)
    assert_no_5xx([r for _, _, r in results])

    for order in orders:
        mine = [(kind, r) for kind, order_id, r in results if order_id == order["id"]]
        applied = [r for kind, r in mine if kind == "payment" and r.json().get("applied")]
        cancel = next(r for kind, r in mine if kind == "cancel")
        status, payment = order_status(db, order["id"])
        # Exactly one effect: the cancel (before any claim), or one of the two deliveries' outcome.
        assert len(applied) + (cancel.status_code == 200) == 1
        if cancel.status_code == 200:
            assert (status, payment) == ("CANCELED", "PENDING")
            assert all(r.json()["claimed"] is False for kind, r in mine if kind == "payment")
        else:
            # Refused while the payment was in flight, or after it settled.
            assert cancel.json()["code"] in ("payment_in_progress", "invalid_state_transition")
            expected = ("CANCELED", "FAILED") if outcome == "failed" else ("PAID", "SUCCEEDED")
            assert (status, payment) == expected
    ledger = assert_stock_conserved(db, [product["id"]])
    paid = sum(1 for order in orders if order_status(db, order["id"])[0] == "PAID")
    assert ledger[product["id"]]["stock"] == 100 - 3 * paid


def test_random_mix_conserves_stock(api, http, db):
    rng = random.Random(20261123)
    products = [api.new_product(stock=30, price_cents=100 + i) for i in range(5)]
    product_ids = [p["id"] for p in products]
    customer_ids = [api.new_customer() for _ in range(4)]
    known_orders: list[int] = []
    lock = threading.Lock()

    def create(items):
        def call():
            response = http.call("POST", "/orders", api.admin, order_body(rng_customer(items), *items))
            if response.status_code == 201:
                with lock:
                    known_orders.append(response.json()["id"])
            return response

        return call

    def rng_customer(items):
        return customer_ids[sum(p for p, _ in items) % len(customer_ids)]

    def on_some_order(action):
        def call():
            with lock:
                order_id = rng.choice(known_orders) if known_orders else None
            if order_id is None:
                return http.call("GET", "/products?limit=1", api.admin)
            return action(order_id)

        return call

    calls = []
    for _ in range(400):
        roll = rng.random()
        if roll < 0.4:
            chosen = rng.sample(product_ids, rng.randint(1, 3))
            calls.append(create([(p, rng.randint(1, 5)) for p in chosen]))
        elif roll < 0.55:
            calls.append(
                on_some_order(
                    lambda o: http.call(
                        "POST", f"/orders/{o}/confirm", {**api.admin, "Idempotency-Key": uuid.uuid4().hex}
                    )
                )
            )
        elif roll < 0.7:
            calls.append(on_some_order(lambda o: http.call("POST", f"/orders/{o}/cancel", api.admin)))
        elif roll < 0.8:
            product_id, qty = rng.choice(product_ids), rng.randint(1, 10)
            calls.append(lambda p=product_id, q=qty: http.call("POST", f"/products/{p}/restock", api.admin, {"qty": q}))
        else:
            result = rng.choice(["succeeded", "failed"])
            calls.append(on_some_order(lambda o, r=result: settle_over_http(http, api, o, r)))
    responses = parallel(calls)

    assert_no_5xx(responses)
    assert set(statuses(responses)) <= {200, 201, 409}, statuses(responses)
    ledger = assert_stock_conserved(db, product_ids)
    assert all(entry["stock"] >= 0 for entry in ledger.values())
    assert sum(entry["stock_received"] for entry in ledger.values()) > 150  # restocks happened
    with db.connect() as conn:
        states = Counter(
            conn.execute(
                text(f"SELECT status FROM orders WHERE customer_id IN ({', '.join(map(str, customer_ids))})")
            ).scalars()
        )
    assert len(states) >= 3, states  # the mix really reached several states
    assert stock_ledger(db, product_ids) == ledger


def test_parallel_cart_additions_respect_the_100_product_limit(api, http, db):
    customer = api.new_customer()
    products = [api.new_product(stock=5)["id"] for _ in range(105)]
    for product_id in products[:95]:
        path = f"/cart/items/{product_id}?customer_id={customer}"
        assert api.client.put(path, json={"qty": 1}, headers=api.admin).status_code == 200
    calls = [
        lambda p=product_id: http.call("PUT", f"/cart/items/{p}?customer_id={customer}", api.admin, {"qty": 2})
        for product_id in products[95:]
    ]
    responses = parallel(calls, threads=10)
    assert statuses(responses) == {200: 5, 400: 5}
    with db.connect() as conn:
        held = conn.execute(text("SELECT COUNT(*) FROM cart_items WHERE customer_id = :c"), {"c": customer}).scalar()
    assert held == 100


def test_parallel_checkouts_of_one_cart_order_it_once(api, http, db):
    customer = api.new_customer()
    product = api.new_product(stock=10)
    api.client.put(f"/cart/items/{product['id']}?customer_id={customer}", json={"qty": 4}, headers=api.admin)
    body = {"customer_id": customer, "from_cart": True}
    responses = parallel([lambda: http.call("POST", "/orders", api.admin, body)] * 8, threads=8)
    assert statuses(responses) == {201: 1, 409: 7}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"cart_empty"}
    assert stock_of(db, product["id"]) == 6
    assert_stock_conserved(db, [product["id"]])
