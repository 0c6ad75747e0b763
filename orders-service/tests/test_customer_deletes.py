"""Deletes in customers-service are honoured at once, cache or no cache.

customers-service reports each soft delete to `POST /internal/customers/{id}/deleted` (here: the
real customers-service process reporting to the real orders-service process, `server`, on the
shared test database); the tombstone is read by the statement that locks the products, so a
worker whose cache still holds the customer refuses it like an unknown one.
"""

from __future__ import annotations

import secrets
import uuid

import requests
from orders_testkit import assert_problem, auth, snapshot
from sqlalchemy import text

REPORTER = "customers-service"


def deleted_at(db, customer_id: int):
    with db.connect() as conn:
        return conn.execute(
            text("SELECT deleted_at FROM deleted_customers WHERE customer_id = :id"), {"id": customer_id}
        ).scalar_one_or_none()


def unseen_customer_id() -> int:
    """An id no customers-service here hands out (tombstones are keyed by customer id)."""
    return 2 * 10**12 + secrets.randbelow(10**12)


def report(client, tokens, customer_id: int, caller: str = REPORTER):
    return client.post(
        f"/internal/customers/{customer_id}/deleted", headers=auth(tokens.service(caller, "orders-service"))
    )


def test_a_delete_in_customers_service_stops_orders_at_once(app, api, server, customers, db):
    directory = app.extensions["orders_service.context"].customers
    customer = customers.create()
    product, in_cart = api.new_product(stock=10), api.new_product(stock=10)
    api.new_order(customer, [(product["id"], 1)])  # this worker now caches the customer
    put = api.client.put(f"/cart/items/{in_cart['id']}?customer_id={customer}", json={"qty": 2}, headers=api.admin)
    assert put.status_code == 200
    live = requests.post(
        f"{server.base_url}/orders",
        json={"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]},
        headers=api.admin,
        timeout=10,
    )
    assert live.status_code == 201, live.text
    assert directory._is_cached(customer)
    before = snapshot(db)

    customers.delete(customer)  # 204 once orders-service (`server`) holds the tombstone
    assert deleted_at(db, customer) is not None

    # Items, through this worker, whose cache still says the customer exists.
    body = assert_problem(api.create_order(customer, [(product["id"], 1)]), 404, "not_found")
    assert body["resource"] == "customer"
    assert not directory._is_cached(customer)  # dropped on sight of the tombstone
    # Checkout of the cart, with an idempotency key, on a worker still caching it.
    directory._remember(customer)
    checkout = api.client.post(
        "/orders",
        json={"customer_id": customer, "from_cart": True},
        headers={**api.admin, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert assert_problem(checkout, 404, "not_found")["resource"] == "customer"
    # The cart cannot grow either.
    directory._remember(customer)
    put = api.client.put(f"/cart/items/{product['id']}?customer_id={customer}", json={"qty": 1}, headers=api.admin)
    assert assert_problem(put, 404, "not_found")["resource"] == "customer"
    assert not directory._is_cached(customer)
    # Through the other process, whatever its workers cached.
    for _ in range(3):
        response = requests.post(
            f"{server.base_url}/orders",
            json={"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]},
            headers=api.admin,
            timeout=10,
        )
        assert assert_problem(response, 404, "not_found")["resource"] == "customer"
    assert snapshot(db) == before  # nothing reserved, the cart untouched, no key kept

    # Reading the cart and taking items out of it lead to no order: still allowed.
    cart = api.client.get(f"/cart?customer_id={customer}", headers=api.admin)
    assert [line["product_id"] for line in cart.get_json()["items"]] == [in_cart["id"]]
    emptied = api.client.delete(f"/cart/items/{in_cart['id']}?customer_id={customer}", headers=api.admin)
    assert emptied.status_code == 200 and emptied.get_json()["items"] == []


def test_a_tombstone_is_a_customer_404_on_every_create_path(app, api, client, tokens, db):
    directory = app.extensions["orders_service.context"].customers
    customer = unseen_customer_id()
    product = api.new_product(stock=1)
    assert report(client, tokens, customer).status_code == 200
    before = snapshot(db)
    for body in (
        {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]},
        {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 5}]},  # short stock too
        {"customer_id": customer, "items": [{"product_id": 987654321, "qty": 1}]},  # no product to lock
        {"customer_id": customer, "from_cart": True},  # no cart either
    ):
        directory._remember(customer)  # as a worker that saw it alive would
        response = client.post("/orders", json=body, headers=api.admin)
        assert assert_problem(response, 404, "not_found")["resource"] == "customer", body
        assert not directory._is_cached(customer)
    directory._remember(customer)
    put = client.put(f"/cart/items/987654321?customer_id={customer}", json={"qty": 1}, headers=api.admin)
    assert assert_problem(put, 404, "not_found")["resource"] == "customer"
    assert snapshot(db) == before


def test_the_deletion_report_is_idempotent_and_drops_the_cached_customer(app, client, tokens, db):
    directory = app.extensions["orders_service.context"].customers
    customer = unseen_customer_id()
    directory._remember(customer)
    first = report(client, tokens, customer)
    assert first.status_code == 200
    assert first.get_json()["customer_id"] == customer and first.get_json()["deleted_at"].endswith("Z")
    assert not directory._is_cached(customer)
    recorded = deleted_at(db, customer)
    again = report(client, tokens, customer)
    assert again.status_code == 200 and again.get_json() == first.get_json()  # the first deleted_at stays
    assert deleted_at(db, customer) == recorded
    with db.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM deleted_customers WHERE customer_id = :id"), {"id": customer})
        assert count.scalar_one() == 1


def test_only_customers_service_may_report_a_deletion(client, tokens, db):
    customer = unseen_customer_id()
    path = f"/internal/customers/{customer}/deleted"
    for caller in ("orchestrator", "payments", "sweeper"):  # trusted elsewhere, not here
        assert_problem(report(client, tokens, customer, caller=caller), 403, "forbidden")
    for token in (tokens.admin(), tokens.customer(customer)):
        assert_problem(client.post(path, headers=auth(token)), 403, "forbidden")
    for token in tokens.bad_tokens().values():
        assert_problem(client.post(path, headers=auth(token)), 401)
    assert_problem(client.post(path, headers=auth(tokens.service(REPORTER, "customers-service"))), 401)
    assert deleted_at(db, customer) is None
    assert report(client, tokens, customer).status_code == 200


def test_a_deleted_customers_own_token_is_refused_at_once(api, client, server, customers, db):
    """A customer user's token names its customer: once the delete is reported, every route
    refuses it (401), the confirm replay answered before Flask included."""
    customer = customers.create()
    own = api.customer_headers(customer)
    product = api.new_product(stock=10)
    order = api.new_order(customer, [(product["id"], 1)])
    key = uuid.uuid4().hex
    assert api.confirm(order["id"], key=key, headers=own).status_code == 200
    replay = api.confirm(order["id"], key=key, headers=own)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert client.get("/orders", headers=own).status_code == 200

    customers.delete(customer)  # reported to `server`, on the same database
    assert deleted_at(db, customer) is not None
    for method, path in (
        ("GET", "/orders"),
        ("GET", f"/orders/{order['id']}"),
        ("POST", f"/orders/{order['id']}/confirm"),
        ("POST", f"/orders/{order['id']}/cancel"),
        ("GET", "/cart"),
        ("PUT", f"/cart/items/{product['id']}"),
        ("GET", "/products"),
    ):
        response = client.open(path, method=method, json={"qty": 1}, headers={**own, "Idempotency-Key": key})
        problem = assert_problem(response, 401, "invalid_token")
        assert "deleted" in problem["detail"], (method, path)
    # Admins (and the BFF) still see the deleted customer's orders.
    assert client.get(f"/orders?customer_id={customer}", headers=api.admin).status_code == 200
