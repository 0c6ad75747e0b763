"""Order lifecycle (SPEC §6): confirm, cancel and its window, payment outcomes, expiry, overdue."""

from __future__ import annotations

import time

from orders_testkit import assert_problem, assert_stock_conserved, execute, order_status, stock_of


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
    assert api.payment_outcome(order["id"], "succeeded").get_json()["applied"] is True
    assert assert_problem(api.cancel(order["id"]), 409, "invalid_state_transition")["current_status"] == "PAID"
    assert stock_of(db, product["id"]) == 8


def test_payment_success_is_applied_once(api, db):
    order, product = confirmed_order(api)
    response = api.payment_outcome(order["id"], "succeeded", payment_reference="pay_123")
    assert response.status_code == 200
    result = response.get_json()
    assert result["applied"] is True and result["reason"] is None
    paid = result["order"]
    assert (paid["status"], paid["payment_status"]) == ("PAID", "SUCCEEDED") and paid["paid_at"]
    assert paid == api.get_order(order["id"])

    again = api.payment_outcome(order["id"], "failed").get_json()
    assert again["applied"] is False and again["reason"] == "already_settled"
    assert again["order"]["status"] == "PAID"
    assert stock_of(db, product["id"]) == 8
    assert_stock_conserved(db, [product["id"]])


def test_payment_failure_cancels_and_returns_stock_once(api, db):
    order, product = confirmed_order(api)
    result = api.payment_outcome(order["id"], "failed", reason="card declined").get_json()
    assert result["applied"] is True
    failed = result["order"]
    assert (failed["status"], failed["payment_status"], failed["cancel_reason"]) == (
        "CANCELED",
        "FAILED",
        "payment_failed",
    )
    assert stock_of(db, product["id"]) == 10
    for outcome in ("failed", "succeeded"):
        again = api.payment_outcome(order["id"], outcome).get_json()
        assert again["applied"] is False and again["reason"] == "already_settled"
    assert stock_of(db, product["id"]) == 10


def test_payment_outcome_for_a_canceled_or_unconfirmed_order(api, db):
    order, product = confirmed_order(api)
    api.cancel(order["id"])
    result = api.payment_outcome(order["id"], "succeeded").get_json()
    assert result["applied"] is False and result["reason"] == "order_canceled"
    assert order_status(db, order["id"]) == ("CANCELED", "PENDING")
    assert stock_of(db, product["id"]) == 10

    created = api.new_order(api.new_customer(), [(product["id"], 1)])
    body = assert_problem(api.payment_outcome(created["id"], "succeeded"), 409, "invalid_state_transition")
    assert body["current_status"] == "CREATED"
    assert assert_problem(api.payment_outcome(987654321, "succeeded"), 404, "not_found")["resource"] == "order"


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


def test_overdue_payments_lists_confirmed_pending_after_the_grace_period(api, db):
    overdue, _ = confirmed_order(api)
    recent, _ = confirmed_order(api)
    paid, _ = confirmed_order(api)
    api.payment_outcome(paid["id"], "succeeded")
    for order in (overdue, paid):
        backdate(db, order["id"], "confirmed_at", 121)  # PAYMENT_GRACE_SECONDS defaults to 120

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
    assert overdue["id"] in listed and recent["id"] not in listed and paid["id"] not in listed
    assert recent["id"] in {entry["order_id"] for entry in overdue_entries("&older_than_seconds=0")}
    assert listed[overdue["id"]] == {
        "order_id": overdue["id"],
        "customer_id": overdue["customer_id"],
        "amount_cents": overdue["total_cents"],
        "confirmed_at": api.get_order(overdue["id"])["confirmed_at"],
    }
