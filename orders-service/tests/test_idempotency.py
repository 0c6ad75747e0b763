"""Idempotency keys on POST /orders, confirm and restock, and the answers the BFF stores here
(docs/idempotency.md)."""

from __future__ import annotations

import threading
import uuid

from orders_testkit import assert_problem, execute, snapshot, stock_of
from sqlalchemy import text
from test_orders_api import round_trips

from orders_service.services.idempotency import IdempotentRequest


def count_orders(db, customer_id: int) -> int:
    with db.connect() as conn:
        return conn.execute(text("SELECT COUNT(*) FROM orders WHERE customer_id = :c"), {"c": customer_id}).scalar()


def test_same_key_same_request_replays_the_stored_response(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    first = api.create_order(customer, [(product["id"], 2)], key=key)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers

    replay = api.create_order(customer, [(product["id"], 2)], key=key)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_data() == first.get_data()

    alias = api.client.post(
        "/orders",
        json={"customer_id": customer, "items": [{"product_id": product["id"], "qty": 2}]},
        headers={**api.admin, "X-Idempotency-Key": key},
    )
    assert alias.status_code == 201 and alias.get_json() == first.get_json()
    assert count_orders(db, customer) == 1 and stock_of(db, product["id"]) == 8


def test_same_key_different_request_is_422_and_changes_nothing(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    assert api.create_order(customer, [(product["id"], 1)], key=key).status_code == 201
    before = snapshot(db)
    assert_problem(api.create_order(customer, [(product["id"], 2)], key=key), 422, "idempotency_key_mismatch")
    assert snapshot(db) == before


def test_keys_are_scoped_per_caller_and_route(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    mine = api.create_order(customer, [(product["id"], 1)], key=key).get_json()
    theirs = api.create_order(customer, [(product["id"], 1)], key=key, headers=api.orchestrator).get_json()
    assert mine["id"] != theirs["id"]
    # The same key on confirm is another scope; on two different orders it is a 422 (path in the fingerprint).
    assert api.confirm(mine["id"], key=key).status_code == 200
    assert_problem(api.confirm(theirs["id"], key=key), 422, "idempotency_key_mismatch")
    assert api.get_order(theirs["id"])["status"] == "CREATED"


def test_confirm_replay_returns_the_stored_confirmation(api):
    order = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])
    key = uuid.uuid4().hex
    first = api.confirm(order["id"], key=key)
    assert first.status_code == 200
    replay = api.confirm(order["id"], key=key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == first.get_json()
    body = assert_problem(api.confirm(order["id"], key=uuid.uuid4().hex), 409, "invalid_state_transition")
    assert body["current_status"] == "CONFIRMED"


def test_a_confirm_retry_is_replayed_without_waiting_for_the_order_lock(app_factory, api, db):
    """A retry of a completed confirm that no worker has cached yet does not queue for the
    order's row lock (a retry storm would otherwise pass it on one by one): with the row held
    by another transaction throughout, it is answered from the stored key. A first try on a
    locked order still waits for the lock."""
    patient = app_factory(DB_LOCK_WAIT_TIMEOUT_SECONDS="30").test_client()
    customer, product = api.new_customer(), api.new_product()["id"]
    confirmed, fresh = api.new_order(customer, [(product, 1)]), api.new_order(customer, [(product, 1)])
    key = uuid.uuid4().hex
    first = api.confirm(confirmed["id"], key=key)
    assert first.status_code == 200

    def confirm_in_thread(order_id: int, key: str) -> tuple[threading.Thread, list]:
        answers: list = []
        thread = threading.Thread(
            target=lambda: answers.append(
                patient.post(f"/orders/{order_id}/confirm", headers={**api.admin, "Idempotency-Key": key})
            )
        )
        thread.start()
        return thread, answers

    with db.connect() as holder:
        holder.execute(
            text("SELECT id FROM orders WHERE id IN (:a, :b) FOR UPDATE"), {"a": confirmed["id"], "b": fresh["id"]}
        )
        retry, retried = confirm_in_thread(confirmed["id"], key)
        waiting, waited = confirm_in_thread(fresh["id"], uuid.uuid4().hex)
        retry.join(timeout=20)
        assert retried, "the retry waited for the order's lock"
        assert not waited  # a first try needs the lock: still waiting
        holder.rollback()
    waiting.join(timeout=20)
    assert retried[0].status_code == 200 and retried[0].headers["Idempotent-Replayed"] == "true"
    assert retried[0].get_json() == first.get_json()
    assert waited and waited[0].status_code == 200 and waited[0].get_json()["status"] == "CONFIRMED"


def test_an_expired_confirm_key_is_reusable(api, db):
    """Confirm stores its key last: a duplicate that has expired is replaced, not replayed."""
    customer, product = api.new_customer(), api.new_product()["id"]
    first, second = api.new_order(customer, [(product, 1)]), api.new_order(customer, [(product, 1)])
    key = uuid.uuid4().hex
    assert api.confirm(first["id"], key=key).status_code == 200
    execute(
        db, "UPDATE idempotency_keys SET expires_at = created_at - INTERVAL 1 SECOND WHERE idempotency_key = :k", k=key
    )
    response = api.confirm(second["id"], key=key)
    assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers
    assert api.get_order(second["id"])["status"] == "CONFIRMED"
    replay = api.confirm(second["id"], key=key)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == response.get_json()


def test_key_header_rules(api):
    order = api.new_order(api.new_customer(), [(api.new_product()["id"], 1)])
    path = f"/orders/{order['id']}/confirm"
    assert_problem(api.client.post(path, headers=api.admin), 400, "idempotency_key_required")
    body = assert_problem(api.client.post(path, headers={**api.admin, "Idempotency-Key": "k" * 256}), 400)
    assert "Idempotency-Key" in body["errors"]
    assert_problem(api.client.post(path, headers={**api.admin, "Idempotency-Key": "  "}), 400, "validation_error")
    assert_problem(
        api.client.post(path, headers={**api.admin, "Idempotency-Key": "a", "X-Idempotency-Key": "b"}),
        400,
        "validation_error",
    )
    assert api.client.post(path, headers={**api.admin, "X-Idempotency-Key": "k" * 255}).status_code == 200


def test_a_failed_request_is_not_stored_so_its_retry_runs_again(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=1)
    key = uuid.uuid4().hex
    assert_problem(api.create_order(customer, [(product["id"], 3)], key=key), 409, "insufficient_stock")
    api.client.post(f"/products/{product['id']}/restock", json={"qty": 5}, headers=api.admin)
    retry = api.create_order(customer, [(product["id"], 3)], key=key)
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    assert stock_of(db, product["id"]) == 3


def test_expired_keys_are_reusable_and_purged(api, db):
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    first = api.create_order(customer, [(product["id"], 1)], key=key).get_json()
    live_key = uuid.uuid4().hex
    api.create_order(customer, [(product["id"], 1)], key=live_key)
    execute(
        db,
        "UPDATE idempotency_keys SET expires_at = created_at - INTERVAL 1 SECOND WHERE idempotency_key = :k",
        k=key,
    )
    # Expired (not yet purged): the key starts over, even with a different request.
    second = api.create_order(customer, [(product["id"], 2)], key=key)
    assert second.status_code == 201 and second.get_json()["id"] != first["id"]

    execute(
        db, "UPDATE idempotency_keys SET expires_at = created_at - INTERVAL 1 SECOND WHERE idempotency_key = :k", k=key
    )
    response = api.client.post("/internal/idempotency-keys/purge", headers=api.sweeper)
    assert response.status_code == 200 and response.get_json()["purged"] >= 1
    with db.connect() as conn:
        keys = set(conn.execute(text("SELECT idempotency_key FROM idempotency_keys")).scalars())
    assert key not in keys and live_key in keys


def test_key_held_by_a_running_request_is_409_in_flight(app_factory, api, database, db):
    """A twin blocked on the key row past the lock wait timeout gets 409 + Retry-After."""
    impatient = app_factory(DB_LOCK_WAIT_TIMEOUT_SECONDS="1").test_client()
    customer = api.new_customer()
    product = api.new_product(stock=10)
    key = uuid.uuid4().hex
    body = {"customer_id": customer, "items": [{"product_id": product["id"], "qty": 1}]}
    scope = IdempotentRequest.build(caller="user:1", route="POST /orders", key=key, path_params={}, body=body)
    with db.connect() as holder:  # plays the first request, still inside its transaction
        holder.execute(
            text(
                "INSERT INTO idempotency_keys (scope_hash, caller, route, idempotency_key, request_fingerprint, "
                "created_at, expires_at) VALUES (:h, 'user:1', 'POST /orders', :k, :f, NOW(6), NOW(6) + INTERVAL 1 DAY)"
            ),
            {"h": scope.scope_hash, "k": key, "f": scope.fingerprint},
        )
        response = impatient.post("/orders", json=body, headers={**api.admin, "Idempotency-Key": key})
        assert_problem(response, 409, "idempotency_in_flight")
        assert response.headers["Retry-After"]
        holder.rollback()
    assert count_orders(db, customer) == 0 and stock_of(db, product["id"]) == 10
    # The holder gave up, so the key is free: the retry runs.
    assert impatient.post("/orders", json=body, headers={**api.admin, "Idempotency-Key": key}).status_code == 201


def test_a_confirm_whose_key_a_running_twin_holds_is_409_in_flight(app_factory, api, db, capfd):
    """Confirm sends its key with the COMMIT: a twin holding that key uncommitted past the lock
    wait timeout makes it a 409 + Retry-After (not a retry of the whole transaction), and
    nothing of the confirm is committed."""
    impatient = app_factory(DB_LOCK_WAIT_TIMEOUT_SECONDS="1").test_client()
    order = api.new_order(api.new_customer(), [(api.new_product(stock=5)["id"], 1)])
    key = uuid.uuid4().hex
    path = f"/orders/{order['id']}/confirm"
    scope = IdempotentRequest.build(
        caller="user:1",
        route="POST /orders/{order_id}/confirm",
        key=key,
        path_params={"order_id": order["id"]},
        body={},
    )
    with db.connect() as holder:  # plays a twin still inside its transaction
        holder.execute(
            text(
                "INSERT INTO idempotency_keys (scope_hash, caller, route, idempotency_key, request_fingerprint, "
                "created_at, expires_at) VALUES (:h, 'user:1', 'POST /orders/{order_id}/confirm', :k, :f, NOW(6), "
                "NOW(6) + INTERVAL 1 DAY)"
            ),
            {"h": scope.scope_hash, "k": key, "f": scope.fingerprint},
        )
        response = impatient.post(path, headers={**api.admin, "Idempotency-Key": key})
        assert_problem(response, 409, "idempotency_in_flight")
        assert response.headers["Retry-After"]
        holder.rollback()
    assert "transaction_retry" not in capfd.readouterr().out  # one lock wait, not one per attempt
    assert api.get_order(order["id"])["status"] == "CREATED"
    retry = impatient.post(path, headers={**api.admin, "Idempotency-Key": key})
    assert retry.status_code == 200 and retry.get_json()["status"] == "CONFIRMED"


# --- restock ------------------------------------------------------------------------------------


def restock(api, product_id: int, qty: int, key: str | None = None):
    headers = {**api.admin, **({"Idempotency-Key": key} if key else {})}
    return api.client.post(f"/products/{product_id}/restock", json={"qty": qty}, headers=headers)


def test_a_retried_restock_with_a_key_adds_the_stock_once(api, db):
    product = api.new_product(stock=5)
    key = uuid.uuid4().hex
    first = restock(api, product["id"], 7, key)
    assert first.status_code == 200 and first.get_json()["stock"] == 12
    again = restock(api, product["id"], 7, key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert stock_of(db, product["id"]) == 12
    other = api.new_product(stock=1)
    before = snapshot(db)
    assert_problem(restock(api, product["id"], 8, key), 422, "idempotency_key_mismatch")
    assert_problem(restock(api, other["id"], 7, key), 422, "idempotency_key_mismatch")
    assert snapshot(db) == before
    # Without a key every call is a new delivery.
    assert restock(api, product["id"], 1).get_json()["stock"] == 13
    assert restock(api, product["id"], 1).get_json()["stock"] == 14


def test_a_failed_restock_keeps_no_key(api, db):
    key = uuid.uuid4().hex
    assert_problem(restock(api, 987654321, 3, key), 404, "not_found")
    product = api.new_product(stock=0)
    assert restock(api, product["id"], 3, key).get_json()["stock"] == 3


# --- answers the BFF stores -----------------------------------------------------------------------


def store(api, key: str, body, *, fingerprint: str = "f1", status: int = 201, headers=None):
    return api.client.put(
        f"/internal/stored-responses/{key}",
        json={"fingerprint": fingerprint, "status": status, "body": body},
        headers=headers or api.orchestrator,
    )


def test_the_bff_stores_its_answer_once_and_reads_it_back(api, db):
    key = uuid.uuid4().hex
    assert_problem(api.client.get(f"/internal/stored-responses/{key}", headers=api.orchestrator), 404, "not_found")
    answer = {"success": True, "data": {"order": {"id": 7}}, "note": "ünïcode"}
    first = store(api, key, answer)
    assert first.status_code == 201
    assert first.get_json() == {"key": key, "fingerprint": "f1", "status": 201, "body": answer, "replayed": False}

    second = store(api, key, {"success": True, "data": {"order": {"id": 8}}})  # a twin's later answer
    assert second.status_code == 200
    assert second.get_json()["body"] == answer and second.get_json()["replayed"] is True

    read = api.client.get(f"/internal/stored-responses/{key}", headers=api.orchestrator)
    assert read.status_code == 200
    stored = read.get_json()
    assert (stored["body"], stored["status"], stored["fingerprint"]) == (answer, 201, "f1") and stored["expires_at"]

    before = snapshot(db)
    assert_problem(store(api, key, answer, fingerprint="f2"), 422, "idempotency_key_mismatch")
    assert snapshot(db) == before


def test_storing_an_answer_is_one_round_trip(app, api):
    with round_trips(app) as sent:
        assert store(api, uuid.uuid4().hex, {"mine": 1}).status_code == 201
    assert sent == ["INSERT;COMMIT"]  # the answer with its key, sent with the COMMIT


def test_stored_answers_are_scoped_to_the_caller_and_separate_from_other_keys(api, db, tokens):
    key = uuid.uuid4().hex
    # An order created with the same key by the same caller is another scope.
    customer = api.new_customer()
    product = api.new_product(stock=5)
    assert api.create_order(customer, [(product["id"], 1)], key=key, headers=api.orchestrator).status_code == 201
    assert store(api, key, {"mine": 1}).status_code == 201
    read = api.client.get(f"/internal/stored-responses/{key}", headers=api.orchestrator).get_json()
    assert read["body"] == {"mine": 1}


def test_stored_answers_expire_with_the_other_keys(api, db):
    key = uuid.uuid4().hex
    store(api, key, {"old": True})
    execute(
        db, "UPDATE idempotency_keys SET expires_at = expires_at - INTERVAL 2 DAY WHERE idempotency_key = :k", k=key
    )
    assert_problem(api.client.get(f"/internal/stored-responses/{key}", headers=api.orchestrator), 404, "not_found")
    purged = api.client.post("/internal/idempotency-keys/purge", headers=api.sweeper).get_json()
    assert purged["purged"] >= 1
    assert store(api, key, {"new": True}).status_code == 201
