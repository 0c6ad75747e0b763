"""Carts: one per customer, scoped to the caller, at most 100 products, checked out atomically."""

from __future__ import annotations

from orders_testkit import assert_problem, snapshot, stock_of


def put_item(api, customer_id, product_id, qty, headers=None):
    query = "" if headers else f"?customer_id={customer_id}"
    return api.client.put(f"/cart/items/{product_id}{query}", json={"qty": qty}, headers=headers or api.admin)


def test_put_get_delete_and_the_cart_view(api):
    customer = api.new_customer()
    widget = api.new_product(price_cents=250)
    gadget = api.new_product(price_cents=1000)

    assert put_item(api, customer, widget["id"], 3).status_code == 200
    cart = put_item(api, customer, gadget["id"], 1).get_json()
    assert cart == {
        "customer_id": customer,
        "items": [
            {
                "product_id": widget["id"],
                "sku": widget["sku"],
                "name": widget["name"],
                "qty": 3,
                "unit_price_cents": 250,
                "subtotal_cents": 750,
            },
            {
                "product_id": gadget["id"],
                "sku": gadget["sku"],
                "name": gadget["name"],
                "qty": 1,
                "unit_price_cents": 1000,
                "subtotal_cents": 1000,
            },
        ],
        "total_cents": 1750,
    }
    cart = put_item(api, customer, widget["id"], 5).get_json()  # sets, does not add
    assert cart["items"][0]["qty"] == 5 and cart["total_cents"] == 2250

    response = api.client.delete(f"/cart/items/{gadget['id']}?customer_id={customer}", headers=api.admin)
    assert [item["product_id"] for item in response.get_json()["items"]] == [widget["id"]]
    again = api.client.delete(f"/cart/items/{gadget['id']}?customer_id={customer}", headers=api.admin)
    assert again.status_code == 200  # removing what is not there is fine
    fetched = api.client.get("/cart", headers=api.customer_headers(customer)).get_json()
    assert fetched["items"][0]["qty"] == 5 and fetched["customer_id"] == customer


def test_customer_users_act_for_themselves_only(api):
    owner, other = api.new_customer(), api.new_customer()
    product = api.new_product()
    owner_headers = api.customer_headers(owner)
    assert put_item(api, owner, product["id"], 2, headers=owner_headers).status_code == 200

    other_headers = api.customer_headers(other)
    assert api.client.get("/cart", headers=other_headers).get_json()["items"] == []
    for response in (
        api.client.get(f"/cart?customer_id={owner}", headers=other_headers),
        api.client.put(f"/cart/items/{product['id']}?customer_id={owner}", json={"qty": 1}, headers=other_headers),
        api.client.delete(f"/cart/items/{product['id']}?customer_id={owner}", headers=other_headers),
    ):
        assert assert_problem(response, 404, "not_found")["resource"] == "cart"
    assert api.client.get(f"/cart?customer_id={owner}", headers=api.admin).get_json()["items"][0]["qty"] == 2


def test_admins_and_services_must_name_the_customer(api):
    for headers in (api.admin, api.orchestrator):
        body = assert_problem(api.client.get("/cart", headers=headers), 400, "validation_error")
        assert "customer_id" in body["errors"]


def test_unknown_product_or_customer_is_404(api):
    customer = api.new_customer()
    body = assert_problem(put_item(api, customer, 987654321, 1), 404, "not_found")
    assert body["resource"] == "product"
    body = assert_problem(
        api.client.delete(f"/cart/items/987654321?customer_id={customer}", headers=api.admin), 404, "not_found"
    )
    assert body["resource"] == "product"
    product = api.new_product()
    body = assert_problem(put_item(api, 987654321, product["id"], 1), 404, "not_found")
    assert body["resource"] == "customer"


def test_a_cart_holds_at_most_100_products(api, db):
    customer = api.new_customer()
    products = [api.new_product(stock=1) for _ in range(101)]
    for product in products[:100]:
        assert put_item(api, customer, product["id"], 1).status_code == 200
    before = snapshot(db, ("cart_items",))
    body = assert_problem(put_item(api, customer, products[100]["id"], 1), 400, "validation_error")
    assert "product_id" in body["errors"]
    assert snapshot(db, ("cart_items",)) == before
    assert put_item(api, customer, products[0]["id"], 2).status_code == 200  # changing a line is fine


def test_checkout_orders_the_cart_and_empties_it(api, db):
    customer = api.new_customer()
    widget, gadget = api.new_product(stock=10, price_cents=300), api.new_product(stock=10, price_cents=700)
    put_item(api, customer, widget["id"], 2)
    put_item(api, customer, gadget["id"], 1)

    response = api.client.post("/orders", json={"from_cart": True}, headers=api.customer_headers(customer))
    assert response.status_code == 201
    order = response.get_json()
    assert order["customer_id"] == customer and order["total_cents"] == 2 * 300 + 700
    assert [(i["product_id"], i["qty"]) for i in order["items"]] == [(widget["id"], 2), (gadget["id"], 1)]
    assert stock_of(db, widget["id"]) == 8 and stock_of(db, gadget["id"]) == 9
    assert api.client.get(f"/cart?customer_id={customer}", headers=api.admin).get_json()["items"] == []

    again = api.client.post("/orders", json={"customer_id": customer, "from_cart": True}, headers=api.admin)
    assert_problem(again, 409, "cart_empty")
    never_had_a_cart = api.new_customer()
    response = api.client.post("/orders", json={"customer_id": never_had_a_cart, "from_cart": True}, headers=api.admin)
    assert_problem(response, 409, "cart_empty")


def test_checkout_short_of_stock_changes_nothing(api, db):
    customer = api.new_customer()
    plenty, scarce = api.new_product(stock=10), api.new_product(stock=1)
    put_item(api, customer, plenty["id"], 2)
    put_item(api, customer, scarce["id"], 3)
    before = snapshot(db)
    response = api.client.post("/orders", json={"customer_id": customer, "from_cart": True}, headers=api.admin)
    body = assert_problem(response, 409, "insufficient_stock")
    assert (body["product_id"], body["requested"], body["available"]) == (scarce["id"], 3, 1)
    assert snapshot(db) == before
