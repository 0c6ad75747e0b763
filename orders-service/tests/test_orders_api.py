"""Creating and reading orders: reservation all or nothing, customer checks, scoping, lists."""

from __future__ import annotations

import contextlib
import uuid

import jwt
import pytest
from customers_stub import CustomersStub
from orders_testkit import assert_problem, snapshot, stock_of
from sqlalchemy import event, text

from servicekit.db import queued_with_commit
from servicekit.testing import free_port
from servicekit.timeutil import iso_utc, parse_iso_utc

ORDER_KEYS = {
    "id",
    "customer_id",
    "status",
    "payment_status",
    "total_cents",
    "items",
    "created_at",
    "confirmed_at",
    "paid_at",
    "canceled_at",
    "cancel_reason",
    "updated_at",
}


def _verb(statement: str) -> str:
    return statement.split(None, 1)[0].upper()


@contextlib.contextmanager
def round_trips(app):
    """Collect what the app sends to the database while the block runs, a round trip each: a
    statement's verb, or the COMMIT with the writes sent with it ("INSERT;INSERT;COMMIT")."""
    sent: list[str] = []
    engine = app.extensions["orders_service.engine"]

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(_verb(statement))

    def record_commit(conn):
        sent.append(";".join([*map(_verb, queued_with_commit(conn.connection.dbapi_connection)), "COMMIT"]))

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", record_commit)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", record_commit)


def test_create_reserves_stock_and_returns_the_order(api, db):
    customer = api.new_customer()
    first, second = api.new_product(stock=10, price_cents=150), api.new_product(stock=5, price_cents=2000)
    response = api.create_order(customer, [(second["id"], 2), (first["id"], 3)])
    assert response.status_code == 201
    order = response.get_json()
    assert set(order) == ORDER_KEYS
    assert order["status"] == "CREATED" and order["payment_status"] == "NOT_REQUESTED"
    assert order["customer_id"] == customer
    assert order["items"] == [
        {"product_id": first["id"], "sku": first["sku"], "qty": 3, "unit_price_cents": 150, "subtotal_cents": 450},
        {"product_id": second["id"], "sku": second["sku"], "qty": 2, "unit_price_cents": 2000, "subtotal_cents": 4000},
    ]
    assert order["total_cents"] == 4450
    assert order["confirmed_at"] is order["paid_at"] is order["canceled_at"] is order["cancel_reason"] is None
    assert iso_utc(parse_iso_utc(order["created_at"])) == order["created_at"]
    assert stock_of(db, first["id"]) == 7 and stock_of(db, second["id"]) == 3
    assert api.get_order(order["id"]) == order


def test_create_is_three_round_trips_whatever_the_size_four_with_a_key(app, api):
    customer = api.new_customer()
    products = [api.new_product() for _ in range(10)]
    api.new_order(customer, [(products[0]["id"], 1)])  # warm the customer cache
    with round_trips(app) as sent:
        assert api.create_order(customer, [(p["id"], 1) for p in products]).status_code == 201
    # read, order, then the stock taken (the lock), the lines and the COMMIT in one
    assert sent == ["SELECT", "INSERT", ";".join(["UPDATE"] + ["INSERT"] * 10 + ["COMMIT"])]

    with round_trips(app) as sent:
        response = api.create_order(customer, [(p["id"], 1) for p in products[:2]], key=uuid.uuid4().hex)
        assert response.status_code == 201
    # read, order, the key with its answer, then the stock, the lines and the COMMIT (no key
    # lookup first: the key's INSERT finds a completed twin, and a known customer needs no
    # lookup to replay)
    assert sent == ["SELECT", "INSERT", "INSERT", "UPDATE;INSERT;INSERT;COMMIT"]


def takes_stock(conn) -> bool:
    """This COMMIT of the app's carries create's stock UPDATE (and the lines)."""
    return any(q.startswith("UPDATE products SET stock") for q in queued_with_commit(conn.connection.dbapi_connection))


@contextlib.contextmanager
def before_taking_stock(app, change):
    """Run `change()` (on another connection) right before create's first stock UPDATE is sent
    (with its lines and COMMIT): what another request could commit between create's read and
    its lock."""
    engine = app.extensions["orders_service.engine"]
    done: list[bool] = []

    def hook(conn):
        if not done and takes_stock(conn):
            done.append(True)
            change()

    event.listen(engine, "commit", hook)
    try:
        yield done
    finally:
        event.remove(engine, "commit", hook)


def run_sql(db, sql: str, **params) -> None:
    with db.begin() as conn:
        conn.execute(text(sql), params)


@pytest.mark.parametrize("count", [1, 3])
def test_a_price_changed_between_read_and_lock_is_the_price_of_the_order(app, api, db, count):
    """The order is built from an unlocked read; the UPDATE that locks the rows takes the stock
    only at the price read, else create runs again locking first: the order has the new price."""
    customer = api.new_customer()
    products = [api.new_product(stock=10, price_cents=1000) for _ in range(count)]
    changed = products[-1]["id"]
    with before_taking_stock(
        app, lambda: run_sql(db, "UPDATE products SET price_cents = 1500 WHERE id = :id", id=changed)
    ) as done:
        response = api.create_order(customer, [(p["id"], 2) for p in products], key=uuid.uuid4().hex)
    assert done and response.status_code == 201, response.get_data(as_text=True)
    order = response.get_json()
    prices = {item["product_id"]: item["unit_price_cents"] for item in order["items"]}
    assert prices[changed] == 1500 and order["total_cents"] == 2000 * (count - 1) + 3000
    assert api.get_order(order["id"]) == order
    for product in products:
        assert stock_of(db, product["id"]) == 8  # taken once, by the run that committed
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar() == 1


def test_a_409_under_the_lock_leaves_no_key_behind(app, api, db):
    """The key is stored before the stock is taken: a 409 at the lock rolls it back with the
    order, so the same key runs again (and is not replayed) once there is stock."""
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    with before_taking_stock(
        app, lambda: run_sql(db, "UPDATE products SET stock = 1 WHERE id = :id", id=product["id"])
    ):
        response = api.create_order(customer, [(product["id"], 2)], key=key)
    assert_problem(response, 409, "insufficient_stock")
    with db.connect() as conn:
        assert (
            conn.execute(text("SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = :k"), {"k": key}).scalar()
            == 0
        )
    run_sql(db, "UPDATE products SET stock = 10 WHERE id = :id", id=product["id"])
    retry = api.create_order(customer, [(product["id"], 2)], key=key)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") is None
    assert stock_of(db, product["id"]) == 8
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar() == 1


def test_a_connection_cut_as_the_stock_and_commit_are_sent_is_a_503_and_the_retry_orders_once(app, api, db):
    """Fault: the database connection is killed after create stored its key and answer, just as
    the stock UPDATE, the lines and the COMMIT are sent together. Whether that COMMIT happened
    is unknown to the service: a 503, not run again. Here it never reached the server, so
    nothing was committed, and the client's retry with the same key orders once."""
    customer = api.new_customer()
    product = api.new_product(stock=10)
    engine = app.extensions["orders_service.engine"]
    killed: list[int] = []

    def kill_before_taking_stock(conn):
        if not killed and takes_stock(conn):
            killed.append(conn.connection.dbapi_connection.thread_id())
            run_sql(db, f"KILL {killed[0]}")

    key = uuid.uuid4().hex
    event.listen(engine, "commit", kill_before_taking_stock)
    try:
        response = api.create_order(customer, [(product["id"], 3)], key=key)
    finally:
        event.remove(engine, "commit", kill_before_taking_stock)
    assert killed
    assert_problem(response, 503, "database_unavailable")
    assert stock_of(db, product["id"]) == 10
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar() == 0
    retry = api.create_order(customer, [(product["id"], 3)], key=key)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") is None
    assert stock_of(db, product["id"]) == 7
    with db.connect() as conn:
        orders = conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar()
        keys = conn.execute(text("SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = :k"), {"k": key})
        assert orders == 1 and keys.scalar() == 1
    again = api.create_order(customer, [(product["id"], 3)], key=key)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.get_json() == retry.get_json()
    assert stock_of(db, product["id"]) == 7


@pytest.mark.parametrize("count", [1, 3])
def test_stock_sold_between_read_and_lock_is_a_409_with_what_the_lock_saw(app, api, db, count):
    customer = api.new_customer()
    products = [api.new_product(stock=10) for _ in range(count)]
    short = products[0]["id"]
    with before_taking_stock(app, lambda: run_sql(db, "UPDATE products SET stock = 1 WHERE id = :id", id=short)):
        response = api.create_order(customer, [(p["id"], 2) for p in products])
    assert_problem(response, 409, "insufficient_stock")
    assert response.get_json()["available"] == 1 and response.get_json()["product_id"] == short
    assert stock_of(db, short) == 1 and all(stock_of(db, p["id"]) == 10 for p in products[1:])
    with db.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer}).scalar() == 0


def test_confirm_cancel_and_the_payment_claim_are_a_fixed_handful_of_round_trips(app, api):
    customer = api.new_customer()
    products = [(api.new_product()["id"], 1) for _ in range(3)]
    confirmed, canceled = api.new_order(customer, products), api.new_order(customer, products)

    with round_trips(app) as sent:
        assert api.confirm(confirmed["id"]).status_code == 200
    # order + lines locked; then the order, and the key with its response (stored last: the order
    # lock serialises twins), with the COMMIT
    assert sent == ["SELECT", "UPDATE;INSERT;COMMIT"]

    with round_trips(app) as sent:
        assert api.claim(confirmed["id"]).get_json()["claimed"] is True
    assert sent == ["SELECT", "UPDATE;COMMIT"]  # order + lines locked; the order with the COMMIT

    with round_trips(app) as sent:
        response = api.client.post(
            f"/orders/{canceled['id']}/cancel", headers={**api.admin, "Idempotency-Key": uuid.uuid4().hex}
        )
        assert response.status_code == 200
    # key claim, order locked, its lines, every product's stock in one UPDATE; then the order and
    # the key's response with the COMMIT
    assert sent == ["INSERT", "SELECT", "SELECT", "UPDATE", "UPDATE;UPDATE;COMMIT"]


def test_short_stock_reserves_nothing_and_names_the_product(api, db):
    customer = api.new_customer()
    plenty, scarce = api.new_product(stock=50), api.new_product(stock=2)
    before = snapshot(db)
    body = assert_problem(api.create_order(customer, [(plenty["id"], 5), (scarce["id"], 3)]), 409, "insufficient_stock")
    assert (body["product_id"], body["requested"], body["available"]) == (scarce["id"], 3, 2)
    assert snapshot(db) == before


def test_unknown_product_or_customer_is_404_and_reserves_nothing(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=5)
    before = snapshot(db)
    body = assert_problem(api.create_order(customer, [(product["id"], 1), (987654321, 1)]), 404, "not_found")
    assert body["resource"] == "product"
    body = assert_problem(api.create_order(987654321, [(product["id"], 1)]), 404, "not_found")
    assert body["resource"] == "customer"
    assert snapshot(db) == before


def test_customers_service_down_is_503_and_changes_nothing(app_factory, api, db, tokens):
    product = api.new_product(stock=5)
    offline = app_factory(CUSTOMERS_API_URL=f"http://127.0.0.1:{free_port()}", DOWNSTREAM_RETRIES="1")
    before = snapshot(db)
    response = offline.test_client().post(
        "/orders", json={"customer_id": 1, "items": [{"product_id": product["id"], "qty": 1}]}, headers=api.admin
    )
    body = assert_problem(response, 503, "dependency_unavailable")
    assert response.headers["Retry-After"] and body["dependency"] == "customers-service"
    assert snapshot(db) == before


def test_an_unreported_delete_is_bounded_by_the_cache_ttl(app_factory, api, tokens):
    """A delete customers-service could not report (it logs customer_delete_notification_failed)
    is seen when the cache entry expires; a reported one at once (test_customer_deletes.py)."""
    stub = CustomersStub(tokens.service_keys.public_keys())  # deletes without reporting them
    try:
        cached_app = app_factory(CUSTOMERS_API_URL=stub.base_url)
        cached = cached_app.test_client()
        product = api.new_product(stock=10)
        customer = stub.create()
        body = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
        assert cached.post("/orders", json=body, headers=api.admin).status_code == 201
        stub.delete(customer)
        # Within CUSTOMER_CACHE_TTL_SECONDS the deleted customer is still known here (documented bound)...
        assert cached.post("/orders", json=body, headers=api.admin).status_code == 201
        # ...and once the entry expires the deletion is seen.
        cached_app.extensions["orders_service.context"].customers.forget(customer)
        assert_problem(cached.post("/orders", json=body, headers=api.admin), 404, "not_found")

        uncached = app_factory(CUSTOMERS_API_URL=stub.base_url, CUSTOMER_CACHE_TTL_SECONDS="0").test_client()
        other = stub.create()
        body = {"customer_id": other, "items": [{"product_id": product["id"], "qty": 1}]}
        assert uncached.post("/orders", json=body, headers=api.admin).status_code == 201
        stub.delete(other)
        assert_problem(uncached.post("/orders", json=body, headers=api.admin), 404, "not_found")
    finally:
        stub.stop()


def test_customer_lookups_carry_a_cached_orders_service_token(app_factory, api, tokens):
    stub = CustomersStub(tokens.service_keys.public_keys())
    try:
        client = app_factory(CUSTOMERS_API_URL=stub.base_url, CUSTOMER_CACHE_TTL_SECONDS="0").test_client()
        customer = stub.create()
        product = api.new_product(stock=5)
        body = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
        for _ in range(2):
            assert client.post("/orders", json=body, headers=api.admin).status_code == 201
        stub.delete(customer)
        assert_problem(client.post("/orders", json=body, headers=api.admin), 404, "not_found")
    finally:
        stub.stop()
    assert stub.lookups == 3 and stub.rejected_tokens == 0
    assert len(set(stub.tokens_seen)) == 1  # minted once, reused
    claims = jwt.decode(stub.tokens_seen[0], options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"], claims["role"]) == (
        "orders-service",
        "orders-service",
        "customers-service",
        "service",
    )


def test_duplicate_products_in_one_order_are_rejected(api):
    customer = api.new_customer()
    product = api.new_product()
    body = assert_problem(api.create_order(customer, [(product["id"], 1), (product["id"], 2)]), 400, "validation_error")
    assert "items" in body["errors"]


def test_customer_users_order_for_themselves_only(api):
    me, someone_else = api.new_customer(), api.new_customer()
    product = api.new_product()
    headers = api.customer_headers(me)
    response = api.client.post("/orders", json={"items": [{"product_id": product["id"], "qty": 1}]}, headers=headers)
    assert response.status_code == 201 and response.get_json()["customer_id"] == me
    assert_problem(api.create_order(someone_else, [(product["id"], 1)], headers=headers), 403, "forbidden")
    body = assert_problem(
        api.client.post("/orders", json={"items": [{"product_id": product["id"], "qty": 1}]}, headers=api.admin),
        400,
        "validation_error",
    )
    assert "customer_id" in body["errors"]


def test_other_customers_orders_are_invisible(api):
    owner, other = api.new_customer(), api.new_customer()
    order = api.new_order(owner, [(api.new_product()["id"], 1)])
    other_headers = api.customer_headers(other)
    assert_problem(api.client.get(f"/orders/{order['id']}", headers=other_headers), 404, "not_found")
    assert_problem(api.confirm(order["id"], headers=other_headers), 404, "not_found")
    assert_problem(api.cancel(order["id"], headers=other_headers), 404, "not_found")
    assert api.get_order(order["id"])["status"] == "CREATED"
    assert api.client.get(f"/orders/{order['id']}", headers=api.customer_headers(owner)).status_code == 200
    listed = api.client.get("/orders", headers=other_headers).get_json()["data"]
    assert order["id"] not in [o["id"] for o in listed]
    assert_problem(api.client.get(f"/orders?customer_id={owner}", headers=other_headers), 403, "forbidden")


def test_list_filters_and_pages_newest_first(app, api, db):
    customer = api.new_customer()
    product = api.new_product(stock=100)
    orders = [api.new_order(customer, [(product["id"], 1)]) for _ in range(5)]
    api.confirm(orders[1]["id"])
    api.cancel(orders[3]["id"])
    ids = [o["id"] for o in orders]

    page = api.client.get(f"/orders?customer_id={customer}", headers=api.admin).get_json()
    assert [o["id"] for o in page["data"]] == ids[::-1]
    assert page["data"][0] == api.get_order(ids[-1])

    walked, cursor = [], None
    with round_trips(app) as sent:
        while True:
            query = f"customer_id={customer}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = api.client.get(f"/orders?{query}", headers=api.customer_headers(customer)).get_json()
            walked.extend(o["id"] for o in page["data"])
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                break
    assert walked == ids[::-1]
    # Per page: the token's customer checked for a tombstone, then orders + their items: no N+1.
    assert sent.count("SELECT") == 3 * 3

    def listed(query: str) -> list[int]:
        response = api.client.get(f"/orders?customer_id={customer}&{query}", headers=api.admin)
        assert response.status_code == 200, response.get_json()
        return [o["id"] for o in response.get_json()["data"]]

    assert listed("status=CONFIRMED") == [ids[1]]
    assert listed("status=CANCELED") == [ids[3]]
    assert set(listed("status=CREATED")) == {ids[0], ids[2], ids[4]}
    with db.connect() as conn:  # microsecond precision: the API shows milliseconds
        exact = conn.execute(text("SELECT created_at FROM orders WHERE id = :id"), {"id": ids[2]}).scalar_one()
    middle = exact.isoformat() + "Z"
    assert listed(f"from={middle}") == ids[2:][::-1]
    assert listed(f"to={middle}") == ids[:2][::-1]
    assert listed("from=2000-01-01T00:00:00%2B01:00&to=2001-01-01") == []
    # `to` before `from` is an empty range, not an error: the document can state every other rule.
    assert listed(f"from={middle}&to=2000-01-01") == []


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
        "status=LOST",
        "from=yesterday",
        "to=2024-13-01",
        "customer_id=0",
        "from=2025-01-02T10:00:00",  # a time without an offset is ambiguous
    ],
)
def test_bad_list_queries_are_400(api, query):
    response = api.client.get(f"/orders?{query}", headers=api.admin)
    assert_problem(response, 400)
