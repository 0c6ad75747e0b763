import json
import logging

import marshmallow as ma
import pytest
from flask.views import MethodView

from servicekit.auth import KeyRing, TokenVerifier
from servicekit.logging import JsonFormatter, redact_text
from servicekit.testing import ServiceKeySet, TokenFactory, random_key_ring_value
from servicekit.web import Blueprint, create_service_app, current_principal, requires, scoped_customer_id

LEAKY_SECRETS = (
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "db-password-123",
)


class ItemSchema(ma.Schema):
    product_id = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1))
    qty = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=10000))


class OrderInSchema(ma.Schema):
    customer_id = ma.fields.Integer(required=True, strict=True)
    items = ma.fields.List(ma.fields.Nested(ItemSchema), required=True, validate=ma.validate.Length(min=1, max=100))


@pytest.fixture(scope="module")
def tokens():
    return TokenFactory(user_ring=KeyRing.parse(random_key_ring_value("u1")), service_keys=ServiceKeySet.generate())


@pytest.fixture
def app(tokens):
    ready = {"ok": True}

    def readiness():
        if not ready["ok"]:
            raise ConnectionError("db down")

    verifier = TokenVerifier(
        service_name="orders-service",
        user_ring=tokens.user_ring,
        service_keys=tokens.service_keys.public_keys(),
        callers={"payments", "customers-service"},
    )
    app, api = create_service_app(
        "test-service", title="Test", version="1", description="d", verifier=verifier, readiness_check=readiness
    )
    blp = Blueprint("things", __name__)

    @blp.route("/things")
    class Things(MethodView):
        @requires("admin", "customer", "service", callers=("payments",))
        @blp.arguments(OrderInSchema)
        def post(self, body):
            customer_id = scoped_customer_id(current_principal(), body["customer_id"])
            return {"customer_id": customer_id, "count": len(body["items"])}, 201

    @blp.route("/internal/things")
    class InternalThings(MethodView):
        @requires("service", callers=("payments",))
        def get(self):
            return {"caller": current_principal().subject}

    @blp.route("/internal/reports")
    class Reports(MethodView):
        @requires("service", callers=("customers-service",))
        def post(self):
            return {"caller": current_principal().subject}

    @blp.route("/boom")
    class Boom(MethodView):
        def get(self):
            raise RuntimeError("secret internals")

    @blp.route("/leaky")
    class Leaky(MethodView):
        def get(self):
            raise RuntimeError(f"UPDATE users SET password_hash='{LEAKY_SECRETS[0]}' -- Bearer {LEAKY_SECRETS[1]}")

    api.register_blueprint(blp)
    app.ready_flag = ready
    return app


@pytest.fixture
def client(app):
    return app.test_client()


def auth(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == status and body["code"] == code
    assert set(body) >= {"type", "title", "status", "detail", "code", "request_id"}
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


def test_happy_path_and_request_id_echo(client, tokens):
    response = client.post(
        "/things",
        json={"customer_id": 5, "items": [{"product_id": 1, "qty": 2}]},
        headers={**auth(tokens.admin()), "X-Request-Id": "req-1.a_b"},
    )
    assert response.status_code == 201
    assert response.get_json() == {"customer_id": 5, "count": 1}
    assert response.headers["X-Request-Id"] == "req-1.a_b"


def test_insane_request_id_is_replaced(client):
    response = client.get("/health", headers={"X-Request-Id": "bad id with spaces"})
    assert response.headers["X-Request-Id"] != "bad id with spaces"
    assert len(response.headers["X-Request-Id"]) == 32


def test_all_field_errors_listed_at_once(client, tokens):
    response = client.post(
        "/things",
        json={"items": [{"product_id": "x", "qty": 0}, {"qty": True}], "extra": 1},
        headers=auth(tokens.admin()),
    )
    body = assert_problem(response, 400, "validation_error")
    assert set(body["errors"]) == {
        "customer_id",
        "items.0.product_id",
        "items.0.qty",
        "items.1.product_id",
        "items.1.qty",
        "extra",
    }


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2", b"\xff\xfe"])
def test_malformed_json_is_400_problem(client, tokens, raw):
    response = client.post("/things", data=raw, content_type="application/json", headers=auth(tokens.admin()))
    assert_problem(response, 400, "malformed_json")


def test_json_body_without_json_content_type_is_parsed(client, tokens):
    response = client.post(
        "/things",
        data=json.dumps({"customer_id": 1, "items": [{"product_id": 1, "qty": 1}]}),
        content_type="application/x-www-form-urlencoded",
        headers=auth(tokens.admin()),
    )
    assert response.status_code == 201


@pytest.mark.parametrize("body", [[1, 2], "text", 5, None])
def test_non_object_body_is_400(client, tokens, body):
    response = client.post("/things", json=body, headers=auth(tokens.admin()))
    assert_problem(response, 400, "validation_error")


def test_unknown_route_and_wrong_method(client):
    assert_problem(client.get("/nope"), 404, "not_found")
    response = client.delete("/things")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_exception_is_500_problem_without_internals(client):
    response = client.get("/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "secret internals" not in response.get_data(as_text=True)
    assert "Traceback" not in body["detail"]


def test_body_too_large_is_413(client, tokens):
    response = client.post("/things", data=b"x" * (1024 * 1024 + 1), headers=auth(tokens.admin()))
    assert_problem(response, 413, "payload_too_large")


@pytest.mark.parametrize("kind", ["missing", "expired", "wrong_audience", "wrong_key", "alg_none", "garbage"])
def test_bad_tokens_are_401_with_challenge(client, tokens, kind):
    token = tokens.bad_tokens()[kind]
    response = client.post("/things", json={}, headers=auth(token))
    assert_problem(response, 401, "unauthorized" if kind == "missing" else "invalid_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_user_token_on_internal_route_is_403(client, tokens):
    assert_problem(client.get("/internal/things", headers=auth(tokens.admin())), 403, "forbidden")
    ok = client.get("/internal/things", headers=auth(tokens.service("payments", "orders-service")))
    assert ok.status_code == 200 and ok.get_json() == {"caller": "payments"}


def test_route_callers_reach_only_the_routes_that_name_them(client, tokens):
    reporter = auth(tokens.service("customers-service", "orders-service"))
    assert client.post("/internal/reports", headers=reporter).get_json() == {"caller": "customers-service"}
    # A valid token without the right: 403 on routes that take the service's trusted callers.
    assert_problem(client.get("/internal/things", headers=reporter), 403, "forbidden")
    body = {"customer_id": 2, "items": [{"product_id": 1, "qty": 1}]}
    assert_problem(client.post("/things", json=body, headers=reporter), 403, "forbidden")
    # A route naming its callers takes only those: trusted callers and users are refused.
    assert_problem(
        client.post("/internal/reports", headers=auth(tokens.service("payments", "orders-service"))), 403, "forbidden"
    )
    assert_problem(client.post("/internal/reports", headers=auth(tokens.admin())), 403, "forbidden")
    # A caller this service does not accept at all, or a forgery: 401.
    assert_problem(
        client.post("/internal/reports", headers=auth(tokens.service("sweeper", "orders-service"))),
        401,
        "invalid_token",
    )
    forged = tokens.forged_service("customers-service", "orders-service", signed_by="payments")
    assert_problem(client.post("/internal/reports", headers=auth(forged)), 401, "invalid_token")


def test_callers_only_make_sense_on_routes_taking_service_tokens():
    with pytest.raises(ValueError):
        requires("admin", callers=("customers-service",))
    with pytest.raises(ValueError, match="must name its callers"):
        requires("admin", "service")


def test_customer_cannot_act_for_another_customer(client, tokens):
    body = {"customer_id": 2, "items": [{"product_id": 1, "qty": 1}]}
    assert_problem(client.post("/things", json=body, headers=auth(tokens.customer(1))), 403, "forbidden")
    assert client.post("/things", json=body, headers=auth(tokens.customer(2))).status_code == 201


def test_health_ready_and_openapi(client, app):
    assert client.get("/health").get_json()["status"] == "ok"
    assert client.get("/ready").status_code == 200
    app.ready_flag["ok"] = False
    response = client.get("/ready")
    assert_problem(response, 503, "not_ready")
    assert response.headers["Retry-After"]
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/things" in spec["paths"] and "bearerAuth" in spec["components"]["securitySchemes"]
    assert client.get("/docs").status_code == 200


def test_access_log_line_is_json_with_request_fields(client, tokens, caplog):
    caplog.set_level(logging.INFO, logger="http")
    client.post(
        "/things",
        json={"customer_id": 1, "items": [{"product_id": 1, "qty": 1}]},
        headers={**auth(tokens.admin()), "X-Request-Id": "trace-me"},
    )
    records = [r for r in caplog.records if r.getMessage() == "http_request"]
    assert records
    line = json.loads(JsonFormatter("svc").format(records[-1]))
    assert line["request_id"] == "trace-me"
    assert line["method"] == "POST" and line["path"] == "/things" and line["status"] == 201
    assert isinstance(line["duration_ms"], float)


def test_log_redacts_secrets():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login", None, None)
    record.fields = {"username": "bob", "password": "hunter2", "nested": {"access_token": "t"}}
    line = json.loads(JsonFormatter("svc").format(record))
    assert line["username"] == "bob"
    assert line["password"] == "[redacted]" and line["nested"]["access_token"] == "[redacted]"


def test_exception_text_and_tracebacks_are_redacted(client, caplog):
    """Whatever an exception says (a database error quotes its statement and values), the line
    written carries no hash, token or password."""
    caplog.set_level(logging.ERROR, logger="errors")
    response = client.get("/leaky")
    assert_problem(response, 500, "internal_error")
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled_exception"]
    line = JsonFormatter("svc").format(record)
    assert "RuntimeError" in line and "[redacted]" in line
    for secret in LEAKY_SECRETS:
        assert secret not in line and secret not in (response.get_data(as_text=True))


def test_redactor_catches_what_a_failed_statement_prints():
    text = (
        "(pymysql.err.OperationalError) (1644, 'forced')\n[SQL: UPDATE users SET password_hash=%(password_hash)s]\n"
        f"[parameters: {{'password_hash': '{LEAKY_SECRETS[0]}', 'users_id': 1}}]\n"
        f"Authorization: Bearer {LEAKY_SECRETS[1]}; url mysql+pymysql://app:{LEAKY_SECRETS[2]}@db/x password=hunter2"
    )
    redacted = redact_text(text)
    for secret in (*LEAKY_SECRETS, "hunter2"):
        assert secret not in redacted
    assert "UPDATE users SET password_hash=%(password_hash)s" in redacted  # the statement stays readable
    assert redact_text("http_request") == "http_request"


@pytest.mark.parametrize(
    "text",
    [
        "PASSWORD=hunter2",
        "Api_Key: hunter2",
        "AUTHORIZATION: BEARER hunter2hunter2",
        "paſsword=hunter2",  # a long s: case-insensitive matching takes it for an s
        "authorİzation: hunter2",  # a dotted capital I, whose simple lower case is i
        "postgres://app:hunter2@db/x",
    ],
)
def test_the_quick_check_lets_every_case_of_a_secret_through_to_the_patterns(text):
    """`redact_text` skips text with no hint of a secret (ASCII text compared in lower case):
    whatever the case-insensitive patterns would catch, the check passes on to them."""
    assert "hunter2" not in redact_text(text)
