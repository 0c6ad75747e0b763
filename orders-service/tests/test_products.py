"""Products: create, read, list, patch, restock; duplicate SKUs; who may write."""

from __future__ import annotations

from orders_testkit import assert_problem, auth, stock_ledger, unique_sku

PRODUCT_KEYS = {"id", "sku", "name", "price_cents", "stock", "created_at", "updated_at"}


def test_create_then_get_returns_the_product(api):
    sku = unique_sku()
    response = api.client.post(
        "/products", json={"sku": sku, "name": "Widget", "price_cents": 1999, "stock": 7}, headers=api.admin
    )
    assert response.status_code == 201
    product = response.get_json()
    assert set(product) == PRODUCT_KEYS
    assert (product["sku"], product["name"], product["price_cents"], product["stock"]) == (sku, "Widget", 1999, 7)
    assert product["created_at"].endswith("Z")
    fetched = api.client.get(f"/products/{product['id']}", headers=api.customer_headers(api.new_customer()))
    assert fetched.status_code == 200 and fetched.get_json() == product


def test_duplicate_sku_is_409(api, db):
    sku = unique_sku()
    api.new_product(sku=sku)
    response = api.client.post(
        "/products", json={"sku": sku, "name": "Again", "price_cents": 1, "stock": 1}, headers=api.admin
    )
    body = assert_problem(response, 409, "duplicate_sku")
    assert body["sku"] == sku


def test_list_walks_every_product_once_with_cursors(api):
    created = {api.new_product()["id"] for _ in range(3)}
    seen: list[int] = []
    cursor = None
    while True:
        query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.client.get(f"/products?{query}", headers=api.orchestrator).get_json()
        assert page["pagination"]["limit"] == 2 and len(page["data"]) <= 2
        seen.extend(product["id"] for product in page["data"])
        cursor = page["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert created <= set(seen)


def test_patch_changes_name_and_price_but_not_existing_orders(api):
    product = api.new_product(price_cents=1000)
    customer = api.new_customer()
    old_order = api.new_order(customer, [(product["id"], 2)])

    response = api.client.patch(
        f"/products/{product['id']}", json={"name": "Renamed", "price_cents": 2500}, headers=api.admin
    )
    assert response.status_code == 200
    assert response.get_json()["name"] == "Renamed" and response.get_json()["price_cents"] == 2500

    assert api.get_order(old_order["id"])["items"][0]["unit_price_cents"] == 1000
    new_order = api.new_order(customer, [(product["id"], 2)])
    assert new_order["items"][0]["unit_price_cents"] == 2500 and new_order["total_cents"] == 5000


def test_restock_adds_stock_and_counts_it_as_received(api, db):
    product = api.new_product(stock=5)
    response = api.client.post(f"/products/{product['id']}/restock", json={"qty": 20}, headers=api.admin)
    assert response.status_code == 200 and response.get_json()["stock"] == 25
    assert stock_ledger(db, [product["id"]])[product["id"]] == {"stock": 25, "stock_received": 25, "held": 0}


def test_unknown_product_is_404_with_resource(api):
    for method, path, body in (
        ("get", "/products/987654321", None),
        ("patch", "/products/987654321", {"name": "x"}),
        ("post", "/products/987654321/restock", {"qty": 1}),
    ):
        response = getattr(api.client, method)(path, json=body, headers=api.admin)
        assert assert_problem(response, 404, "not_found")["resource"] == "product"


def test_only_admins_write_products(api, tokens):
    """Customer users may not; the BFF's service token may, for its admins (test_authz.py)."""
    product = api.new_product()
    customer_user = api.customer_headers(api.new_customer())
    for headers in (customer_user,):
        assert_problem(
            api.client.post(
                "/products", json={"sku": unique_sku(), "name": "n", "price_cents": 1, "stock": 1}, headers=headers
            ),
            403,
            "forbidden",
        )
        assert_problem(
            api.client.patch(f"/products/{product['id']}", json={"name": "x"}, headers=headers), 403, "forbidden"
        )
        assert_problem(
            api.client.post(f"/products/{product['id']}/restock", json={"qty": 1}, headers=headers), 403, "forbidden"
        )
    for headers in (customer_user, api.orchestrator, auth(tokens.admin())):
        assert api.client.get("/products", headers=headers).status_code == 200
