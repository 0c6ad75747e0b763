"""`POST /internal/placements`: the BFF's create-and-confirm in one transaction (docs/api.md)."""

from __future__ import annotations

import uuid

from orders_testkit import assert_problem, order_status, snapshot, stock_of

PLACEMENTS = "/internal/placements"


def place(api, body, *, key: str | None = None, headers=None):
    extra = {"Idempotency-Key": key} if key else {}
    return api.client.post(PLACEMENTS, json=body, headers={**(headers or api.orchestrator), **extra})


def items_body(customer_id: int, *items: tuple[int, int]) -> dict:
    return {"customer_id": customer_id, "items": [{"product_id": p, "qty": q} for p, q in items]}


def test_a_placement_is_a_confirmed_order_with_its_stock_taken(api, db):
    customer = api.new_customer()
    first, second = api.new_product(stock=10, price_cents=250), api.new_product(stock=5, price_cents=100)
    response = place(api, items_body(customer, (first["id"], 3), (second["id"], 2)), key=uuid.uuid4().hex)

    assert response.status_code == 201, response.get_json()
    order = response.get_json()
    assert (order["status"], order["payment_status"]) == ("CONFIRMED", "PENDING")
    assert order["confirmed_at"] == order["created_at"] == order["updated_at"]
    assert order["total_cents"] == 3 * 250 + 2 * 100
    assert [(i["product_id"], i["qty"], i["unit_price_cents"]) for i in order["items"]] == [
        (first["id"], 3, 250),
        (second["id"], 2, 100),
    ]
    assert "Idempotent-Replayed" not in response.headers
    # What was answered is what was stored, and what the next reader sees.
    assert api.get_order(order["id"]) == order
    assert order_status(db, order["id"]) == ("CONFIRMED", "PENDING")
    assert (stock_of(db, first["id"]), stock_of(db, second["id"])) == (7, 3)
    # A confirm of it is refused like any confirmed order's.
    assert_problem(api.confirm(order["id"]), 409, "invalid_state_transition")


def test_a_retried_placement_replays_and_changes_nothing(api, db):
    customer, product = api.new_customer(), api.new_product(stock=10)
    body, key = items_body(customer, (product["id"], 4)), uuid.uuid4().hex
    first = place(api, body, key=key)
    assert first.status_code == 201
    before = snapshot(db)

    again = place(api, body, key=key)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    other = place(api, items_body(customer, (product["id"], 5)), key=key)
    assert_problem(other, 422, "idempotency_key_mismatch")
    assert snapshot(db) == before
    assert stock_of(db, product["id"]) == 6


def test_one_key_makes_one_order_whichever_endpoint_saw_it_first(api, db):
    """Placements share create's key scope: a key a plain create used first (a placement retried
    across the deploy that brought placements in) replays that CREATED order, and the reverse
    replays the placement's confirmed order. Never a second order."""
    customer, product = api.new_customer(), api.new_product(stock=10)
    body = items_body(customer, (product["id"], 1))

    created_key = uuid.uuid4().hex
    created = api.client.post("/orders", json=body, headers={**api.orchestrator, "Idempotency-Key": created_key})
    assert created.status_code == 201
    replayed = place(api, body, key=created_key)
    assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.get_data() == created.get_data()
    assert replayed.get_json()["status"] == "CREATED"

    placed_key = uuid.uuid4().hex
    placed = place(api, body, key=placed_key)
    assert placed.get_json()["status"] == "CONFIRMED"
    as_create = api.client.post("/orders", json=body, headers={**api.orchestrator, "Idempotency-Key": placed_key})
    assert as_create.status_code == 201 and as_create.headers["Idempotent-Replayed"] == "true"
    assert as_create.get_data() == placed.get_data()
    assert stock_of(db, product["id"]) == 8  # two orders, one per key


def test_a_placement_from_the_cart_confirms_it_and_empties_the_cart(api, db):
    customer, product = api.new_customer(), api.new_product(stock=10)
    added = api.client.put(f"/cart/items/{product['id']}?customer_id={customer}", json={"qty": 2}, headers=api.admin)
    assert added.status_code == 200, added.get_json()

    response = place(api, {"customer_id": customer, "from_cart": True}, key=uuid.uuid4().hex)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["status"] == "CONFIRMED"
    assert stock_of(db, product["id"]) == 8
    assert api.client.get(f"/cart?customer_id={customer}", headers=api.admin).get_json()["items"] == []
    assert_problem(place(api, {"customer_id": customer, "from_cart": True}, key=uuid.uuid4().hex), 409, "cart_empty")


def test_a_refused_placement_changes_nothing(api, db):
    customer, product = api.new_customer(), api.new_product(stock=2)
    short_key = f"short-{uuid.uuid4().hex}"
    before = snapshot(db)
    short = assert_problem(place(api, items_body(customer, (product["id"], 3)), key=short_key), 409)
    assert (short["code"], short["available"]) == ("insufficient_stock", 2)
    assert_problem(place(api, items_body(customer, (987654321, 1)), key="no-product"), 404, "not_found")
    assert_problem(place(api, items_body(987654321, (product["id"], 1)), key="no-customer"), 404, "not_found")
    assert_problem(place(api, items_body(customer, (product["id"], 1))), 400, "idempotency_key_required")
    assert_problem(place(api, {"items": [{"product_id": product["id"], "qty": 1}]}, key="no-id"), 400)
    assert_problem(place(api, {"customer_id": customer, "items": []}, key="empty"), 400)
    assert snapshot(db) == before
    # A refused placement keeps no key: the same key places the order once the stock is there.
    assert api.client.post(f"/products/{product['id']}/restock", json={"qty": 1}, headers=api.admin).status_code == 200
    assert place(api, items_body(customer, (product["id"], 3)), key=short_key).status_code == 201
