"""Order lifecycle (docs/order-lifecycle.md): confirm, cancel and its window, payment claims and
outcomes, expiry, overdue payments."""

from __future__ import annotations

import time

from orders_testkit import assert_problem, assert_stock_conserved, execute, order_status, stock_of
from sqlalchemy import text


def backdate(db, order_id: int, column: str, seconds: int) -> None:
    execute(db, f"UPDATE orders SET {column} = {column} - INTERVAL :s SECOND WHERE id = :id", s=seconds, id=order_id)


def confirmed_order(api, qty: int = 2, stock: int = 10):
    product = api.new_product(stock=stock)
    order = api.new_order(api.new_customer(), [(product["id"], qty)])
    response = api.confirm(order["id"])
    assert response.status_code == 200
    return response.get_json(), product


def test_confirm_moves_created_to_confirmed_once(api):
    order, _ = confirmed_order(api)
    assert order["status"] == "CONFIRMED" and order["payment_status"] == "PENDING"
    assert order["confirmed_at"] is not None and order["updated_at"] == order["confirmed_at"]
    body = assert_problem(api.confirm(order["id"]), 409, "invalid_state_transition")
    assert body["current_status"] == "CONFIRMED"


def test_cancel_created_returns_stock_once(api, db):
    product = api.new_product(stock=10)
    order = api.new_order(api.new_customer(), [(product["id"], 4)])
    assert stock_of(db, product["id"]) == 6
    response = api.cancel(order["id"])
    assert response.status_code == 200
    canceled = response.get_json()
    assert canceled["status"] == "CANCELED" and canceled["cancel_reason"] == "requested" and canceled["canceled_at"]
    assert stock_of(db, product["id"]) == 10
    assert assert_problem(api.cancel(order["id"]), 409, "invalid_state_transition")["current_status"] == "CANCELED"
    assert_problem(api.confirm(order["id"]), 409, "invalid_state_transition")
    assert stock_of(db, product["id"]) == 10


def test_a_keyed_cancel_replays_instead_of_conflicting(api, db):
    """The BFF cancels with a key: its retry must get the answer of the cancel that happened."""
    product = api.new_product(stock=10)
    first, second = (api.new_order(api.new_customer(), [(product["id"], 2)]) for _ in range(2))
    headers = {**api.admin, "Idempotency-Key": "cancel-key-1"}
    canceled = api.cancel(first["id"], headers=headers)
    assert canceled.status_code == 200 and "Idempotent-Replayed" not in canceled.headers
    again = api.cancel(first["id"], headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == canceled.get_json()
    assert stock_of(db, product["id"]) == 8
    assert_problem(api.cancel(second["id"], headers=headers), 422, "idempotency_key_mismatch")
    assert api.get_order(second["id"])["status"] == "CREATED"
    other_key = {**api.admin, "Idempotency-Key": "cancel-key-2"}
    assert_problem(api.cancel(first["id"], headers=other_key), 409, "invalid_state_transition")


def test_cancel_confirmed_only_within_the_window(api, db):
    inside, product = confirmed_order(api, qty=3)
    assert api.cancel(inside["id"]).status_code == 200
    assert stock_of(db, product["id"]) == 10

    outside, product = confirmed_order(api, qty=3)
    backdate(db, outside["id"], "confirmed_at", 601)  # CANCEL_WINDOW_SECONDS defaults to 600
    body = assert_problem(api.cancel(outside["id"]), 409, "cancel_window_expired")
    assert body["current_status"] == "CONFIRMED"
    assert stock_of(db, product["id"]) == 7


def test_the_cancel_window_is_configurable(app_factory, api, db):
    short = app_factory(CANCEL_WINDOW_SECONDS="1").test_client()
    order, product = confirmed_order(api)
    time.sleep(1.2)
    assert_problem(short.post(f"/orders/{order['id']}/cancel", headers=api.admin), 409, "cancel_window_expired")
    assert order_status(db, order["id"]) == ("CONFIRMED", "PENDING")


def test_paid_orders_cannot_be_canceled(api, db):
    order, product = confirmed_order(api)
    assert api.settle(order["id"], "succeeded").get_json()["applied"] is True
    assert assert_problem(api.cancel(order["id"]), 409, "invalid_state_transition")["current_status"] == "PAID"
    assert stock_of(db, product["id"]) == 8


def test_a_claim_takes_the_amount_from_the_order_and_keeps_one_attempt_id(api, db):
    order, product = confirmed_order(api, qty=3)
    first = api.claim(order["id"])
    assert first.status_code == 200
    claim = first.get_json()
    assert claim["claimed"] is True and claim["reason"] is None
    payment = claim["payment"]
    assert payment["amount_cents"] == order["total_cents"] == 3 * product["price_cents"]
    assert (payment["order_id"], payment["customer_id"], payment["currency"]) == (
        order["id"],
        order["customer_id"],
        "usd",
    )
    assert payment["attempt_id"].startswith("pay_")
    assert claim["order"]["payment_status"] == "PROCESSING" == api.get_order(order["id"])["payment_status"]
    # A redelivered message (or a retry after a crash) claims again: same attempt, same charge key.
    again = api.claim(order["id"]).get_json()
    assert again["claimed"] is True and again["payment"] == payment
    other, _ = confirmed_order(api)
    assert api.claim(other["id"]).get_json()["payment"]["attempt_id"] != payment["attempt_id"]
    assert order_status(db, order["id"]) == ("CONFIRMED", "PROCESSING")


def test_settled_canceled_and_unconfirmed_orders_are_not_claimed(api, db):
    paid, _ = confirmed_order(api)
    api.settle(paid["id"], "succeeded")
    declined, _ = confirmed_order(api)
    api.settle(declined["id"], "failed")
    canceled, _ = confirmed_order(api)
    api.cancel(canceled["id"])
    for order, reason in ((paid, "already_settled"), (declined, "already_settled"), (canceled, "order_canceled")):
        before = order_status(db, order["id"])
        answer = api.claim(order["id"])
        assert answer.status_code == 200
        body = answer.get_json()
        assert body["claimed"] is False and body["reason"] == reason and body["payment"] is None
        assert order_status(db, order["id"]) == before
    created = api.new_order(api.new_customer(), [(paid["items"][0]["product_id"], 1)])
    body = assert_problem(api.claim(created["id"]), 409, "invalid_state_transition")
    assert body["current_status"] == "CREATED" and order_status(db, created["id"]) == ("CREATED", "NOT_REQUESTED")
    assert assert_problem(api.claim(987654321), 404, "not_found")["resource"] == "order"


def test_a_claimed_order_cannot_be_canceled(api, db):
    order, product = confirmed_order(api)
    api.claim(order["id"])
    body = assert_problem(api.cancel(order["id"]), 409, "payment_in_progress")
    assert body["current_status"] == "CONFIRMED"
    assert order_status(db, order["id"]) == ("CONFIRMED", "PROCESSING") and stock_of(db, product["id"]) == 8


def test_payment_success_is_applied_once(api, db):
    order, product = confirmed_order(api)
    response = api.settle(order["id"], "succeeded", payment_reference="ch_123")
    assert response.status_code == 200
    result = response.get_json()
    assert result["applied"] is True and result["reason"] is None
    paid = result["order"]
    assert (paid["status"], paid["payment_status"]) == ("PAID", "SUCCEEDED") and paid["paid_at"]
    assert paid == api.get_order(order["id"])

    attempt = db_attempt_id(db, order["id"])
    again = api.payment_outcome(order["id"], "failed", attempt_id=attempt).get_json()
    assert again["applied"] is False and again["reason"] == "already_settled"
    assert again["order"]["status"] == "PAID"
    assert stock_of(db, product["id"]) == 8
    assert_stock_conserved(db, [product["id"]])


def test_payment_failure_cancels_and_returns_stock_once(api, db):
    order, product = confirmed_order(api)
    result = api.settle(order["id"], "failed", reason="card declined").get_json()
    assert result["applied"] is True
    failed = result["order"]
    assert (failed["status"], failed["payment_status"], failed["cancel_reason"]) == (
        "CANCELED",
        "FAILED",
        "payment_failed",
    )
    assert stock_of(db, product["id"]) == 10
    for outcome in ("failed", "succeeded"):
        again = api.payment_outcome(order["id"], outcome, attempt_id=db_attempt_id(db, order["id"])).get_json()
        assert again["applied"] is False and again["reason"] == "already_settled"
    assert stock_of(db, product["id"]) == 10


def test_an_outcome_needs_the_claimed_attempt(api, db):
    order, product = confirmed_order(api)
    # Not claimed (PENDING): no attempt exists yet, nothing is applied.
    body = assert_problem(api.payment_outcome(order["id"], "succeeded", attempt_id="pay_x"), 409)
    assert body["code"] == "payment_attempt_mismatch"
    api.claim(order["id"])
    body = assert_problem(api.payment_outcome(order["id"], "succeeded", attempt_id="pay_other"), 409)
    assert body["code"] == "payment_attempt_mismatch"
    assert order_status(db, order["id"]) == ("CONFIRMED", "PROCESSING") and stock_of(db, product["id"]) == 8

    canceled, _ = confirmed_order(api)
    api.cancel(canceled["id"])
    assert_problem(api.payment_outcome(canceled["id"], "succeeded", attempt_id="pay_x"), 409)
    assert order_status(db, canceled["id"]) == ("CANCELED", "PENDING")

    created = api.new_order(api.new_customer(), [(product["id"], 1)])
    body = assert_problem(api.payment_outcome(created["id"], "succeeded", attempt_id="pay_x"), 409)
    assert body["code"] == "invalid_state_transition" and body["current_status"] == "CREATED"
    missing = api.payment_outcome(987654321, "succeeded", attempt_id="pay_x")
    assert assert_problem(missing, 404, "not_found")["resource"] == "order"


def db_attempt_id(db, order_id: int) -> str:
    with db.connect() as conn:
        return conn.execute(text("SELECT payment_attempt_id FROM orders WHERE id = :id"), {"id": order_id}).scalar_one()


def test_stale_reservations_expire_and_return_stock(api, db):
    product = api.new_product(stock=20)
    customer = api.new_customer()
    stale = api.new_order(customer, [(product["id"], 5)])
    fresh = api.new_order(customer, [(product["id"], 5)])
    old_but_confirmed = api.new_order(customer, [(product["id"], 5)])
    api.confirm(old_but_confirmed["id"])
    backdate(db, stale["id"], "created_at", 901)  # RESERVATION_TTL_SECONDS defaults to 900
    backdate(db, old_but_confirmed["id"], "created_at", 901)

    response = api.client.post("/internal/reservations/expire", headers=api.sweeper)
    assert response.status_code == 200
    result = response.get_json()
    assert stale["id"] in result["expired_order_ids"] and result["count"] == len(result["expired_order_ids"])
    assert fresh["id"] not in result["expired_order_ids"] and old_but_confirmed["id"] not in result["expired_order_ids"]
    expired = api.get_order(stale["id"])
    assert expired["status"] == "CANCELED" and expired["cancel_reason"] == "reservation_expired"
    assert stock_of(db, product["id"]) == 10
    again = api.client.post("/internal/reservations/expire", json={}, headers=api.sweeper).get_json()
    assert stale["id"] not in again["expired_order_ids"]
    assert stock_of(db, product["id"]) == 10

    body = {"older_than_seconds": 0, "limit": 1000}
    result = api.client.post("/internal/reservations/expire", json=body, headers=api.sweeper).get_json()
    assert fresh["id"] in result["expired_order_ids"]
    assert stock_of(db, product["id"]) == 15
    assert_stock_conserved(db, [product["id"]])


def test_overdue_payments_lists_pending_and_stuck_processing_orders_after_their_grace(api, db):
    overdue, _ = confirmed_order(api)
    recent, _ = confirmed_order(api)
    paid, _ = confirmed_order(api)
    stuck, _ = confirmed_order(api)
    busy, _ = confirmed_order(api)
    api.settle(paid["id"], "succeeded")
    api.claim(stuck["id"])
    api.claim(busy["id"])
    for order in (overdue, paid, stuck, busy):
        backdate(db, order["id"], "confirmed_at", 121)  # PAYMENT_GRACE_SECONDS defaults to 120
    backdate(db, stuck["id"], "payment_claimed_at", 301)  # PAYMENT_PROCESSING_GRACE_SECONDS: 300

    def overdue_entries(query: str = "") -> list[dict]:
        entries, cursor = [], None
        while True:
            url = f"/internal/payments/overdue?limit=3{query}" + (f"&cursor={cursor}" if cursor else "")
            response = api.client.get(url, headers=api.sweeper)
            assert response.status_code == 200, response.get_json()
            page = response.get_json()
            entries.extend(page["data"])
            cursor = page["pagination"]["next_cursor"]
            if cursor is None:
                return entries

    listed = {entry["order_id"]: entry for entry in overdue_entries()}
    assert overdue["id"] in listed and stuck["id"] in listed
    assert not {recent["id"], paid["id"], busy["id"]} & set(listed)
    assert recent["id"] in {entry["order_id"] for entry in overdue_entries("&older_than_seconds=0")}
    assert busy["id"] in {entry["order_id"] for entry in overdue_entries("&processing_older_than_seconds=0")}
    assert listed[overdue["id"]] == {
        "order_id": overdue["id"],
        "customer_id": overdue["customer_id"],
        "amount_cents": overdue["total_cents"],
        "payment_status": "PENDING",
        "confirmed_at": api.get_order(overdue["id"])["confirmed_at"],
    }
    assert listed[stuck["id"]]["payment_status"] == "PROCESSING"
