"""Confirm replays answered from memory in front of Flask (api/replay_fast_path.py): the same
answer and log line as the view, no database work, and nothing it is not sure of."""

from __future__ import annotations

import logging
import uuid

from orders_testkit import assert_problem, auth
from test_orders_api import statements

from orders_service.api.replay_fast_path import CONFIRM_RULE


def _confirmed_and_cached(api):
    order = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])
    key = uuid.uuid4().hex
    first = api.confirm(order["id"], key=key)
    assert first.status_code == 200
    from_db = api.confirm(order["id"], key=key)  # a replay read from the database fills the cache
    assert from_db.headers["Idempotent-Replayed"] == "true"
    return order, key, first


def test_a_cached_replay_is_the_same_answer_without_the_database(app, api):
    order, key, first = _confirmed_and_cached(api)
    with statements(app) as sent:
        replay = api.client.post(
            f"/orders/{order['id']}/confirm",
            headers={**api.admin, "Idempotency-Key": key, "X-Request-Id": "replay-1"},
        )
    assert sent == []
    assert replay.status_code == 200
    assert replay.get_data() == first.get_data()
    assert replay.headers["Content-Type"] == "application/json"
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["X-Request-Id"] == "replay-1"
    # The alias header is the same key.
    alias = api.client.post(f"/orders/{order['id']}/confirm", headers={**api.admin, "X-Idempotency-Key": key})
    assert alias.status_code == 200 and alias.get_data() == first.get_data()


def test_a_cached_replay_logs_the_same_http_request_line(api, caplog):
    order, key, _ = _confirmed_and_cached(api)
    with caplog.at_level(logging.INFO, logger="http"):
        api.confirm(order["id"], key=key)
    [record] = [r for r in caplog.records if r.getMessage() == "http_request"]
    fields = record.fields
    assert fields["route"] == CONFIRM_RULE
    assert (fields["method"], fields["path"], fields["status"]) == ("POST", f"/orders/{order['id']}/confirm", 200)
    assert fields["order_id"] == order["id"] and fields["customer_id"] == order["customer_id"]
    assert fields["caller"] == "user:1" and fields["request_id"] and fields["duration_ms"] >= 0


def test_the_flask_route_has_the_rule_the_fast_path_logs(app):
    assert CONFIRM_RULE in {rule.rule for rule in app.url_map.iter_rules()}


def test_what_the_fast_path_is_not_sure_of_goes_to_flask(api, tokens):
    order, key, first = _confirmed_and_cached(api)
    path = f"/orders/{order['id']}/confirm"
    # No token, a bad token: 401 as always, even though the key is cached.
    assert_problem(api.client.post(path, headers={"Idempotency-Key": key}), 401)
    assert_problem(api.client.post(path, headers={**auth("not-a-jwt"), "Idempotency-Key": key}), 401)
    # Another caller's scope: not a replay, the order is already confirmed.
    other = api.client.post(path, headers={**api.orchestrator, "Idempotency-Key": key})
    assert_problem(other, 409, "invalid_state_transition")
    # The same key on another order: 422.
    second = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])
    assert_problem(
        api.client.post(f"/orders/{second['id']}/confirm", headers={**api.admin, "Idempotency-Key": key}),
        422,
        "idempotency_key_mismatch",
    )
    # Differing key headers: 400.
    assert_problem(
        api.client.post(path, headers={**api.admin, "Idempotency-Key": key, "X-Idempotency-Key": "other"}), 400
    )
    # A trailing slash or a body: Flask answers, with the same replay.
    for response in (
        api.client.post(path + "/", headers={**api.admin, "Idempotency-Key": key}),
        api.client.post(path, json={"ignored": True}, headers={**api.admin, "Idempotency-Key": key}),
    ):
        assert response.status_code == 200 and response.get_data() == first.get_data()
        assert response.headers["Idempotent-Replayed"] == "true"
