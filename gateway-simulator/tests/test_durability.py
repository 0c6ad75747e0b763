"""The ledger is durable: a charge survives a restart, and a crash, of the process, and its key
replays it afterwards without a new entry, even when the first answer was lost."""

from __future__ import annotations

import pytest
import requests

from gateway_simulator.testing import SimulatorProcess

from conftest import charge, new_key


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "crash"])
def test_a_charge_survives_the_process_and_its_key_still_replays(tmp_path, kill):
    with SimulatorProcess(tmp_path / "ledger.db") as gateway:
        key, lost_key = new_key(), new_key()
        first = charge(gateway, key, 21)
        gateway.set_faults(lose_answer_every_n=1)
        with pytest.raises(requests.ConnectionError):
            charge(gateway, lost_key, 22)
        gateway.restart(kill=kill)

        assert gateway.faults()["faults"]["lose_answer_every_n"] == 0  # faults are not persisted
        again = charge(gateway, key, 21)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        recovered = charge(gateway, lost_key, 22)
        assert recovered.status_code == 200 and recovered.headers["Idempotent-Replayed"] == "true"
        assert [e["idempotency_key"] for e in gateway.all_charges()] == [key, lost_key]
