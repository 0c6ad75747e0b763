"""`PAYMENT_SIMULATION_MODE`: each mode in its own simulator process, with what each decides,
how a decline looks (Stripe's 402 with the declined charge, recorded in the ledger) and that a
mode's decision is stable per order (a new key for the same order gets the same answer)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway_simulator.decisions import stable_draw
from gateway_simulator.testing import SimulatorProcess

from conftest import charge, new_key


def simulator(tmp_path, mode: str, **env: str) -> SimulatorProcess:
    ledger = tmp_path / f"{mode}-{len(list(tmp_path.glob('*.db')))}.db"  # a fresh ledger each
    return SimulatorProcess(ledger, mode=mode, env=env)


def test_always_fail_declines_like_stripe_and_records_the_declined_charge(tmp_path):
    with simulator(tmp_path, "always_fail") as gateway:
        key = new_key()
        declined = charge(gateway, key, 11)
        assert declined.status_code == 402
        error = declined.json()["error"]
        assert (error["type"], error["code"], error["decline_code"]) == (
            "card_error",
            "card_declined",
            "simulated_decline",
        )
        (entry,) = gateway.charges(11)
        assert (entry["id"], entry["outcome"], entry["decline_code"]) == (
            error["charge"],
            "failed",
            "simulated_decline",
        )
        replay = charge(gateway, key, 11)
        assert replay.status_code == 402 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.content == declined.content and len(gateway.charges(11)) == 1


def test_rule_based_declines_amounts_over_the_limit(tmp_path):
    with simulator(tmp_path, "rule_based", PAYMENT_RULE_MAX_AMOUNT_CENTS="1000") as gateway:
        assert charge(gateway, new_key(), 1, amount=1_000).status_code == 200
        over = charge(gateway, new_key(), 2, amount=1_001)
        assert over.status_code == 402 and over.json()["error"]["decline_code"] == "amount_over_limit"
        assert [e["outcome"] for e in gateway.charges(1) + gateway.charges(2)] == ["succeeded", "failed"]


def test_random_is_a_stable_draw_per_order_at_the_configured_rate(tmp_path):
    orders = range(1, 121)
    with simulator(tmp_path, "random", PAYMENT_SUCCESS_RATE="0.5") as gateway:
        first = {order: charge(gateway, new_key(), order).status_code for order in orders}
        again = {order: charge(gateway, new_key(), order).status_code for order in orders}  # new keys
        assert first == again
        assert set(first.values()) == {200, 402}
        assert first == {order: 200 if stable_draw(order) < 0.5 else 402 for order in orders}
        assert 0.35 < list(first.values()).count(200) / len(first) < 0.65
        declines = [e["decline_code"] for o in orders for e in gateway.charges(o) if e["outcome"] == "failed"]
        assert set(declines) == {"simulated_random_decline"}
    with simulator(tmp_path, "random", PAYMENT_SUCCESS_RATE="1") as everything:
        assert {charge(everything, new_key(), order).status_code for order in range(500, 530)} == {200}
    with simulator(tmp_path, "random", PAYMENT_SUCCESS_RATE="0") as none:
        assert {charge(none, new_key(), order).status_code for order in range(500, 530)} == {402}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PAYMENT_SIMULATION_MODE": "sometimes"}, "PAYMENT_SIMULATION_MODE"),
        ({"PAYMENT_SUCCESS_RATE": "1.5"}, "PAYMENT_SUCCESS_RATE"),
        ({"PAYMENT_GATEWAY_API_KEY": ""}, "PAYMENT_GATEWAY_API_KEY"),
        ({"PAYMENT_GATEWAY_API_KEY": "short"}, "PAYMENT_GATEWAY_API_KEY"),
        ({"GATEWAY_FAULT_LOSE_ANSWER_EVERY_N": "often"}, "GATEWAY_FAULT_LOSE_ANSWER_EVERY_N"),
        ({"GATEWAY_FAULT_ERROR_STATUS": "404"}, "GATEWAY_FAULT_ERROR_STATUS"),
    ],
)
def test_bad_configuration_refuses_to_start(tmp_path, env, message):
    process = SimulatorProcess(tmp_path / "ledger.db", env=env)
    result = subprocess.run(
        [sys.executable, "-m", "gateway_simulator"], env=process.env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "ledger.db").exists()
