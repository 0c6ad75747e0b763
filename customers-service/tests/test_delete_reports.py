"""A soft delete is reported to orders-service after it commits: retried, never undone.

orders-service caches customer lookups; the report (POST /internal/customers/{id}/deleted) is
what makes it refuse the customer at once. The stub in orders_stub.py stands in for it here;
orders-service's own suite runs the real pair of processes.
"""

from __future__ import annotations

import dataclasses
import json
import time

import jwt
import pytest

from customers_service.app import create_app
from servicekit.logging import JsonFormatter
from servicekit.testing import free_port

from conftest import assert_problem


def _failure_lines(caplog) -> list[dict]:
    return [
        json.loads(JsonFormatter("customers-service").format(record))
        for record in caplog.records
        if record.getMessage() == "customer_delete_notification_failed"
    ]


def test_a_delete_is_reported_once_with_a_cached_customers_service_token(client, admin_headers, make_customer, orders):
    first, second = make_customer(), make_customer()
    response = client.delete(f"/customers/{first['id']}", headers={**admin_headers, "X-Request-Id": "del-1"})
    assert response.status_code == 204
    assert client.delete(f"/customers/{second['id']}", headers=admin_headers).status_code == 204

    [report] = orders.reports_for(first["id"])
    assert report["status"] == 200 and report["request_id"] == "del-1"
    assert orders.tombstones == {first["id"], second["id"]}
    claims = jwt.decode(report["token"], options={"verify_signature": False})
    assert (claims["iss"], claims["sub"], claims["aud"], claims["role"]) == (
        "customers-service",
        "customers-service",
        "orders-service",
        "service",
    )
    assert orders.reports_for(second["id"])[0]["token"] == report["token"]  # minted once, reused


def test_nothing_is_reported_for_a_delete_that_did_not_happen(client, admin_headers, make_customer, orders):
    customer = make_customer()
    assert client.delete(f"/customers/{customer['id']}", headers=admin_headers).status_code == 204
    assert_problem(client.delete(f"/customers/{customer['id']}", headers=admin_headers), 404)
    assert_problem(client.delete("/customers/987654321", headers=admin_headers), 404)
    assert [a["customer_id"] for a in orders.attempts] == [customer["id"]]


def test_the_report_is_retried_while_orders_service_is_briefly_down(
    client, admin_headers, make_customer, orders, caplog
):
    customer = make_customer()
    orders.fail_next(2, status=503)
    assert client.delete(f"/customers/{customer['id']}", headers=admin_headers).status_code == 204
    assert [a["status"] for a in orders.reports_for(customer["id"])] == [503, 503, 200]
    assert customer["id"] in orders.tombstones
    assert _failure_lines(caplog) == []


@pytest.fixture
def orders_down(settings):
    """The app with orders-service unreachable (built before the test: building an app sets up
    logging afresh, which would unhook caplog)."""
    app = create_app(dataclasses.replace(settings, orders_api_url=f"http://127.0.0.1:{free_port()}"))
    yield app.test_client()
    app.extensions["customers_service.engine"].dispose()


def test_the_delete_stands_and_is_logged_when_orders_service_stays_down(
    orders_down, admin_headers, make_customer, caplog, orders
):
    customer = make_customer()
    started = time.monotonic()
    response = orders_down.delete(f"/customers/{customer['id']}", headers={**admin_headers, "X-Request-Id": "del-down"})
    elapsed = time.monotonic() - started
    assert response.status_code == 204
    assert elapsed < 2  # refused connections: three quick attempts and their backoff, no hang
    assert_problem(orders_down.get(f"/customers/{customer['id']}", headers=admin_headers), 404)

    [line] = _failure_lines(caplog)
    assert line["level"] == "ERROR" and line["customer_id"] == customer["id"]
    assert line["dependency"] == "orders-service"
    assert "did not answer" in line["error"]
    assert orders.attempts == []


def test_a_refused_report_is_not_retried_and_is_logged(client, admin_headers, make_customer, orders, caplog):
    customer = make_customer()
    orders.fail_next(1, status=403)  # e.g. orders-service does not trust customers-service yet
    assert client.delete(f"/customers/{customer['id']}", headers=admin_headers).status_code == 204
    assert [a["status"] for a in orders.reports_for(customer["id"])] == [403]
    [line] = _failure_lines(caplog)
    assert line["status"] == 403 and line["customer_id"] == customer["id"]


def test_a_report_failing_after_every_retry_is_logged(client, admin_headers, make_customer, orders, caplog):
    customer = make_customer()
    orders.fail_next(3, status=503)
    assert client.delete(f"/customers/{customer['id']}", headers=admin_headers).status_code == 204
    assert [a["status"] for a in orders.reports_for(customer["id"])] == [503, 503, 503]
    [line] = _failure_lines(caplog)
    assert line["status"] == 503 and line["customer_id"] == customer["id"]
    assert_problem(client.get(f"/customers/{customer['id']}", headers=admin_headers), 404)
