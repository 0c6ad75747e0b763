import time

import jwt
import pytest

from servicekit.auth import (
    InvalidToken,
    KeyRing,
    ServiceTokenMinter,
    TokenVerifier,
    bearer_token,
    mint,
    mint_service_token,
    mint_user_token,
    verify,
)
from servicekit.config import ConfigError
from servicekit.testing import TokenFactory, random_key_ring_value

SECRET_A = "a" * 32
SECRET_B = "b" * 40


def test_key_ring_signs_with_first_and_accepts_all():
    ring = KeyRing.parse(f"new:{SECRET_B}, old:{SECRET_A}")
    assert ring.signing_kid == "new"
    old_only = KeyRing.parse(f"old:{SECRET_A}")
    token_from_old = mint(old_only, {"iss": "x", "aud": "y", "sub": "s"}, 60)
    assert verify(ring, token_from_old, audience="y", issuers={"x"})["sub"] == "s"
    assert jwt.get_unverified_header(mint(ring, {"iss": "x", "aud": "y", "sub": "s"}, 60))["kid"] == "new"


@pytest.mark.parametrize(
    "value",
    ["", "nokey", "k1:", ":secret" + "x" * 40, "k1:short", f"k1:{SECRET_A},k1:{SECRET_B}"],
)
def test_key_ring_rejects_malformed_values(value):
    with pytest.raises(ConfigError):
        KeyRing.parse(value)


def test_verify_rejects_expired_wrong_audience_issuer_and_alg():
    ring = KeyRing.parse(f"k1:{SECRET_A}")
    claims = {"iss": "x", "aud": "y", "sub": "s"}
    with pytest.raises(InvalidToken, match="expired"):
        verify(ring, mint(ring, claims, 10, now=time.time() - 100), audience="y", issuers={"x"})
    with pytest.raises(InvalidToken, match="not meant"):
        verify(ring, mint(ring, claims, 60), audience="z", issuers={"x"})
    with pytest.raises(InvalidToken, match="issuer"):
        verify(ring, mint(ring, claims, 60), audience="y", issuers={"other"})
    hs512 = jwt.encode(
        {**claims, "iat": int(time.time()), "exp": int(time.time()) + 60},
        SECRET_A * 2,
        algorithm="HS512",
        headers={"kid": "k1"},
    )
    with pytest.raises(InvalidToken, match="algorithm"):
        verify(ring, hs512, audience="y", issuers={"x"})


def test_verify_requires_claims():
    ring = KeyRing.parse(f"k1:{SECRET_A}")
    no_sub = jwt.encode(
        {"iss": "x", "aud": "y", "iat": int(time.time()), "exp": int(time.time()) + 60},
        SECRET_A,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(InvalidToken):
        verify(ring, no_sub, audience="y", issuers={"x"})


@pytest.fixture
def rings():
    return KeyRing.parse(random_key_ring_value("u1")), KeyRing.parse(random_key_ring_value("s1"))


@pytest.fixture
def verifier(rings):
    user_ring, service_ring = rings
    return TokenVerifier(
        service_name="orders-service", user_ring=user_ring, service_ring=service_ring, trusted_callers={"payments"}
    )


def test_verifier_accepts_user_and_service_tokens(rings, verifier):
    user_ring, service_ring = rings
    customer = verifier.verify(mint_user_token(user_ring, user_id=7, role="customer", customer_id=3, ttl_seconds=60))
    assert (customer.kind, customer.subject, customer.role, customer.customer_id) == ("user", "7", "customer", 3)
    assert customer.can_act_for(3) and not customer.can_act_for(4)
    service = verifier.verify(mint_service_token(service_ring, caller="payments", audience="orders-service"))
    assert service.is_service and service.identity == "service:payments" and service.can_act_for(99)


def test_verifier_rejects_every_bad_token(rings, verifier):
    user_ring, service_ring = rings
    factory = TokenFactory(user_ring=user_ring, service_ring=service_ring)
    for name, token in factory.bad_tokens().items():
        if token is None:
            continue
        with pytest.raises(InvalidToken):
            verifier.verify(token)
        assert name


def test_verifier_rejects_service_token_signed_with_user_ring(rings, verifier):
    user_ring, _ = rings
    forged = mint_service_token(user_ring, caller="payments", audience="orders-service")
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_verifier_rejects_untrusted_caller_and_wrong_audience(rings, verifier):
    _, service_ring = rings
    with pytest.raises(InvalidToken):
        verifier.verify(mint_service_token(service_ring, caller="sweeper", audience="orders-service"))
    with pytest.raises(InvalidToken):
        verifier.verify(mint_service_token(service_ring, caller="payments", audience="customers-service"))


def test_route_callers_verify_but_may_call_only_routes_naming_them(rings):
    user_ring, service_ring = rings
    verifier = TokenVerifier(
        service_name="orders-service",
        user_ring=user_ring,
        service_ring=service_ring,
        trusted_callers={"payments"},
        route_callers={"customers-service"},
    )
    reporter = verifier.verify(mint_service_token(service_ring, caller="customers-service", audience="orders-service"))
    payments = verifier.verify(mint_service_token(service_ring, caller="payments", audience="orders-service"))
    admin = verifier.verify(mint_user_token(user_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=60))
    assert reporter.is_service and reporter.subject == "customers-service"
    assert not verifier.may_call(reporter) and verifier.may_call(reporter, frozenset({"customers-service"}))
    assert verifier.may_call(payments) and not verifier.may_call(payments, frozenset({"customers-service"}))
    assert verifier.may_call(admin) and verifier.may_call(admin, frozenset({"customers-service"}))
    with pytest.raises(InvalidToken):
        verifier.verify(mint_service_token(service_ring, caller="customers-service", audience="customers-service"))


def test_verifier_rejects_user_token_signed_with_service_ring(rings, verifier):
    _, service_ring = rings
    forged = mint_user_token(service_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=60)
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_verifier_cache_does_not_outlive_expiry(rings, verifier, monkeypatch):
    user_ring, _ = rings
    token = mint_user_token(user_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=30)
    calls = []
    real_verify = verifier._verify_uncached
    monkeypatch.setattr(verifier, "_verify_uncached", lambda t: calls.append(t) or real_verify(t))
    assert verifier.verify(token).is_admin
    assert verifier.verify(token).is_admin
    assert len(calls) == 1  # second call served from the cache
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    verifier.verify(token)  # PyJWT's own clock still says valid; the cache must not decide alone
    assert len(calls) == 2


def test_minter_reuses_token_until_near_expiry(rings, monkeypatch):
    _, service_ring = rings
    minter = ServiceTokenMinter(service_ring, "orchestrator", ttl_seconds=300, refresh_margin_seconds=60)
    first = minter.token_for("orders-service")
    assert minter.token_for("orders-service") == first
    assert minter.token_for("customers-service") != first
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 250)
    assert minter.token_for("orders-service") != first


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("Basic abc", None), ("Bearer ", None), ("Bearer abc", "abc"), ("bearer  xyz ", "xyz")],
)
def test_bearer_token(header, expected):
    assert bearer_token(header) == expected
