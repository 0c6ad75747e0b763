"""Login throttling (services/throttle.py, docs/auth.md): 5 failures per username or 20 per client
address within 15 minutes, then 429 with Retry-After and exponential back-off; a success resets
the username's count; existing and unknown usernames are treated alike; the counts are shared
by every worker (the customers database)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from customers_server import customers_server
from sqlalchemy import text

from customers_service.config import LoginThrottleSettings
from customers_service.services.throttle import backoff_seconds
from servicekit.timeutil import utcnow

from conftest import assert_problem, bearer

PASSWORD = "correct horse battery"
BFF = "orchestrator"


@pytest.fixture
def user(client, admin_headers, make_customer):
    customer = make_customer()
    body = {"username": "buyer.one", "password": PASSWORD, "role": "customer", "customer_id": customer["id"]}
    response = client.post("/users", json=body, headers=admin_headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def login(client, username, password, address="10.0.0.1"):
    return client.post(
        "/auth/login", json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def answer(response) -> tuple:
    """What a client can see of an answer, request ids aside."""
    body = response.get_json()
    body.pop("request_id", None)
    return response.status_code, response.headers.get("Retry-After"), body


def test_five_failures_then_429_even_for_the_right_password(client, user):
    for _ in range(5):
        assert_problem(login(client, "buyer.one", "wrong password"), 401, "invalid_credentials")
    blocked = login(client, "buyer.one", PASSWORD)
    assert_problem(blocked, 429, "too_many_attempts")
    assert 1 <= int(blocked.headers["Retry-After"]) <= 30
    # Another username from the same address is not affected by this username's block.
    assert_problem(login(client, "someone.else", "wrong password"), 401, "invalid_credentials")


def test_existing_and_unknown_usernames_get_the_same_answers(client, user):
    existing = [answer(login(client, "buyer.one", "wrong password")) for _ in range(7)]
    unknown = [answer(login(client, "nobody.here", "wrong password")) for _ in range(7)]
    assert existing == unknown
    assert [status for status, _, _ in existing] == [401] * 5 + [429] * 2


def test_a_success_resets_the_usernames_count(client, user):
    for _ in range(4):
        assert login(client, "buyer.one", "wrong password").status_code == 401
    assert login(client, "buyer.one", PASSWORD).status_code == 200
    for _ in range(4):
        assert login(client, "buyer.one", "wrong password").status_code == 401
    assert login(client, "buyer.one", PASSWORD).status_code == 200
    for _ in range(5):
        assert login(client, "buyer.one", "wrong password").status_code == 401
    assert login(client, "buyer.one", PASSWORD).status_code == 429


def test_twenty_failures_from_one_address_block_that_address_only(client, user):
    for attempt in range(20):
        assert login(client, f"guess{attempt}", "wrong password", "10.9.9.9").status_code == 401
    assert_problem(login(client, "buyer.one", PASSWORD, "10.9.9.9"), 429, "too_many_attempts")
    assert login(client, "buyer.one", PASSWORD, "10.0.0.2").status_code == 200


def test_good_logins_do_not_block_an_address(client, user):
    """An office behind one address: its own successful logins never count against it."""
    for _ in range(25):
        assert login(client, "buyer.one", PASSWORD, "10.7.7.7").status_code == 200


def set_throttle(db_engine, key: str, **columns) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with db_engine.begin() as conn:
        conn.execute(
            text(f"UPDATE login_throttles SET {assignments} WHERE throttle_key = :key"), {**columns, "key": key}
        )


def test_the_back_off_doubles_with_each_further_failure(client, user, db_engine):
    for _ in range(5):
        login(client, "buyer.one", "wrong password")
    waits = []
    for _ in range(3):
        waits.append(int(login(client, "buyer.one", "wrong password").headers["Retry-After"]))
        # The block runs out (moved into the past), and the next failure blocks for twice as long.
        set_throttle(db_engine, "u:buyer.one", blocked_until=utcnow() - timedelta(seconds=1))
        assert login(client, "buyer.one", "wrong password").status_code == 401
    waits.append(int(login(client, "buyer.one", "wrong password").headers["Retry-After"]))
    assert [w > 0 for w in waits] == [True] * 4
    assert 15 < waits[0] <= 30 and 30 < waits[1] <= 60 and 60 < waits[2] <= 120 and 120 < waits[3] <= 240


def test_back_off_is_capped_at_the_window():
    settings = LoginThrottleSettings()
    assert [backoff_seconds(settings, n) for n in range(7)] == [30, 60, 120, 240, 480, 900, 900]
    assert backoff_seconds(settings, 10_000) == 900


def test_failures_older_than_the_window_are_forgotten(client, user, db_engine):
    for _ in range(5):
        login(client, "buyer.one", "wrong password")
    assert login(client, "buyer.one", PASSWORD).status_code == 429
    long_ago = utcnow() - timedelta(minutes=16)
    set_throttle(db_engine, "u:buyer.one", last_failure_at=long_ago, blocked_until=long_ago)
    for _ in range(4):
        assert login(client, "buyer.one", "wrong password").status_code == 401
    assert login(client, "buyer.one", PASSWORD).status_code == 200


def test_rows_past_their_window_are_swept_by_later_failures(client, db_engine):
    for attempt in range(3):
        login(client, f"flood{attempt}", "wrong password", f"10.1.1.{attempt}")
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE login_throttles SET last_failure_at = :t"), {"t": utcnow() - timedelta(hours=1)})
    login(client, "another", "wrong password", "10.2.2.2")
    with db_engine.connect() as conn:
        keys = set(conn.execute(text("SELECT throttle_key FROM login_throttles")).scalars())
    assert keys == {"u:another", "a:10.2.2.2"}


# --- the BFF's login: its own service token vouches for the client address --------------------


def internal_login(client, token, address, username="buyer.one", password=PASSWORD):
    body = {"username": username, "password": password, "client_address": address}
    return client.post("/internal/login", json=body, headers=bearer(token))


def test_the_bff_names_the_client_address(client, tokens, user):
    token = tokens.service(BFF, "customers-service")
    ok = internal_login(client, token, "2001:db8::1")
    assert ok.status_code == 200 and ok.get_json()["user"]["username"] == "buyer.one"
    for attempt in range(20):
        assert internal_login(client, token, "203.0.113.7", f"guess{attempt}", "nope").status_code == 401
    assert_problem(internal_login(client, token, "203.0.113.7"), 429, "too_many_attempts")
    assert internal_login(client, token, "203.0.113.8").status_code == 200
    # The connection's own address (the BFF's) was never counted.
    assert login(client, "buyer.one", PASSWORD, "127.0.0.1").status_code == 200


def test_only_the_bff_may_name_a_client_address(client, tokens, user):
    assert_problem(internal_login(client, tokens.service("orders-service", "customers-service"), "1.2.3.4"), 403)
    assert_problem(internal_login(client, tokens.admin(), "1.2.3.4"), 403, "forbidden")
    assert_problem(internal_login(client, None, "1.2.3.4"), 401, "unauthorized")
    forged = tokens.forged_service(BFF, "customers-service", signed_by="orders-service")
    assert_problem(internal_login(client, forged, "1.2.3.4"), 401, "invalid_token")
    bad = internal_login(client, tokens.service(BFF, "customers-service"), "not-an-address")
    assert_problem(bad, 400, "validation_error")
    # The public route takes no address from its body.
    public = client.post(
        "/auth/login", json={"username": "buyer.one", "password": PASSWORD, "client_address": "1.2.3.4"}
    )
    assert_problem(public, 400, "validation_error")


# --- two gunicorn workers, attempts in parallel -------------------------------------------------


@pytest.fixture
def server(database, key_ring_values, orders, tmp_path):
    process = customers_server(database.url, key_ring_values, orders.base_url, tmp_path / "customers.log")
    yield process
    process.stop()


def test_the_throttle_holds_across_two_workers_under_parallel_attempts(server, tokens, make_customer, client):
    admin = bearer(tokens.admin())
    body = {"username": "parallel.user", "password": PASSWORD, "role": "admin"}
    assert requests.post(f"{server.base_url}/users", json=body, headers=admin, timeout=30).status_code == 201

    def attempt(_: int) -> int:
        credentials = {"username": "parallel.user", "password": "wrong password"}
        return requests.post(f"{server.base_url}/auth/login", json=credentials, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = sorted(pool.map(attempt, range(16)))
    # Each attempt is counted before its password is checked, under the row's lock: however many
    # race, exactly five are checked, on whichever worker they land.
    assert statuses == [401] * 5 + [429] * 11
    right = requests.post(
        f"{server.base_url}/auth/login", json={"username": "parallel.user", "password": PASSWORD}, timeout=30
    )
    assert right.status_code == 429 and int(right.headers["Retry-After"]) >= 1
