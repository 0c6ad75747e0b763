"""BFF: routing, request ids, errors as problems, authentication and customer scoping."""

from __future__ import annotations

import re

import jwt
import pytest

from servicekit.auth import verify_service_token

from .stubs import problem

PAGE = {"data": [], "pagination": {"next_cursor": None, "limit": 20}}


# --- routing and request ids -------------------------------------------------------------------


def test_health_answers_with_a_minted_request_id(bff):
    answer = bff("GET", "/health")
    assert answer.status == 200
    assert answer.body == {"status": "ok", "service": "orchestrator"}
    assert re.fullmatch(r"[0-9a-f]{32}", answer.header("X-Request-Id"))


def test_client_request_id_is_echoed_and_forwarded_downstream(bff, tokens, orders):
    orders.on("GET", "/products", (200, PAGE))
    answer = bff("GET", "/products?limit=5&cursor=abc", token=tokens.admin(), headers={"X-Request-Id": "trace-1.a_b"})
    assert answer.status == 200 and answer.body == PAGE
    assert answer.header("X-Request-Id") == "trace-1.a_b"
    (sent,) = orders.calls("GET", "/products")
    assert sent.headers["x-request-id"] == "trace-1.a_b"
    assert sent.query == {"limit": "5", "cursor": "abc"}


def test_one_http_request_log_line_per_request(bff, tokens, orders, log_lines):
    orders.on("GET", "/orders/8", (200, {"id": 8, "customer_id": 2}))
    bff("GET", "/orders/8", token=tokens.admin(user_id=5), headers={"X-Request-Id": "log-me"})
    (line,) = [entry for entry in log_lines() if entry["message"] == "http_request"]
    assert line["request_id"] == line["correlation_id"] == "log-me"
    assert (line["method"], line["path"], line["status"], line["order_id"]) == ("GET", "/orders/8", 200, 8)
    assert line["caller"] == "user:5" and line["duration_ms"] >= 0


def test_secret_looking_fields_never_reach_the_logs(log_lines):
    from orchestrator.observability import logger

    logger.info("careful", extra={"password": "hunter2", "details": {"access_token": "abc"}, "order_id": 1})
    (line,) = log_lines()
    assert line["password"] == "[redacted]" and line["details"] == {"access_token": "[redacted]"}
    assert line["order_id"] == 1


def test_ready_reports_configuration_that_does_not_load(bff, bff_deps, monkeypatch):
    from orchestrator.bff import dependencies
    from orchestrator.config import load_settings

    assert bff("GET", "/ready").status == 200
    dependencies.use_dependencies(None)  # the next call builds from settings without key rings
    monkeypatch.setattr(dependencies, "get_settings", lambda: load_settings({}))
    answer = bff("GET", "/ready")
    assert answer.status == 503 and answer.body["code"] == "not_ready"


def test_insane_request_id_is_replaced(bff):
    answer = bff("GET", "/health", headers={"X-Request-Id": "has space<script>"})
    assert answer.header("X-Request-Id") != "has space<script>"
    assert re.fullmatch(r"[0-9a-f]{32}", answer.header("X-Request-Id"))


def test_unknown_route_is_a_404_problem(bff):
    answer = bff("GET", "/nothing/here")
    assert answer.status == 404
    assert answer.header("Content-Type") == "application/problem+json"
    assert answer.body["code"] == "not_found"
    assert answer.body["request_id"] == answer.header("X-Request-Id")


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [("DELETE", "/products", "GET, POST"), ("PUT", "/orders/5", "GET"), ("GET", "/checkout", "POST")],
)
def test_wrong_method_is_a_405_with_allow(bff, method, target, allow):
    answer = bff(method, target)
    assert answer.status == 405
    assert answer.header("Allow") == allow
    assert answer.body["code"] == "method_not_allowed"


@pytest.mark.parametrize("bad_id", ["abc", "0", "-1", str(2**63)])
def test_non_id_path_segment_is_an_unknown_route(bff, tokens, orders, bad_id):
    answer = bff("GET", f"/orders/{bad_id}", token=tokens.admin())
    assert answer.status == 404 and answer.body["code"] == "not_found"
    assert orders.requests == []


def test_malformed_json_is_a_400(bff, tokens):
    answer = bff("POST", "/orchestrator/create-and-confirm-order", token=tokens.admin(), raw_body=b'{"items": [')
    assert answer.status == 400
    assert answer.body["code"] == "malformed_json"


def test_non_object_body_is_a_400(bff, tokens):
    answer = bff("POST", "/products", token=tokens.admin(), body=[1, 2])
    assert answer.status == 400
    assert answer.body["errors"] == {"body": ["Request body must be a JSON object."]}


def test_every_invalid_field_is_listed_at_once(bff, tokens, orders, customers):
    body = {
        "customer_id": 0,
        "items": [{"product_id": "7", "qty": 0}, {"qty": 10_001}],
        "correlation_id": "not ok!",
        "surprise": True,
    }
    answer = bff(
        "POST",
        "/orchestrator/create-and-confirm-order",
        token=tokens.admin(),
        body=body,
        headers={"Idempotency-Key": "k"},
    )
    assert answer.status == 400 and answer.body["code"] == "validation_error"
    assert set(answer.body["errors"]) == {
        "customer_id",
        "items.0.product_id",
        "items.0.qty",
        "items.1.product_id",
        "items.1.qty",
        "correlation_id",
        "surprise",
    }
    assert orders.requests == [] and customers.requests == []


def test_too_many_items_is_a_400(bff, tokens):
    body = {"customer_id": 1, "items": [{"product_id": i + 1, "qty": 1} for i in range(101)]}
    answer = bff("POST", "/orchestrator/create-and-confirm-order", token=tokens.admin(), body=body)
    assert answer.status == 400 and "items" in answer.body["errors"]


# --- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["missing", "expired", "wrong_audience", "wrong_key", "alg_none", "garbage"])
def test_bad_tokens_are_401(bff, tokens, orders, kind):
    answer = bff("GET", "/products", token=tokens.bad_tokens()[kind])
    assert answer.status == 401
    assert answer.header("WWW-Authenticate").startswith("Bearer")
    assert answer.body["code"] in {"unauthorized", "invalid_token"}
    assert orders.requests == []


def test_service_tokens_are_not_accepted_by_the_bff(bff, tokens):
    answer = bff("GET", "/products", token=tokens.service("orchestrator", "orchestrator"))
    assert answer.status == 401


def test_downstream_calls_carry_the_bffs_service_token(bff, tokens, orders, service_keys):
    orders.on("GET", "/products/3", (200, {"id": 3}))
    assert bff("GET", "/products/3", token=tokens.customer(1)).status == 200
    token = orders.requests[0].headers["authorization"].removeprefix("Bearer ")
    public = service_keys.public_keys()
    claims = verify_service_token(public, token, audience="orders-service", issuers=["orchestrator"])
    assert claims["sub"] == "orchestrator" and claims["role"] == "service"
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"


def test_login_needs_no_token_and_passes_the_answer_through(bff, customers, service_keys):
    customers.on(
        "POST",
        "/internal/login",
        lambda req, _m: (401, problem(401, "invalid_credentials"), {"WWW-Authenticate": "Bearer"}),
    )
    answer = bff("POST", "/auth/login", body={"username": "a", "password": "wrong"}, source_ip="198.51.100.7")
    assert answer.status == 401 and answer.body["code"] == "invalid_credentials"
    (sent,) = customers.requests
    # The user's credentials, and the client's address, vouched for by the BFF's own token.
    assert sent.body == {"username": "a", "password": "wrong", "client_address": "198.51.100.7"}
    token = sent.headers["authorization"].removeprefix("Bearer ")
    claims = verify_service_token(
        service_keys.public_keys(), token, audience="customers-service", issuers=["orchestrator"]
    )
    assert claims["sub"] == "orchestrator"

    customers.on("POST", "/internal/login", (200, {"access_token": "t", "token_type": "Bearer"}))
    assert bff("POST", "/auth/login", body={"username": "a", "password": "right"}).body["access_token"] == "t"


def test_a_client_cannot_choose_the_address_it_is_throttled_by(bff, customers):
    customers.on("POST", "/internal/login", (200, {"access_token": "t"}))
    body = {"username": "a", "password": "p", "client_address": "10.0.0.1"}
    bff("POST", "/auth/login", body=body, source_ip="198.51.100.7", headers={"X-Viewer-Address": "10.0.0.2"})
    (sent,) = customers.requests
    assert sent.body["client_address"] == "198.51.100.7"  # no CloudFront here: the connection's


def test_a_throttled_login_is_a_429_with_retry_after(bff, customers):
    customers.on("POST", "/internal/login", (429, problem(429, "too_many_attempts"), {"Retry-After": "30"}))
    answer = bff("POST", "/auth/login", body={"username": "a", "password": "p"})
    assert answer.status == 429 and answer.body["code"] == "too_many_attempts"
    assert answer.header("Retry-After") == "30"


def test_a_refused_service_token_on_login_is_our_fault_not_the_users(bff, customers):
    customers.on("POST", "/internal/login", (401, problem(401, "invalid_token")))
    answer = bff("POST", "/auth/login", body={"username": "a", "password": "p"})
    assert answer.status == 500 and answer.body["code"] == "internal_error"


CUSTOMER_ROUTES = [
    ("GET", "/cart", None),
    ("PUT", "/cart/items/3", {"qty": 1}),
    ("DELETE", "/cart/items/3", None),
    ("GET", "/orders", None),
    ("GET", "/orders/8", None),
    ("POST", "/orders/8/cancel", None),
    ("GET", "/customers/4", None),
    ("POST", "/orchestrator/create-and-confirm-order", {"items": [{"product_id": 1, "qty": 1}]}),
    ("POST", "/checkout", None),
]


@pytest.mark.parametrize(("method", "target", "body"), CUSTOMER_ROUTES)
def test_a_deleted_customers_token_is_refused_wherever_its_customer_is_used(
    bff, tokens, customers, orders, method, target, body
):
    customers.on("GET", r"/internal/customers/(\d+)", (404, problem(404, "not_found", resource="customer")))
    answer = bff(method, target, token=tokens.customer(4), body=body, headers={"Idempotency-Key": "k"})
    assert answer.status == 401 and answer.body["code"] == "invalid_token", answer.body
    assert "deleted" in answer.body["detail"]
    assert [r.path for r in orders.requests] == []  # nothing done for it downstream


# --- acting for a customer ---------------------------------------------------------------------


def test_customer_cannot_use_admin_routes(bff, tokens, orders, customers):
    for method, target in [
        ("POST", "/products"),
        ("POST", "/customers"),
        ("GET", "/customers"),
        ("DELETE", "/customers/1"),
    ]:
        answer = bff(method, target, token=tokens.customer(1), body={"x": 1})
        assert answer.status == 403, (method, target)
    assert orders.requests == [] and customers.requests == []


def test_another_customers_order_is_a_404(bff, tokens, orders):
    orders.on("GET", "/orders/8", (200, {"id": 8, "customer_id": 2, "status": "CREATED"}))
    answer = bff("GET", "/orders/8", token=tokens.customer(1))
    assert answer.status == 404 and answer.body["resource"] == "order"
    assert bff("GET", "/orders/8", token=tokens.customer(2)).status == 200
    assert bff("GET", "/orders/8", token=tokens.admin()).body["id"] == 8


def test_cancelling_another_customers_order_is_a_404_and_sends_nothing(bff, tokens, orders):
    orders.on("GET", "/orders/8", (200, {"id": 8, "customer_id": 2}))
    answer = bff("POST", "/orders/8/cancel", token=tokens.customer(1), headers={"Idempotency-Key": "c1"})
    assert answer.status == 404
    assert orders.calls("POST", "/orders/8/cancel") == []


def test_cart_is_scoped_to_the_callers_customer(bff, tokens, orders):
    orders.on("GET", "/cart", lambda req, _m: (200, {"customer_id": int(req.query["customer_id"]), "items": []}))
    assert bff("GET", "/cart", token=tokens.customer(4)).body["customer_id"] == 4
    assert bff("GET", "/cart?customer_id=5", token=tokens.customer(4)).status == 404
    assert bff("GET", "/cart?customer_id=5", token=tokens.admin()).body["customer_id"] == 5
    missing = bff("GET", "/cart", token=tokens.admin())
    assert missing.status == 400 and "customer_id" in missing.body["errors"]
    assert bff("GET", "/cart?customer_id=x", token=tokens.admin()).status == 400


def test_cart_item_writes_name_the_customer_downstream(bff, tokens, orders):
    orders.on("PUT", r"/cart/items/(\d+)", lambda req, m: (200, {"product_id": int(m[1]), **req.body, **req.query}))
    orders.on("DELETE", r"/cart/items/(\d+)", (204, None))
    answer = bff("PUT", "/cart/items/3", token=tokens.customer(4), body={"qty": 2})
    assert answer.body == {"product_id": 3, "qty": 2, "customer_id": "4"}
    deleted = bff("DELETE", "/cart/items/3", token=tokens.customer(4))
    assert deleted.status == 204 and deleted.body is None
    assert orders.calls("DELETE", "/cart/items/3")[0].query == {"customer_id": "4"}


def test_order_list_is_filtered_to_the_customer(bff, tokens, orders):
    orders.on("GET", "/orders", (200, PAGE))
    bff("GET", "/orders?status=PAID", token=tokens.customer(4))
    assert orders.requests[-1].query == {"status": "PAID", "customer_id": "4"}
    assert bff("GET", "/orders?customer_id=5", token=tokens.customer(4)).status == 403
    bff("GET", "/orders?customer_id=5", token=tokens.admin())
    assert orders.requests[-1].query == {"customer_id": "5"}


def test_customer_naming_another_customer_is_a_403(bff, tokens, orders, customers):
    body = {"customer_id": 2, "items": [{"product_id": 1, "qty": 1}]}
    answer = bff(
        "POST",
        "/orchestrator/create-and-confirm-order",
        token=tokens.customer(1),
        body=body,
        headers={"Idempotency-Key": "k"},
    )
    assert answer.status == 403 and answer.body["code"] == "forbidden"
    assert orders.requests == [] and customers.requests == []


def test_customer_reads_only_its_own_customer_record(bff, tokens, customers):
    customers.on("GET", r"/customers/(\d+)", lambda _req, m: (200, {"id": int(m[1])}))
    assert bff("GET", "/customers/4", token=tokens.customer(4)).body == {"id": 4}
    assert bff("GET", "/customers/5", token=tokens.customer(4)).status == 404
    assert bff("GET", "/customers/5", token=tokens.admin()).body == {"id": 5}


def test_admin_customer_writes_are_relayed(bff, tokens, customers):
    customers.on("PATCH", r"/customers/(\d+)", lambda req, m: (200, {"id": int(m[1]), **req.body}))
    customers.on("DELETE", r"/customers/(\d+)", (204, None))
    assert bff("PATCH", "/customers/4", token=tokens.admin(), body={"name": "N"}).body == {"id": 4, "name": "N"}
    assert bff("DELETE", "/customers/4", token=tokens.admin()).status == 204
