import jwt
import pytest
from sqlalchemy import text

from conftest import assert_problem, bearer


@pytest.fixture
def customer_user(client, admin_headers, make_customer):
    customer = make_customer()
    response = client.post(
        "/users",
        json={
            "username": "buyer.one",
            "password": "correct horse battery",
            "role": "customer",
            "customer_id": customer["id"],
        },
        headers=admin_headers,
    )
    assert response.status_code == 201, response.get_json()
    return customer, response.get_json()


def test_create_user_response_never_carries_password(customer_user):
    customer, user = customer_user
    assert set(user) == {"id", "username", "role", "customer_id", "created_at", "updated_at"}
    assert user["customer_id"] == customer["id"] and user["role"] == "customer"


def test_password_is_stored_as_salted_argon2_hash(client, admin_headers, customer_user, db_engine):
    client.post(
        "/users", json={"username": "twin", "password": "correct horse battery", "role": "admin"}, headers=admin_headers
    )
    with db_engine.connect() as conn:
        hashes = conn.execute(text("SELECT password_hash FROM users ORDER BY id")).scalars().all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert len(set(hashes)) == 2  # same password, different salt
    assert not any("correct horse" in h for h in hashes)


def test_login_returns_verifiable_user_token(client, settings, customer_user):
    customer, user = customer_user
    response = client.post("/auth/login", json={"username": "buyer.one", "password": "correct horse battery"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == settings.user_token_ttl_seconds
    assert body["user"] == {
        "id": user["id"],
        "username": "buyer.one",
        "role": "customer",
        "customer_id": customer["id"],
    }
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "HS256" and header["kid"] == settings.user_jwt_keys.signing_kid
    claims = jwt.decode(
        body["access_token"],
        settings.user_jwt_keys.keys[header["kid"]],
        algorithms=["HS256"],
        audience="b2b-api",
        issuer="customers-service",
    )
    assert claims["sub"] == str(user["id"]) and claims["role"] == "customer"
    assert claims["customer_id"] == customer["id"] and claims["exp"] - claims["iat"] == settings.user_token_ttl_seconds
    own = client.get(f"/customers/{customer['id']}", headers=bearer(body["access_token"]))
    assert own.status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [{"username": "buyer.one", "password": "wrong password"}, {"username": "nobody", "password": "whatever1"}],
)
def test_bad_credentials_are_401(client, customer_user, credentials):
    assert_problem(client.post("/auth/login", json=credentials), 401, "invalid_credentials")


def test_users_of_deleted_customer_cannot_log_in(client, admin_headers, customer_user):
    customer, _ = customer_user
    client.delete(f"/customers/{customer['id']}", headers=admin_headers)
    response = client.post("/auth/login", json={"username": "buyer.one", "password": "correct horse battery"})
    assert_problem(response, 401, "invalid_credentials")


def test_user_rules(client, admin_headers, make_customer, customer_user):
    customer = make_customer()
    cases = [
        ({"username": "c1", "password": "longenough", "role": "customer"}, 400, "validation_error"),
        ({"username": "adm", "password": "longenough", "role": "admin", "customer_id": customer["id"]}, 400, None),
        # A customer that does not exist: the unknown customer's 404, as POST /orders answers it.
        ({"username": "ghost", "password": "longenough", "role": "customer", "customer_id": 999999}, 404, "not_found"),
        ({"username": "buyer.one", "password": "longenough", "role": "admin"}, 409, "duplicate_username"),
        ({"username": "x", "password": "short", "role": "root"}, 400, "validation_error"),
    ]
    for body, status, code in cases:
        assert_problem(client.post("/users", json=body, headers=admin_headers), status, code)


PROTECTED = [
    ("post", "/customers", {"name": "n", "email": "e@x.test"}),
    ("get", "/customers", None),
    ("get", "/customers/1", None),
    ("put", "/customers/1", {"name": "n", "email": "e@x.test"}),
    ("patch", "/customers/1", {"name": "n"}),
    ("delete", "/customers/1", None),
    ("post", "/users", {"username": "abc", "password": "longenough", "role": "admin"}),
    ("get", "/internal/customers/1", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
def test_every_protected_route_rejects_bad_tokens(client, tokens, method, path, body):
    for kind, token in tokens.bad_tokens().items():
        response = getattr(client, method)(path, json=body, headers=bearer(token))
        problem = assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), kind
        assert problem["code"] in {"unauthorized", "invalid_token"}


@pytest.mark.parametrize(("method", "path", "body"), [r for r in PROTECTED if r[1] != "/customers/1" or r[0] != "get"])
def test_customer_users_cannot_use_admin_or_internal_routes(client, tokens, make_customer, method, path, body):
    customer = make_customer()
    response = getattr(client, method)(path, json=body, headers=bearer(tokens.customer(customer["id"])))
    assert_problem(response, 403, "forbidden")


def test_user_token_on_internal_route_is_403_even_for_admin(client, tokens):
    assert_problem(client.get("/internal/customers/1", headers=bearer(tokens.admin())), 403, "forbidden")


def test_service_token_rules(client, tokens, make_customer):
    customer = make_customer()
    path = f"/internal/customers/{customer['id']}"
    # An untrusted caller, or a token minted for another audience, is refused.
    assert_problem(client.get(path, headers=bearer(tokens.service("payments", "customers-service"))), 401)
    assert_problem(client.get(path, headers=bearer(tokens.service("orders-service", "orders-service"))), 401)
