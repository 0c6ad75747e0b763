"""Retries of keyed writes answered from memory in front of Flask (servicekit.replay, the routes in
api/replays.py): the same answer and log line as the view, no database work, and nothing the
middleware is not sure of."""

from __future__ import annotations

import logging
import uuid

import pytest
from orders_testkit import assert_problem, auth
from test_orders_api import round_trips

from orders_service.api.replays import REPLAY_ROUTES


def _twice(api, method_path: str, body=None, key: str | None = None):
    """Send a keyed request, then its retry (a replay read from the database, which fills the cache)."""
    key = key or uuid.uuid4().hex
    headers = {**api.admin, "Idempotency-Key": key}
    first = api.client.post(method_path, json=body, headers=headers)
    assert first.status_code in (200, 201), first.get_json()
    from_db = api.client.post(method_path, json=body, headers=headers)
    assert from_db.headers["Idempotent-Replayed"] == "true" and from_db.get_data() == first.get_data()
    return key, first


def _keyed_writes(api):
    """Each idempotent route: (its route template, the path, the body) of a fresh request."""
    customer = api.new_customer()
    product = api.new_product(stock=50)
    created = api.new_order(customer, [(product["id"], 1)])
    to_cancel = api.new_order(customer, [(product["id"], 1)])
    return [
        ("POST /orders", "/orders", {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 2}]}),
        ("POST /orders/{order_id}/confirm", f"/orders/{created['id']}/confirm", None),
        ("POST /orders/{order_id}/cancel", f"/orders/{to_cancel['id']}/cancel", None),
        ("POST /products/{product_id}/restock", f"/products/{product['id']}/restock", {"qty": 3}),
    ]


def test_every_idempotent_route_is_served_and_its_rule_is_flasks(app):
    assert {route.route for route in REPLAY_ROUTES} == {
        "POST /orders",
        "POST /orders/{order_id}/confirm",
        "POST /orders/{order_id}/cancel",
        "POST /products/{product_id}/restock",
    }
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert {route.rule for route in REPLAY_ROUTES} <= rules


def test_a_cached_replay_is_the_same_answer_without_the_database(app, api, caplog):
    for template, path, body in _keyed_writes(api):
        key, first = _twice(api, path, body)
        with round_trips(app) as sent, caplog.at_level(logging.INFO, logger="http"):
            caplog.clear()
            replay = api.client.post(
                path, json=body, headers={**api.admin, "Idempotency-Key": key, "X-Request-Id": "replay-1"}
            )
        assert sent == [], template
        assert replay.status_code == first.status_code and replay.get_data() == first.get_data(), template
        assert replay.headers["Content-Type"] == "application/json"
        assert replay.headers["Idempotent-Replayed"] == "true" and replay.headers["X-Request-Id"] == "replay-1"
        [record] = [r for r in caplog.records if r.getMessage() == "http_request"]
        route = next(r for r in REPLAY_ROUTES if r.route == template)
        assert record.fields["route"] == route.rule and record.fields["status"] == first.status_code
        assert record.fields["caller"] == "user:1" and record.fields["path"] == path
        # The alias header is the same key.
        alias = api.client.post(path, json=body, headers={**api.admin, "X-Idempotency-Key": key})
        assert alias.status_code == first.status_code and alias.get_data() == first.get_data()


def test_a_cached_create_is_found_by_its_validated_body(app, api):
    """The fingerprint is the validated body: the same request in other JSON spelling is the replay."""
    customer = api.new_customer()
    product = api.new_product(stock=10)
    body = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
    key, first = _twice(api, "/orders", body)
    spelled_otherwise = b'{ "items": [ {"qty": 1, "product_id": %d} ], "customer_id": %d }' % (product["id"], customer)
    with round_trips(app) as sent:
        replay = api.client.post(
            "/orders",
            data=spelled_otherwise,
            headers={**api.admin, "Idempotency-Key": key, "Content-Type": "application/json"},
        )
    assert sent == [] and replay.get_data() == first.get_data()


@pytest.mark.parametrize("kind", ["create", "confirm"])
def test_what_the_middleware_is_not_sure_of_goes_to_flask(api, kind):
    customer = api.new_customer()
    product = api.new_product(stock=20)
    if kind == "create":
        path, body = "/orders", {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
    else:
        path, body = f"/orders/{api.new_order(customer, [(product['id'], 1)])['id']}/confirm", None
    key, first = _twice(api, path, body)
    # No token, a bad token: 401 as always, even though the key is cached.
    assert_problem(api.client.post(path, json=body, headers={"Idempotency-Key": key}), 401)
    assert_problem(api.client.post(path, json=body, headers={**auth("not-a-jwt"), "Idempotency-Key": key}), 401)
    # A service that may not call the route: 403.
    assert_problem(api.client.post(path, json=body, headers={**api.payments, "Idempotency-Key": key}), 403)
    # Differing key headers: 400.
    assert_problem(
        api.client.post(path, json=body, headers={**api.admin, "Idempotency-Key": key, "X-Idempotency-Key": "x"}), 400
    )
    if kind == "create":
        # The same key with another body: 422; an invalid body: 400 from the view's validation.
        other = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 2}]}
        assert_problem(api.client.post(path, json=other, headers={**api.admin, "Idempotency-Key": key}), 422)
        assert_problem(
            api.client.post(path, json={"customer_id": customer}, headers={**api.admin, "Idempotency-Key": key}), 400
        )
    else:
        # The same key on another order: 422; a body or a trailing slash: Flask answers the same replay.
        second = api.new_order(customer, [(product["id"], 1)])
        assert_problem(
            api.client.post(f"/orders/{second['id']}/confirm", headers={**api.admin, "Idempotency-Key": key}),
            422,
            "idempotency_key_mismatch",
        )
        for response in (
            api.client.post(path + "/", headers={**api.admin, "Idempotency-Key": key}),
            api.client.post(path, json={"ignored": True}, headers={**api.admin, "Idempotency-Key": key}),
        ):
            assert response.status_code == 200 and response.get_data() == first.get_data()
            assert response.headers["Idempotent-Replayed"] == "true"


def test_a_key_not_in_the_cache_goes_to_flask_unchecked(app, api, monkeypatch):
    """First tries (and the first retry, read from the database) are not parsed twice: the
    middleware checks a token and a body only for a key it holds an answer for."""
    middleware = app.wsgi_app
    verifier, checked = middleware.verifier, []

    class CountingVerifier:
        def verify(self, token):
            checked.append(token)
            return verifier.verify(token)

    monkeypatch.setattr(middleware, "verifier", CountingVerifier())
    customer = api.new_customer()
    product = api.new_product(stock=10)
    body = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
    key, first = _twice(api, "/orders", body)
    assert checked == []
    with round_trips(app) as sent:
        replay = api.client.post("/orders", json=body, headers={**api.admin, "Idempotency-Key": key})
    assert sent == [] and replay.get_data() == first.get_data() and len(checked) == 1
