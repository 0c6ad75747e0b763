"""The simulator's API over real HTTP against a real process: one charge per key, replays, key
reuse, the in-flight 409, auth, malformed input (nothing charged), the ledger listing."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import charge, new_key


def assert_error(answer: requests.Response, status: int, type_: str, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert error["type"] == type_ and error["message"]
    if code:
        assert error["code"] == code, error
    return error


def test_a_charge_is_made_once_and_its_key_replays_the_first_answer(gateway, order_id):
    key = new_key()
    first = charge(gateway, key, order_id, amount=1_999, **{"metadata[customer_id]": "42"})
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    body = first.json()
    assert body["id"].startswith("ch_") and body["object"] == "charge"
    assert (body["amount"], body["currency"], body["status"], body["paid"]) == (1_999, "usd", "succeeded", True)
    assert body["metadata"] == {"order_id": str(order_id), "customer_id": "42"}

    again = charge(gateway, key, order_id, amount=1_999, **{"metadata[customer_id]": "42"})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content

    (entry,) = gateway.charges(order_id)
    assert entry["id"] == body["id"] and entry["idempotency_key"] == key
    assert (entry["order_id"], entry["customer_id"], entry["amount_cents"], entry["outcome"]) == (
        order_id,
        42,
        1_999,
        "succeeded",
    )
    assert entry["created_at"].endswith("Z")
    retrieved = requests.get(f"{gateway.base_url}/v1/charges/{body['id']}", headers=gateway.headers, timeout=10)
    assert retrieved.json() == body


def test_a_new_key_for_the_same_order_is_a_new_charge(gateway, order_id):
    first, second = (charge(gateway, new_key(), order_id).json()["id"] for _ in range(2))
    assert first != second
    assert [e["id"] for e in gateway.charges(order_id)] == [first, second]


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow"])
def test_parallel_requests_with_one_key_make_one_charge(gateway, order_id, slow):
    if slow:  # every racer arrives while the first is in flight
        gateway.set_faults(slow_seconds=2.0)
    key = new_key()
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: charge(gateway, key, order_id), range(12)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {200, 409} and statuses.count(200) >= 1, statuses
    assert len({a.json()["id"] for a in answers if a.status_code == 200}) == 1
    for conflict in (a for a in answers if a.status_code == 409):
        assert_error(conflict, 409, "idempotency_error", "idempotency_key_in_flight")
        assert conflict.headers["Retry-After"] == "1"
    if slow:  # racers that came while the first was in flight were told so (how many: the scheduler's call)
        assert statuses.count(409) >= 1
    (entry,) = gateway.charges(order_id)
    after = charge(gateway, key, order_id)
    assert after.headers["Idempotent-Replayed"] == "true" and after.json()["id"] == entry["id"]


@pytest.mark.parametrize(
    "change",
    [{"amount": 501}, {"currency": "eur"}, {"metadata[customer_id]": "7"}, {"description": "another"}],
    ids=["amount", "currency", "metadata", "description"],
)
def test_a_key_reused_with_other_parameters_is_refused(gateway, order_id, change):
    key = new_key()
    first = charge(gateway, key, order_id)
    params = {"amount": 500, **change}
    reused = charge(gateway, key, order_id, **params)
    assert_error(reused, 400, "idempotency_error", "idempotency_key_reused")
    assert [e["id"] for e in gateway.charges(order_id)] == [first.json()["id"]]


def test_the_api_key_is_required_everywhere_but_health(gateway, order_id):
    for answer in (
        charge(gateway, new_key(), order_id, api_key="sk_test_wrong_key_0000"),
        requests.post(f"{gateway.base_url}/v1/charges", data={"amount": "5"}, timeout=10),
        requests.get(f"{gateway.base_url}/v1/charges", timeout=10),
        requests.get(f"{gateway.base_url}/v1/charges", headers={"Authorization": "Bearer "}, timeout=10),
        requests.get(f"{gateway.base_url}/v1/simulator/faults", timeout=10),
        requests.post(f"{gateway.base_url}/v1/simulator/faults", json={"error_every_n": 1}, timeout=10),
    ):
        assert_error(answer, 401, "invalid_request_error")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert gateway.charges(order_id) == []
    assert gateway.faults()["faults"]["error_every_n"] == 0

    basic = base64.b64encode(f"{gateway.api_key}:".encode()).decode()  # curl -u <key>:
    listed = requests.get(f"{gateway.base_url}/v1/charges", headers={"Authorization": f"Basic {basic}"}, timeout=10)
    assert listed.status_code == 200
    health = requests.get(f"{gateway.base_url}/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok", "mode": "always_succeed"}


MALFORMED = {
    "no amount": ({"amount": ""}, "parameter_missing", "amount"),
    "amount not a number": ({"amount": "12.50"}, "parameter_invalid_integer", "amount"),
    "amount zero": ({"amount": "0"}, "parameter_invalid_integer", "amount"),
    "amount negative": ({"amount": "-5"}, "parameter_invalid_integer", "amount"),
    "currency": ({"currency": "dollars"}, "parameter_invalid_string", "currency"),
    "no order id": ({"metadata[order_id]": ""}, "parameter_missing", "metadata[order_id]"),
    "order id not a number": ({"metadata[order_id]": "abc"}, "parameter_invalid_integer", "metadata[order_id]"),
    "customer id not a number": ({"metadata[customer_id]": "x"}, "parameter_invalid_integer", "metadata[customer_id]"),
    "unknown parameter": ({"source": "tok_visa"}, "parameter_unknown", "source"),
    "metadata value too long": ({"metadata[note]": "x" * 501}, "parameter_invalid_string", "metadata[note]"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_parameters_are_a_clear_400_and_charge_nothing(gateway, order_id, case):
    change, code, param = MALFORMED[case]
    answer = charge(gateway, new_key(), order_id, **change)
    error = assert_error(answer, 400, "invalid_request_error", code)
    assert error["param"] == param
    assert gateway.charges(order_id) == []


def test_malformed_requests_are_refused_before_anything_is_charged(gateway, order_id):
    url, auth = f"{gateway.base_url}/v1/charges", gateway.headers
    form = {"amount": "500", "currency": "usd", "metadata[order_id]": str(order_id)}
    cases = [
        (charge(gateway, None, order_id), 400, "idempotency_key_required"),
        (charge(gateway, "x" * 256, order_id), 400, "idempotency_key_invalid"),
        (requests.post(url, json=form, headers={**auth, "Idempotency-Key": new_key()}, timeout=10), 400, None),
        (
            requests.post(
                url,
                data="amount=5&amount=6",
                headers={**auth, "Idempotency-Key": new_key(), "Content-Type": "application/x-www-form-urlencoded"},
                timeout=10,
            ),
            400,
            "parameter_duplicated",
        ),
        (
            requests.post(
                url,
                data=f"amount=5&currency=usd&metadata[order_id]={order_id}&metadata[order_id]=1",
                headers={
                    **auth,
                    "Idempotency-Key": new_key(),
                    "Content-Type": "application/x-www-form-urlencoded",
                },
                timeout=10,
            ),
            400,
            "parameter_duplicated",
        ),
        (
            requests.post(
                url,
                data=b"\xff\xfe=1",
                headers={**auth, "Idempotency-Key": new_key(), "Content-Type": "application/x-www-form-urlencoded"},
                timeout=10,
            ),
            400,
            "body_invalid",
        ),
        (
            requests.post(url, data={"a": "x" * 70_000}, headers={**auth, "Idempotency-Key": new_key()}, timeout=10),
            413,
            "body_too_large",
        ),
    ]
    for answer, status, code in cases:
        assert_error(answer, status, "invalid_request_error", code)
    json_answer = cases[2][0].json()["error"]
    assert json_answer["code"] == "content_type_invalid" and "form-encoded" in json_answer["message"]
    assert gateway.charges(order_id) == []


def test_unknown_routes_and_methods(gateway):
    missing = requests.get(f"{gateway.base_url}/v1/refunds", headers=gateway.headers, timeout=10)
    assert_error(missing, 404, "invalid_request_error", "resource_missing")
    wrong = requests.delete(f"{gateway.base_url}/v1/charges", headers=gateway.headers, timeout=10)
    assert_error(wrong, 405, "invalid_request_error", "method_not_allowed")
    assert wrong.headers["Allow"] == "GET, POST"
    unknown = requests.get(f"{gateway.base_url}/v1/charges/ch_nope", headers=gateway.headers, timeout=10)
    assert_error(unknown, 404, "invalid_request_error", "resource_missing")


def test_the_ledger_lists_by_order_and_pages_newest_first(gateway, order_id):
    ids = [charge(gateway, new_key(), order_id + n).json()["id"] for n in range(3)]
    for n, charge_id in enumerate(ids):
        assert [e["id"] for e in gateway.charges(order_id + n)] == [charge_id]

    def page(**params):
        answer = requests.get(f"{gateway.base_url}/v1/charges", params=params, headers=gateway.headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    first = page(limit=2)
    assert first["object"] == "list" and first["has_more"] is True
    assert [e["id"] for e in first["data"]] == [ids[2], ids[1]]
    second = page(limit=2, starting_after=ids[1])
    assert second["data"][0]["id"] == ids[0]
    everything = gateway.all_charges()
    assert [e["id"] for e in everything][-3:] == ids and len({e["id"] for e in everything}) == len(everything)

    for params, code in (
        ({"limit": "0"}, "parameter_invalid_integer"),
        ({"limit": "101"}, "parameter_invalid_integer"),
        ({"order_id": "x"}, "parameter_invalid_integer"),
        ({"order_id": "1", "limit": "5"}, "parameter_unknown"),
        ({"starting_after": "ch_nope"}, "resource_missing"),
        ({"customer": "1"}, "parameter_unknown"),
    ):
        answer = requests.get(f"{gateway.base_url}/v1/charges", params=params, headers=gateway.headers, timeout=10)
        assert_error(answer, 400, "invalid_request_error", code)


def test_every_request_is_one_json_log_line_with_its_request_id(gateway, order_id):
    key = new_key()
    charge(gateway, key, order_id)
    requests.post(
        f"{gateway.base_url}/v1/charges",
        data={"amount": "500", "currency": "usd", "metadata[order_id]": str(order_id)},
        headers={**gateway.headers, "Idempotency-Key": key, "X-Request-Id": "req-from-payments"},
        timeout=10,
    )
    mine = gateway.log_records(2, {"idempotency_key": key})
    assert [(r["event"], r["status"], r["replayed"]) for r in mine] == [
        ("http_request", 200, False),
        ("http_request", 200, True),
    ]
    assert mine[1]["request_id"] == "req-from-payments" and mine[1]["order_id"] == order_id
    assert all(gateway.api_key not in line for line in gateway.log_path.read_text().splitlines())
