"""The main flows through the BFF, each order settled through SQS and the payments Lambda.

One stack for the module: payments `always_succeed` (switched to `always_fail` for one test by
restarting the payments poller), a short reservation TTL and a 1 s sweeper.
"""

from __future__ import annotations

import threading
import uuid

import pytest
import requests
from e2e_support import HTTP_TIMEOUT, applied_outcomes, running_stack, wait_for

RESERVATION_TTL_SECONDS = 6


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    env = {"RESERVATION_TTL_SECONDS": str(RESERVATION_TTL_SECONDS), "PAYMENT_GRACE_SECONDS": "60"}
    with running_stack(tmp_path_factory.mktemp("flows") / "log", env=env) as stack:
        yield stack


def test_login_list_products_create_and_confirm_then_paid(stack, admin, user):
    assert user.user["role"] == "customer" and user.user["customer_id"]
    product = admin.new_product(stock=50, price_cents=1_250)
    listed = user.ok("GET", "/products", params={"limit": 100})["data"]
    assert {"WIDGET-001", product["sku"]} <= {p["sku"] for p in listed}

    answer = user.place([{"product_id": product["id"], "qty": 3}])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["success"] is True and body["payment_event"] == {"status": "published"}
    order = body["data"]["order"]
    assert body["data"]["customer"]["id"] == user.user["customer_id"] == order["customer_id"]
    assert (order["status"], order["payment_status"], order["total_cents"]) == ("CONFIRMED", "PENDING", 3_750)
    assert admin.stock(product["id"]) == 47

    paid = user.wait_for_order(order["id"], {"PAID", "CANCELED"})
    assert (paid["status"], paid["payment_status"]) == ("PAID", "SUCCEEDED")
    assert paid["paid_at"] and paid["paid_at"].endswith("Z")
    assert admin.stock(product["id"]) == 47
    assert len(applied_outcomes(stack, order["id"])) == 1
    (charge,) = stack.gateway.charges(order["id"])  # the provider charged the order once, for its total
    assert (charge["outcome"], charge["amount_cents"]) == ("succeeded", 3_750)


def test_declined_payment_cancels_the_order_and_returns_the_stock(stack, admin, user):
    product = admin.new_product(stock=10)
    stack.stack.restart("gateway", env={"PAYMENT_SIMULATION_MODE": "always_fail"})
    try:
        answer = user.place([{"product_id": product["id"], "qty": 4}])
        assert answer.status_code == 201, answer.text
        order_id = answer.json()["data"]["order"]["id"]
        canceled = user.wait_for_order(order_id, {"PAID", "CANCELED"})
    finally:
        stack.stack.restart("gateway", env={"PAYMENT_SIMULATION_MODE": "always_succeed"})
    assert (canceled["status"], canceled["payment_status"]) == ("CANCELED", "FAILED")
    assert canceled["cancel_reason"] == "payment_failed" and canceled["paid_at"] is None
    assert admin.stock(product["id"]) == 10
    assert [c["outcome"] for c in stack.gateway.charges(order_id)] == ["failed"]


def test_cart_checkout_settles_and_empties_the_cart(stack, admin, user):
    first, second = admin.new_product(stock=20, price_cents=500), admin.new_product(stock=20, price_cents=700)
    user.ok("PUT", f"/cart/items/{first['id']}", json={"qty": 2})
    cart = user.ok("PUT", f"/cart/items/{second['id']}", json={"qty": 1})
    assert cart["total_cents"] == 1_700 and len(cart["items"]) == 2

    answer = user.request("POST", "/checkout", json={}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert answer.status_code == 201, answer.text
    order = answer.json()["data"]["order"]
    assert {(i["product_id"], i["qty"]) for i in order["items"]} == {(first["id"], 2), (second["id"], 1)}
    assert order["total_cents"] == 1_700
    assert user.ok("GET", "/cart")["items"] == []

    paid = user.wait_for_order(order["id"], {"PAID", "CANCELED"})
    assert paid["status"] == "PAID"
    assert (admin.stock(first["id"]), admin.stock(second["id"])) == (18, 19)
    assert user.ok("GET", "/cart")["items"] == []


def test_ten_parallel_retries_with_one_key_make_one_order(stack, admin, user):
    product = admin.new_product(stock=100)
    key = f"parallel-{uuid.uuid4().hex}"
    barrier = threading.Barrier(10)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def send() -> None:
        barrier.wait(timeout=HTTP_TIMEOUT)
        answer = user.place([{"product_id": product["id"], "qty": 7}], key=key)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=2 * HTTP_TIMEOUT)
    assert len(answers) == 10
    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers if a.status_code != 201]
    order_ids = {a.json()["data"]["order"]["id"] for a in answers}
    assert len(order_ids) == 1
    (order_id,) = order_ids
    assert len({a.json()["correlation_id"] for a in answers}) == 1

    user.wait_for_order(order_id, {"PAID"})
    assert admin.stock(product["id"]) == 93
    orders = admin.ok("GET", "/orders", params={"customer_id": user.user["customer_id"], "limit": 100})["data"]
    with_product = [o for o in orders if any(i["product_id"] == product["id"] for i in o["items"])]
    assert [o["id"] for o in with_product] == [order_id]
    # Every attempt publishes (one may have died before it could); the outcome applies once.
    assert len(applied_outcomes(stack, order_id)) == 1


def test_request_id_reaches_every_process_log(stack, admin, user):
    product = admin.new_product(stock=5)
    request_id = f"e2e-trace-{uuid.uuid4().hex}"
    answer = user.place([{"product_id": product["id"], "qty": 1}], **{"X-Request-Id": request_id})
    assert answer.status_code == 201 and answer.headers["X-Request-Id"] == request_id
    order_id = answer.json()["data"]["order"]["id"]
    user.wait_for_order(order_id, {"PAID"})

    def lines(process: str) -> list[dict]:
        return [r for r in stack.records(process) if r.get("request_id") == request_id]

    def logged_everywhere() -> bool:
        # The outcome's log line can reach the file a moment after the order reads PAID.
        outcome = f"/internal/orders/{order_id}/payment-outcome"
        return all(lines(p) for p in ("bff", "customers-service", "payments", "gateway")) and any(
            r.get("path") == outcome for r in lines("orders-service")
        )

    wait_for(logged_everywhere, timeout=10, what=f"{request_id} in every log")
    assert {r["path"] for r in lines("customers-service") if r.get("event") == "http_request"} == {
        f"/internal/customers/{user.user['customer_id']}"
    }
    orders_paths = {r["path"] for r in lines("orders-service") if r.get("event") == "http_request"}
    assert {"/internal/placements", f"/internal/orders/{order_id}/payment-outcome"} <= orders_paths
    assert not {"/orders", f"/orders/{order_id}/confirm"} & orders_paths  # one call creates and confirms
    assert any(r.get("message") == "payment_outcome_recorded" for r in lines("payments"))
    assert any(r.get("message") == "http_request" for r in lines("bff"))
    charged = [r for r in lines("gateway") if r.get("event") == "http_request" and r["path"] == "/v1/charges"]
    assert charged and charged[0]["order_id"] == order_id and charged[0]["status"] == 200
    assert all(r["timestamp"].endswith("Z") for p in ("bff", "payments", "orders-service") for r in lines(p))


def test_reservation_left_created_is_expired_by_the_sweeper(stack, admin, user):
    product = admin.new_product(stock=30)
    # The BFF always confirms; a client of orders-service itself can leave an order CREATED.
    created = requests.post(
        f"{stack.orders_url}/orders",
        json={"items": [{"product_id": product["id"], "qty": 5}]},
        headers=user.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "CREATED" and admin.stock(product["id"]) == 25

    expired = user.wait_for_order(order["id"], {"CANCELED"}, timeout=RESERVATION_TTL_SECONDS + 20)
    assert expired["cancel_reason"] == "reservation_expired" and expired["payment_status"] == "NOT_REQUESTED"
    assert admin.stock(product["id"]) == 30


def test_cancel_through_the_bff_replays_with_its_key(stack, admin, user):
    product = admin.new_product(stock=10)
    created = requests.post(
        f"{stack.orders_url}/orders",
        json={"items": [{"product_id": product["id"], "qty": 4}]},
        headers=user.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    key = {"Idempotency-Key": f"cancel-{uuid.uuid4().hex}"}
    first = user.request("POST", f"/orders/{order_id}/cancel", json={}, headers=key)
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["cancel_reason"]) == ("CANCELED", "requested")
    again = user.request("POST", f"/orders/{order_id}/cancel", json={}, headers=key)
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json() == first.json()
    assert admin.stock(product["id"]) == 10
    other = user.request("POST", f"/orders/{order_id}/cancel", json={}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert other.status_code == 409 and other.json()["code"] == "invalid_state_transition"


def test_admin_routes_and_customer_scoping_through_the_bff(stack, admin, user):
    product = admin.new_product(stock=1, price_cents=100)
    assert admin.ok("PATCH", f"/products/{product['id']}", json={"price_cents": 150})["price_cents"] == 150
    assert admin.ok("POST", f"/products/{product['id']}/restock", json={"qty": 4})["stock"] == 5
    denied = user.request("POST", f"/products/{product['id']}/restock", json={"qty": 4})
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"

    email = f"{uuid.uuid4().hex[:10]}@example.com"
    other = admin.ok("POST", "/customers", 201, json={"name": "Other Buyer", "email": email})
    assert admin.ok("GET", "/customers", params={"search": email})["data"][0]["id"] == other["id"]
    assert admin.ok("PATCH", f"/customers/{other['id']}", json={"phone": "+1 555 0100"})["phone"] == "+1 555 0100"
    assert user.ok("GET", f"/customers/{user.user['customer_id']}")["id"] == user.user["customer_id"]
    assert user.request("GET", f"/customers/{other['id']}").status_code == 404

    # An order of another customer does not exist for the demo user.
    order = admin.request(
        "POST",
        "/orchestrator/create-and-confirm-order",
        json={"customer_id": other["id"], "items": [{"product_id": product["id"], "qty": 1}]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert order.status_code == 201, order.text
    order_id = order.json()["data"]["order"]["id"]
    assert user.request("GET", f"/orders/{order_id}").status_code == 404
    assert all(o["customer_id"] == user.user["customer_id"] for o in user.ok("GET", "/orders")["data"])
    named = user.place([{"product_id": product["id"], "qty": 1}])  # fine: acts for itself
    assert named.status_code == 201
    foreign = user.request(
        "POST",
        "/orchestrator/create-and-confirm-order",
        json={"customer_id": other["id"], "items": [{"product_id": product["id"], "qty": 1}]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert foreign.status_code == 403
    short = user.place([{"product_id": product["id"], "qty": 50}])
    assert short.status_code == 409 and short.json()["code"] == "insufficient_stock"
    assert short.headers["Content-Type"] == "application/problem+json"
    assert admin.request("DELETE", f"/customers/{other['id']}").status_code == 204
    assert admin.request("GET", f"/customers/{other['id']}").status_code == 404
    # The delete was reported to orders-service before the 204: an order placed on orders-service
    # directly is refused now, not once its customer cache expires.
    direct = requests.post(
        f"{stack.orders_url}/orders",
        json={"customer_id": other["id"], "items": [{"product_id": product["id"], "qty": 1}]},
        headers=admin.headers(),
        timeout=HTTP_TIMEOUT,
    )
    assert direct.status_code == 404 and direct.json()["resource"] == "customer", direct.text
    assert not [
        r for r in stack.records("customers-service") if r.get("event") == "customer_delete_notification_failed"
    ]
    wait_for(
        lambda: any(
            r.get("path") == f"/internal/customers/{other['id']}/deleted" and r.get("status") == 200
            for r in stack.records("orders-service")
        ),
        timeout=10,
        what="the deletion report in orders-service's log",
    )
    assert admin.wait_for_order(order_id, {"PAID"})["customer_id"] == other["id"]  # its orders stay
