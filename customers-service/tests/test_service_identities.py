"""Who may call what with a service token (docs/auth.md): each route names its callers, and a
token is only ever its issuer's own (a forgery with another caller's key is a 401)."""

from __future__ import annotations

import pytest

from conftest import assert_problem, bearer

AUDIENCE = "customers-service"
INTERNAL_ROUTES = [
    ("get", "/internal/customers/{id}", None),
    ("post", "/internal/login", {"username": "nobody", "password": "whatever1", "client_address": "10.0.0.1"}),
]
CUSTOMER_WRITES = [
    ("post", "/customers", {"name": "Svc Co", "email": "svc@acme.test"}),
    ("put", "/customers/{id}", {"name": "Svc Co", "email": "svc2@acme.test"}),
    ("patch", "/customers/{id}", {"name": "Renamed"}),
    ("delete", "/customers/{id}", None),
]
USER_CREATION = ("post", "/users", {"username": "svc.admin", "password": "longenough", "role": "admin"})


def call(client, route, token, customer_id):
    method, path, body = route
    return getattr(client, method)(path.format(id=customer_id), json=body, headers=bearer(token))


@pytest.mark.parametrize("route", INTERNAL_ROUTES + CUSTOMER_WRITES + [USER_CREATION], ids=lambda r: f"{r[0]} {r[1]}")
@pytest.mark.parametrize(
    ("claimed", "signed_by", "kid_of"),
    [
        ("orchestrator", "orders-service", "orders-service"),  # a real caller, the other's key
        ("orchestrator", "orders-service", "orchestrator"),  # ... naming the claimed caller's kid
        ("orchestrator", "payments", "payments"),  # a caller not accepted here at all
        ("orders-service", "customers-service", "customers-service"),  # this service's own key
    ],
)
def test_a_forged_service_token_is_refused_everywhere(client, tokens, make_customer, route, claimed, signed_by, kid_of):
    customer = make_customer()
    forged = tokens.forged_service(claimed, AUDIENCE, signed_by=signed_by, kid_of=kid_of)
    problem = assert_problem(call(client, route, forged, customer["id"]), 401, "invalid_token")
    assert "signed" in problem["detail"] or "issuer" in problem["detail"] or "invalid" in problem["detail"]


@pytest.mark.parametrize("route", CUSTOMER_WRITES + [USER_CREATION], ids=lambda r: f"{r[0]} {r[1]}")
def test_orders_service_may_not_write_customers_or_create_logins(client, tokens, make_customer, route):
    customer = make_customer()
    token = tokens.service("orders-service", AUDIENCE)
    assert_problem(call(client, route, token, customer["id"]), 403, "forbidden")


def test_no_service_creates_a_login_but_the_bff_relays_customer_writes(client, tokens, make_customer):
    customer = make_customer()
    bff = tokens.service("orchestrator", AUDIENCE)
    assert_problem(call(client, USER_CREATION, bff, customer["id"]), 403, "forbidden")
    for route, status in zip(CUSTOMER_WRITES, (201, 200, 200, 204), strict=True):
        assert call(client, route, bff, customer["id"]).status_code == status, route


def test_orders_service_may_only_look_customers_up(client, tokens, make_customer):
    customer = make_customer()
    token = tokens.service("orders-service", AUDIENCE)
    assert call(client, INTERNAL_ROUTES[0], token, customer["id"]).status_code == 200
    assert_problem(call(client, INTERNAL_ROUTES[1], token, customer["id"]), 403, "forbidden")
    for path in ("/customers", f"/customers/{customer['id']}"):
        assert_problem(client.get(path, headers=bearer(token)), 403, "forbidden")


def test_a_deleted_customers_token_is_refused(client, admin_headers, tokens, make_customer):
    customer = make_customer()
    own = bearer(tokens.customer(customer["id"]))
    assert client.get(f"/customers/{customer['id']}", headers=own).status_code == 200
    assert client.delete(f"/customers/{customer['id']}", headers=admin_headers).status_code == 204
    problem = assert_problem(client.get(f"/customers/{customer['id']}", headers=own), 401, "invalid_token")
    assert "deleted" in problem["detail"]
