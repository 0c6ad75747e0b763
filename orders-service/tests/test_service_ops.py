"""Operational surface: health, readiness, OpenAPI document, docs, request ids, a dead database."""

from __future__ import annotations

from orders_testkit import assert_problem

DEAD_DATABASE = "mysql+pymysql://nobody:nothing@127.0.0.1:1/orders?charset=utf8mb4"


def test_health_and_ready(client):
    assert client.get("/health").get_json() == {"status": "ok", "service": "orders-service"}
    assert client.get("/ready").get_json() == {"status": "ready", "service": "orders-service"}


def test_ready_is_503_when_the_database_is_unreachable(app_factory, api):
    dead = app_factory(DATABASE_URL=DEAD_DATABASE).test_client()
    assert dead.get("/health").status_code == 200
    response = dead.get("/ready")
    assert_problem(response, 503, "not_ready")
    assert response.headers["Retry-After"]
    # A business route is an honest 503 too, not a 500.
    response = dead.get("/products", headers=api.admin)
    assert_problem(response, 503, "database_unavailable")
    assert response.headers["Retry-After"]


def test_openapi_documents_every_route_with_schemas_and_errors(client, app):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    expected = {
        "/products": {"get", "post"},
        "/products/{product_id}": {"get", "patch"},
        "/products/{product_id}/restock": {"post"},
        "/cart": {"get"},
        "/cart/items/{product_id}": {"put", "delete"},
        "/orders": {"get", "post"},
        "/orders/{order_id}": {"get"},
        "/orders/{order_id}/confirm": {"post"},
        "/orders/{order_id}/cancel": {"post"},
        "/internal/orders/{order_id}/payment-claim": {"post"},
        "/internal/orders/{order_id}/payment-outcome": {"post"},
        "/internal/stored-responses/{key}": {"get", "put"},
        "/internal/payments/overdue": {"get"},
        "/internal/reservations/expire": {"post"},
        "/internal/idempotency-keys/purge": {"post"},
        "/internal/customers/{customer_id}/deleted": {"post"},
    }
    for path, methods in expected.items():
        assert path in spec["paths"], path
        for method in methods:
            operation = spec["paths"][path][method]
            responses = operation["responses"]
            assert operation["security"] == [{"bearerAuth": []}], (path, method)
            assert "401" in responses, (path, method)
            success = [code for code in responses if code.startswith("2")]
            assert success and "schema" in responses[success[0]]["content"]["application/json"], (path, method)
            for code, response in responses.items():
                if code.startswith("4"):
                    assert "application/problem+json" in response["content"], (path, method, code)
            if method in {"post", "put", "patch"} and path not in {
                "/orders/{order_id}/confirm",
                "/orders/{order_id}/cancel",
                "/internal/orders/{order_id}/payment-claim",
                "/internal/idempotency-keys/purge",
                "/internal/customers/{customer_id}/deleted",
            }:
                assert "requestBody" in operation, (path, method)
    confirm = spec["paths"]["/orders/{order_id}/confirm"]["post"]
    assert {"name": "Idempotency-Key", "required": True}.items() <= confirm["parameters"][0].items()
    assert "Order" in spec["components"]["schemas"] and "Problem" in spec["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_request_ids_are_echoed_or_made(client):
    assert client.get("/health", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    assert client.get("/health", headers={"X-Request-Id": "no spaces!"}).headers["X-Request-Id"] != "no spaces!"
