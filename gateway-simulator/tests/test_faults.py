"""Injected faults, over real HTTP: 5xx (nothing charged), slow answers (the key stays in flight),
lost answers (charged, then the connection dropped); set at start from the environment or at
run time through the authenticated control endpoint."""

from __future__ import annotations

import time

import pytest
import requests

from gateway_simulator.testing import SimulatorProcess

from conftest import charge, new_key


def test_every_nth_request_fails_with_a_5xx_and_charges_nothing(gateway, order_id):
    state = gateway.set_faults(error_every_n=2, error_status=503)
    assert state["faults"]["error_every_n"] == 2 and state["counters"]["charge_requests"] == 0
    keys = [new_key() for _ in range(4)]
    answers = [charge(gateway, key, order_id) for key in keys]
    assert [a.status_code for a in answers] == [200, 503, 200, 503]
    failed = answers[1].json()["error"]
    assert (failed["type"], failed["code"]) == ("api_error", "simulated_failure")
    assert answers[1].headers["Retry-After"] == "1"
    assert {e["idempotency_key"] for e in gateway.charges(order_id)} == {keys[0], keys[2]}
    gateway.set_faults()
    retried = charge(gateway, keys[1], order_id)  # the failed key was never used: it charges now
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert len(gateway.charges(order_id)) == 3


def test_an_error_rate_of_one_fails_every_request(gateway, order_id):
    gateway.set_faults(error_rate=1.0)
    assert {charge(gateway, new_key(), order_id).status_code for _ in range(5)} == {500}
    assert gateway.charges(order_id) == []


def test_a_slow_charge_keeps_its_key_in_flight_until_it_is_committed(gateway, order_id):
    gateway.set_faults(slow_seconds=2)
    key = new_key()
    with pytest.raises(requests.Timeout):
        charge(gateway, key, order_id, timeout=0.3)  # the client gives up; the charge goes on
    in_flight = charge(gateway, key, order_id)
    assert in_flight.status_code == 409 and in_flight.json()["error"]["code"] == "idempotency_key_in_flight"
    gateway.set_faults()

    def replayed():
        answer = charge(gateway, key, order_id)
        return answer if answer.status_code == 200 else None

    answer = wait_for(replayed)
    assert answer.headers["Idempotent-Replayed"] == "true"
    assert [e["id"] for e in gateway.charges(order_id)] == [answer.json()["id"]]


def test_every_nth_new_charge_is_committed_then_its_answer_lost(gateway, order_id):
    gateway.set_faults(lose_answer_every_n=3)
    keys = [new_key() for _ in range(6)]
    outcomes = []
    for key in keys:
        try:
            outcomes.append(charge(gateway, key, order_id).status_code)
        except requests.ConnectionError:
            outcomes.append("lost")
        charge_again = charge(gateway, keys[0], order_id)  # replays do not count as new charges
        assert charge_again.status_code == 200
    assert outcomes == [200, 200, "lost", 200, 200, "lost"]
    ledger = gateway.charges(order_id)
    assert [e["idempotency_key"] for e in ledger] == keys  # every charge made, lost answers included
    retry = charge(gateway, keys[2], order_id)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == ledger[2]["id"] and len(gateway.charges(order_id)) == 6
    assert gateway.faults()["counters"]["committed_charges"] == 6


def test_the_control_endpoint_validates_and_replaces_the_whole_fault_set(gateway):
    gateway.set_faults(error_every_n=5, slow_seconds=1)
    assert gateway.set_faults(lose_answer_every_n=3)["faults"] == {
        "error_every_n": 0,
        "error_rate": 0.0,
        "error_status": 500,
        "slow_every_n": 1,
        "slow_seconds": 0.0,
        "lose_answer_every_n": 3,
    }
    url = f"{gateway.base_url}/v1/simulator/faults"
    bad = requests.post(
        url,
        json={"error_every_n": -1, "error_rate": 2, "error_status": 404, "lose_answer_every_n": "x", "nope": 1},
        headers=gateway.headers,
        timeout=10,
    )
    assert bad.status_code == 400
    assert set(bad.json()["error"]["errors"]) == {
        "error_every_n",
        "error_rate",
        "error_status",
        "lose_answer_every_n",
        "nope",
    }
    not_json = requests.post(
        url, data="[1", headers={**gateway.headers, "Content-Type": "application/json"}, timeout=10
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "malformed_json"
    assert gateway.faults()["faults"]["lose_answer_every_n"] == 3  # refused changes change nothing


def test_faults_can_be_set_at_start_from_the_environment(tmp_path):
    env = {"GATEWAY_FAULT_LOSE_ANSWER_EVERY_N": "1", "GATEWAY_FAULT_ERROR_EVERY_N": "3"}
    with SimulatorProcess(tmp_path / "ledger.db", env=env) as gateway:
        assert gateway.faults()["faults"]["lose_answer_every_n"] == 1
        key = new_key()
        with pytest.raises(requests.ConnectionError):
            charge(gateway, key, 5)
        assert charge(gateway, key, 5).headers["Idempotent-Replayed"] == "true"
        assert charge(gateway, key, 5).status_code == 500  # the third request
        assert len(gateway.charges(5)) == 1


def wait_for(probe, timeout: float = 15, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(interval)
