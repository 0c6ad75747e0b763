"""Bad input on every write endpoint: a 400 problem listing the fields, and nothing changed."""

import pytest
from sqlalchemy import text

from conftest import assert_problem

LONG = "x" * 201


def snapshot(db_engine):
    with db_engine.connect() as conn:
        return (
            conn.execute(text("SELECT id, name, email, phone, tombstone, updated_at FROM customers ORDER BY id")).all(),
            conn.execute(text("SELECT id, username, password_hash, role, customer_id FROM users ORDER BY id")).all(),
        )


CUSTOMER_BODIES = [
    ({}, {"name", "email"}),
    ({"name": "", "email": "not-an-email"}, {"name", "email"}),
    ({"name": "   ", "email": "a@b.test"}, {"name"}),
    ({"name": LONG, "email": "a" * 250 + "@b.test"}, {"name", "email"}),
    ({"name": 5, "email": ["a@b.test"], "phone": 12345}, {"name", "email", "phone"}),
    ({"name": "ok", "email": "a@b.test", "phone": "call me"}, {"phone"}),
    ({"name": "ok", "email": "a@b.test", "phone": "+1" + "2" * 40}, {"phone"}),
    ({"name": "ok", "email": "a@b.test", "unexpected": True}, {"unexpected"}),
]


@pytest.mark.parametrize(("body", "fields"), CUSTOMER_BODIES)
def test_customer_writes_reject_bad_fields_and_change_nothing(
    client, admin_headers, make_customer, db_engine, body, fields
):
    customer = make_customer()
    before = snapshot(db_engine)
    for method, path in [
        ("post", "/customers"),
        ("put", f"/customers/{customer['id']}"),
        ("patch", f"/customers/{customer['id']}"),
    ]:
        sent = body if method != "patch" or body else {"name": ""}
        problem = assert_problem(
            getattr(client, method)(path, json=sent, headers=admin_headers), 400, "validation_error"
        )
        if method != "patch":
            assert set(problem["errors"]) == fields, (method, problem["errors"])
    assert snapshot(db_engine) == before


@pytest.mark.parametrize("raw", [b"{", b'{"name": "x",}', b"\x00\xff", b"null", b"[]", b'"text"'])
@pytest.mark.parametrize("path", ["/customers", "/users", "/auth/login"])
def test_malformed_or_non_object_json_is_400(client, admin_headers, db_engine, raw, path):
    before = snapshot(db_engine)
    response = client.post(path, data=raw, content_type="application/json", headers=admin_headers)
    problem = assert_problem(response, 400)
    assert problem["code"] in {"malformed_json", "validation_error"}
    assert problem["errors"]
    assert snapshot(db_engine) == before


def test_login_bad_fields(client):
    problem = assert_problem(client.post("/auth/login", json={"username": 1}), 400, "validation_error")
    assert set(problem["errors"]) == {"username", "password"}
    assert_problem(client.post("/auth/login", json={"username": "u" * 65, "password": "p" * 129}), 400)


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "limit=-1", "cursor=garbage", "cursor=", "search=" + "s" * 201]
)
def test_list_rejects_garbage_paging(client, admin_headers, query):
    problem = assert_problem(client.get(f"/customers?{query}", headers=admin_headers), 400)
    assert problem["errors"]


@pytest.mark.parametrize("path", ["/customers/abc", "/customers/-1", "/customers/99999999999999999999999"])
def test_non_numeric_or_huge_ids_are_404_problems(client, admin_headers, path):
    assert_problem(client.get(path, headers=admin_headers), 404, "not_found")


def test_unknown_route_and_wrong_method(client, admin_headers):
    assert_problem(client.get("/nope", headers=admin_headers), 404, "not_found")
    response = client.post("/customers/1", json={}, headers=admin_headers)
    assert_problem(response, 405, "method_not_allowed")
    assert {"GET", "PUT", "PATCH", "DELETE"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_unknown_customer_ids_on_writes_are_404(client, admin_headers, db_engine):
    before = snapshot(db_engine)
    assert_problem(client.put("/customers/424242", json={"name": "n", "email": "e@x.test"}, headers=admin_headers), 404)
    assert_problem(client.patch("/customers/424242", json={"name": "n"}, headers=admin_headers), 404)
    assert_problem(client.delete("/customers/424242", headers=admin_headers), 404)
    assert snapshot(db_engine) == before
