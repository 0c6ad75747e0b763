import re

from conftest import assert_problem, bearer

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_create_returns_customer_shape(client, admin_headers):
    response = client.post(
        "/customers",
        json={"name": " ACME Corp ", "email": "Buyer@ACME.test", "phone": "+1 555 0100"},
        headers=admin_headers,
    )
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "name", "email", "phone", "created_at", "updated_at"}
    assert body["name"] == "ACME Corp" and body["email"] == "buyer@acme.test" and body["phone"] == "+1 555 0100"
    assert ISO_Z.match(body["created_at"]) and ISO_Z.match(body["updated_at"])


def test_duplicate_email_is_409_case_insensitive(client, admin_headers, make_customer):
    make_customer(email="dup@acme.test")
    response = client.post("/customers", json={"name": "Other", "email": "DUP@acme.test"}, headers=admin_headers)
    assert_problem(response, 409, "duplicate_email")


def test_get_by_admin_and_own_user_only(client, admin_headers, tokens, make_customer):
    mine, other = make_customer(), make_customer()
    assert client.get(f"/customers/{mine['id']}", headers=admin_headers).get_json() == mine
    own = client.get(f"/customers/{mine['id']}", headers=bearer(tokens.customer(mine["id"])))
    assert own.status_code == 200 and own.get_json()["id"] == mine["id"]
    assert_problem(client.get(f"/customers/{other['id']}", headers=bearer(tokens.customer(mine["id"]))), 404)
    assert_problem(client.get("/customers/999999", headers=admin_headers), 404, "not_found")


def test_search_matches_name_or_email_and_pages_with_cursor(client, admin_headers, make_customer):
    for index in range(5):
        make_customer(name=f"Widget Buyer {index}", email=f"w{index}@widgets.test")
    make_customer(name="Gadgets Ltd", email="contact@gadgets.test")
    make_customer(name="Percent % Co", email="pct@x.test")

    seen, cursor = [], None
    while True:
        url = "/customers?search=widget&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url, headers=admin_headers).get_json()
        assert body["pagination"]["limit"] == 2 and len(body["data"]) <= 2
        seen += [c["name"] for c in body["data"]]
        cursor = body["pagination"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"Widget Buyer {i}" for i in range(5)]
    by_email = client.get("/customers?search=gadgets.test", headers=admin_headers).get_json()["data"]
    assert [c["name"] for c in by_email] == ["Gadgets Ltd"]
    # LIKE wildcards in the search are literal characters.
    assert [c["name"] for c in client.get("/customers?search=%25", headers=admin_headers).get_json()["data"]] == [
        "Percent % Co"
    ]
    everyone = client.get("/customers?limit=100", headers=admin_headers).get_json()
    assert len(everyone["data"]) == 7 and everyone["pagination"]["next_cursor"] is None


def test_put_replaces_and_clears_phone(client, admin_headers, make_customer):
    customer = make_customer(phone="+44 20 7946 0000")
    response = client.put(
        f"/customers/{customer['id']}", json={"name": "New Name", "email": "new@acme.test"}, headers=admin_headers
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["email"], body["phone"]) == ("New Name", "new@acme.test", None)
    assert body["updated_at"] >= customer["updated_at"]
    assert_problem(
        client.put(f"/customers/{customer['id']}", json={"name": "Only name"}, headers=admin_headers),
        400,
        "validation_error",
    )


def test_patch_changes_only_given_fields(client, admin_headers, make_customer):
    customer = make_customer(phone="+1 555 0199")
    body = client.patch(f"/customers/{customer['id']}", json={"name": "Renamed"}, headers=admin_headers).get_json()
    assert (body["name"], body["email"], body["phone"]) == ("Renamed", customer["email"], "+1 555 0199")
    assert_problem(client.patch(f"/customers/{customer['id']}", json={}, headers=admin_headers), 400)


def test_patch_to_taken_email_is_409(client, admin_headers, make_customer):
    first, second = make_customer(), make_customer()
    response = client.patch(f"/customers/{second['id']}", json={"email": first["email"]}, headers=admin_headers)
    assert_problem(response, 409, "duplicate_email")
    # Setting a customer's own email again is not a conflict.
    same = client.patch(f"/customers/{first['id']}", json={"email": first["email"]}, headers=admin_headers)
    assert same.status_code == 200


def test_soft_delete_hides_customer_and_frees_email(client, admin_headers, tokens, make_customer):
    customer = make_customer(email="gone@acme.test")
    response = client.delete(f"/customers/{customer['id']}", headers=admin_headers)
    assert response.status_code == 204 and response.data == b""
    assert_problem(client.get(f"/customers/{customer['id']}", headers=admin_headers), 404)
    assert_problem(client.delete(f"/customers/{customer['id']}", headers=admin_headers), 404)
    assert_problem(client.patch(f"/customers/{customer['id']}", json={"name": "x"}, headers=admin_headers), 404)
    assert customer["id"] not in [c["id"] for c in client.get("/customers", headers=admin_headers).get_json()["data"]]
    internal = client.get(
        f"/internal/customers/{customer['id']}", headers=bearer(tokens.service("orders-service", "customers-service"))
    )
    assert_problem(internal, 404, "not_found")
    assert make_customer(email="gone@acme.test")["id"] != customer["id"]


def test_internal_lookup_for_trusted_services(client, tokens, make_customer):
    customer = make_customer()
    for caller in ("orders-service", "orchestrator"):
        response = client.get(
            f"/internal/customers/{customer['id']}", headers=bearer(tokens.service(caller, "customers-service"))
        )
        assert response.status_code == 200 and response.get_json() == customer
