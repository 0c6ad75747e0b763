"""Auth on every route: bad tokens are 401, user tokens on /internal are 403, customers are scoped."""

from __future__ import annotations

import pytest
from orders_testkit import assert_problem, auth, unique_sku

# Every route that needs a token, with a sample path. test_the_route_list_is_complete keeps it honest.
PROTECTED = [
    ("GET", "/products"),
    ("POST", "/products"),
    ("GET", "/products/1"),
    ("PATCH", "/products/1"),
    ("POST", "/products/1/restock"),
    ("GET", "/cart"),
    ("PUT", "/cart/items/1"),
    ("DELETE", "/cart/items/1"),
    ("GET", "/orders"),
    ("POST", "/orders"),
    ("GET", "/orders/1"),
    ("POST", "/orders/1/confirm"),
    ("POST", "/orders/1/cancel"),
    ("POST", "/internal/placements"),
    ("POST", "/internal/orders/1/payment-claim"),
    ("POST", "/internal/orders/1/payment-outcome"),
    ("GET", "/internal/payments/overdue"),
    ("GET", "/internal/stored-responses/k1"),
    ("PUT", "/internal/stored-responses/k1"),
    ("POST", "/internal/reservations/expire"),
    ("POST", "/internal/idempotency-keys/purge"),
    ("POST", "/internal/customers/1/deleted"),
]
INTERNAL = [route for route in PROTECTED if route[1].startswith("/internal/")]
# The one route customers-service may call (test_customer_deletes.py covers it).
DELETION_REPORT = ("POST", "/internal/customers/1/deleted")
PUBLIC = {"/health", "/ready", "/openapi.json", "/docs", "/docs/<path:filename>", "/static/<path:filename>"}


def test_the_route_list_is_complete(app):
    listed = {(method, path) for method, path in PROTECTED}
    for rule in app.url_map.iter_rules():
        if rule.rule in PUBLIC or rule.rule.startswith("/docs"):
            continue
        sample = rule.rule
        for argument in rule.arguments:
            sample = sample.replace(f"<int(max=9223372036854775807):{argument}>", "1")
            sample = sample.replace(f"<string(minlength=1,maxlength=255):{argument}>", "k1")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method, sample) in listed, f"{method} {rule.rule} is not covered by the auth tests"


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_bad_tokens_are_401_everywhere(client, tokens, method, path):
    for kind, token in tokens.bad_tokens().items():
        response = client.open(path, method=method, json={}, headers=auth(token))
        body = assert_problem(response, 401, "unauthorized" if token is None else "invalid_token")
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), kind
        assert body["detail"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_service_tokens_for_another_audience_or_from_strangers_are_401(client, tokens, method, path):
    for token in (
        tokens.service("orchestrator", "customers-service"),  # meant for another service
        tokens.service("customers-service", "customers-service"),  # ditto
        tokens.service("billing", "orders-service"),  # a caller we do not trust
    ):
        assert_problem(client.open(path, method=method, json={}, headers=auth(token)), 401, "invalid_token")


@pytest.mark.parametrize(("method", "path"), [route for route in PROTECTED if route != DELETION_REPORT])
def test_customers_service_tokens_reach_no_other_route(client, tokens, method, path):
    """customers-service is trusted to report deletions, and for nothing else here."""
    token = tokens.service("customers-service", "orders-service")
    headers = {**auth(token), "Idempotency-Key": "k"}
    assert_problem(client.open(path, method=method, json={}, headers=headers), 403, "forbidden")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    ("claimed", "signed_by", "kid_of"),
    [
        ("payments", "orchestrator", "orchestrator"),  # a trusted caller's key, another's name
        ("payments", "orchestrator", "payments"),  # ... naming the claimed caller's kid
        ("sweeper", "customers-service", "customers-service"),
        ("orchestrator", "orders-service", "orders-service"),  # this service's own key
    ],
)
def test_a_forged_service_token_is_401_everywhere(client, tokens, method, path, claimed, signed_by, kid_of):
    """No service can mint another's token: right claims, another caller's private key."""
    forged = tokens.forged_service(claimed, "orders-service", signed_by=signed_by, kid_of=kid_of)
    headers = {**auth(forged), "Idempotency-Key": "k"}
    assert_problem(client.open(path, method=method, json={}, headers=headers), 401, "invalid_token")


PUBLIC_ROUTES = [route for route in PROTECTED if not route[1].startswith("/internal/")]


@pytest.mark.parametrize(("method", "path"), PUBLIC_ROUTES)
def test_only_the_bff_relays_users_on_the_public_routes(client, tokens, method, path):
    """The payments Lambda and the sweeper need no public route: their tokens are refused there."""
    for caller in ("payments", "sweeper"):
        headers = {**auth(tokens.service(caller, "orders-service")), "Idempotency-Key": "k"}
        assert_problem(client.open(path, method=method, json={}, headers=headers), 403, "forbidden")


@pytest.mark.parametrize(("method", "path"), INTERNAL)
def test_user_tokens_on_internal_routes_are_403(api, client, tokens, method, path):
    for token in (tokens.admin(), tokens.customer(api.new_customer())):
        assert_problem(client.open(path, method=method, json={}, headers=auth(token)), 403, "forbidden")


# Least privilege: each service-only route takes the one caller that needs it (ids that do not
# exist, so the allowed caller's 404 shows it got past auth without changing anything).
SERVICE_ROUTE_CALLERS = [
    (
        "POST",
        "/internal/placements",
        {"customer_id": 987654321, "items": [{"product_id": 987654321, "qty": 1}]},
        "orchestrator",
    ),
    ("POST", "/internal/orders/987654321/payment-claim", None, "payments"),
    (
        "POST",
        "/internal/orders/987654321/payment-outcome",
        {"outcome": "succeeded", "payment_attempt_id": "pay_1"},
        "payments",
    ),
    ("GET", "/internal/stored-responses/never-stored", None, "orchestrator"),
    ("PUT", "/internal/stored-responses/authz-probe", {"fingerprint": "f"}, "orchestrator"),
    ("GET", "/internal/payments/overdue", None, "sweeper"),
    ("POST", "/internal/reservations/expire", {}, "sweeper"),
    ("POST", "/internal/idempotency-keys/purge", {}, "sweeper"),
    ("POST", "/internal/customers/987654321/deleted", None, "customers-service"),
    ("POST", "/products", {"sku": "LP-1", "name": "n", "price_cents": 1, "stock": 1}, "orchestrator"),
    ("PATCH", "/products/987654321", {"name": "n"}, "orchestrator"),
    ("POST", "/products/987654321/restock", {"qty": 1}, "orchestrator"),
]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), SERVICE_ROUTE_CALLERS)
def test_each_service_route_takes_only_the_caller_that_needs_it(client, tokens, method, path, body, allowed):
    for caller in ("orchestrator", "payments", "sweeper", "customers-service"):
        response = client.open(path, method=method, json=body, headers=auth(tokens.service(caller, "orders-service")))
        if caller == allowed:
            assert response.status_code != 403, (caller, response.get_json())
        else:
            assert_problem(response, 403, "forbidden")


def test_a_customer_user_cannot_see_or_touch_another_customers_things(api, db):
    owner, intruder = api.new_customer(), api.new_customer()
    product = api.new_product(stock=10)
    order = api.new_order(owner, [(product["id"], 1)])
    api.client.put(f"/cart/items/{product['id']}?customer_id={owner}", json={"qty": 1}, headers=api.admin)
    headers = api.customer_headers(intruder)

    for method, path in (
        ("GET", f"/orders/{order['id']}"),
        ("POST", f"/orders/{order['id']}/confirm"),
        ("POST", f"/orders/{order['id']}/cancel"),
        ("GET", f"/cart?customer_id={owner}"),
        ("PUT", f"/cart/items/{product['id']}?customer_id={owner}"),
        ("DELETE", f"/cart/items/{product['id']}?customer_id={owner}"),
    ):
        response = api.client.open(path, method=method, json={"qty": 5}, headers={**headers, "Idempotency-Key": "k"})
        assert_problem(response, 404, "not_found")
    assert_problem(api.create_order(owner, [(product["id"], 1)], headers=headers), 403, "forbidden")
    assert_problem(
        api.client.post("/orders", json={"customer_id": owner, "from_cart": True}, headers=headers), 403, "forbidden"
    )
    assert api.get_order(order["id"])["status"] == "CREATED"
    cart = api.client.get(f"/cart?customer_id={owner}", headers=api.admin).get_json()
    assert [(i["product_id"], i["qty"]) for i in cart["items"]] == [(product["id"], 1)]


def test_product_writes_take_admins_and_the_bff_service_token_but_not_customers(api, client, tokens):
    """The BFF relays its admins' product writes with its own service token (conventions:
    "the BFF calls the services with its service token and enforces the user's scope itself")."""
    bff = auth(tokens.service("orchestrator", "orders-service"))
    created = client.post(
        "/products", json={"sku": unique_sku("SVC"), "name": "via BFF", "price_cents": 5, "stock": 1}, headers=bff
    )
    assert created.status_code == 201, created.get_json()
    product_id = created.get_json()["id"]
    assert client.patch(f"/products/{product_id}", json={"price_cents": 7}, headers=bff).get_json()["price_cents"] == 7
    assert client.post(f"/products/{product_id}/restock", json={"qty": 2}, headers=bff).get_json()["stock"] == 3
    customer = api.customer_headers(api.new_customer())
    for method, path, body in (
        ("POST", "/products", {"sku": unique_sku("SVC"), "name": "no", "price_cents": 5, "stock": 1}),
        ("PATCH", f"/products/{product_id}", {"price_cents": 1}),
        ("POST", f"/products/{product_id}/restock", {"qty": 1}),
    ):
        assert_problem(client.open(path, method=method, json=body, headers=customer), 403, "forbidden")
