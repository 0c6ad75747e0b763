import time

import jwt
import pytest

from servicekit.auth import (
    SERVICE_IDENTITIES,
    InvalidToken,
    KeyRing,
    ServicePublicKeys,
    ServiceSigningKeys,
    ServiceTokenMinter,
    TokenVerifier,
    bearer_token,
    generate_service_key,
    mint,
    mint_service_token,
    mint_user_token,
    verify,
)
from servicekit.config import ConfigError
from servicekit.testing import ServiceKeySet, TokenFactory, random_key_ring_value

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


@pytest.fixture(scope="module")
def keys():
    return ServiceKeySet.generate()


@pytest.fixture
def user_ring():
    return KeyRing.parse(random_key_ring_value("u1"))


@pytest.fixture
def factory(user_ring, keys):
    return TokenFactory(user_ring=user_ring, service_keys=keys)


@pytest.fixture
def verifier(user_ring, keys):
    return TokenVerifier(
        service_name="orders-service",
        user_ring=user_ring,
        service_keys=keys.public_keys(),
        callers={"payments", "customers-service"},
    )


def test_verifier_accepts_user_and_service_tokens(user_ring, factory, verifier):
    customer = verifier.verify(mint_user_token(user_ring, user_id=7, role="customer", customer_id=3, ttl_seconds=60))
    assert (customer.kind, customer.subject, customer.role, customer.customer_id) == ("user", "7", "customer", 3)
    assert customer.can_act_for(3) and not customer.can_act_for(4)
    service = verifier.verify(factory.service("payments", "orders-service"))
    assert service.is_service and service.identity == "service:payments" and service.can_act_for(99)
    header = jwt.get_unverified_header(factory.service("payments", "orders-service"))
    assert header["alg"] == "EdDSA" and header["kid"].startswith("payments-")


def test_verifier_rejects_every_bad_token(factory, verifier):
    for name, token in factory.bad_tokens().items():
        if token is None:
            continue
        with pytest.raises(InvalidToken):
            verifier.verify(token)
        assert name


@pytest.mark.parametrize("kid_of", ["signer", "claimed"])
def test_a_caller_cannot_mint_another_callers_token(factory, verifier, kid_of):
    """Right claims, another caller's private key: whichever kid the header names, a 401."""
    forged = factory.forged_service(
        "payments",
        "orders-service",
        signed_by="orchestrator",
        kid_of="orchestrator" if kid_of == "signer" else "payments",
    )
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
    # ...also when the signer is itself trusted here: its key is bound to its own name only.
    forged = factory.forged_service("payments", "orders-service", signed_by="customers-service")
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(forged)


def test_a_verifier_holds_no_key_that_signs(keys):
    """What a verifier is given parses as public keys only: nothing in it can mint a token."""
    public = keys.public_keys()
    assert set(public.issuers()) == set(SERVICE_IDENTITIES)
    with pytest.raises(ConfigError):
        ServiceSigningKeys.parse(keys.public)
    with pytest.raises(ConfigError):
        ServicePublicKeys.parse(keys.private["payments"])


def test_rotation_old_and_new_key_pairs_verify(keys, user_ring):
    new_private, new_public = generate_service_key("payments")
    rotated = ServiceSigningKeys.parse(f"{new_private},{keys.private['payments']}")
    public = ServicePublicKeys.parse(f"{keys.public},{new_public}")
    verifier = TokenVerifier(
        service_name="orders-service", user_ring=user_ring, service_keys=public, callers={"payments"}
    )
    signed_new = mint_service_token(rotated, caller="payments", audience="orders-service")
    assert jwt.get_unverified_header(signed_new)["kid"] == rotated.signing_kid == new_private.split(":")[0]
    signed_old = mint_service_token(keys.signing("payments"), caller="payments", audience="orders-service")
    assert verifier.verify(signed_new).subject == verifier.verify(signed_old).subject == "payments"
    rotated.check_published(public, "payments")
    with pytest.raises(ConfigError, match="not published"):
        rotated.check_published(keys.public_keys(), "payments")  # the new key not rolled out yet
    with pytest.raises(ConfigError, match="not published"):
        keys.signing("payments").check_published(public, "sweeper")  # another caller's key


@pytest.mark.parametrize(
    "value",
    ["", "payments:k1", "payments:k1:not-base64!", "payments:k1:" + "A" * 10, "p:k1:{key},q:k1:{key}"],
)
def test_public_keys_reject_malformed_values(keys, value):
    key = keys.public.split(",")[0].split(":")[2]
    with pytest.raises(ConfigError):
        ServicePublicKeys.parse(value.format(key=key))


def test_verifier_rejects_untrusted_caller_wrong_audience_and_user_ring_forgeries(factory, verifier):
    with pytest.raises(InvalidToken, match="issuer"):
        verifier.verify(factory.service("sweeper", "orders-service"))
    with pytest.raises(InvalidToken, match="not meant"):
        verifier.verify(factory.service("payments", "customers-service"))
    with pytest.raises(InvalidToken):
        verifier.verify(factory.service_with_user_ring("payments", "orders-service"))


def test_may_call_only_the_routes_naming_the_caller(factory, verifier):
    reporter = verifier.verify(factory.service("customers-service", "orders-service"))
    payments = verifier.verify(factory.service("payments", "orders-service"))
    admin = verifier.verify(factory.admin())
    assert not verifier.may_call(reporter, None) and verifier.may_call(reporter, frozenset({"customers-service"}))
    assert not verifier.may_call(payments, frozenset({"customers-service"}))
    assert verifier.may_call(admin, None) and verifier.may_call(admin, frozenset({"customers-service"}))


def test_verifier_rejects_user_token_signed_with_a_service_key(factory, keys, verifier):
    signer = keys.signing("orchestrator")
    now = int(time.time())
    claims = {"iss": "customers-service", "aud": "b2b-api", "sub": "1", "role": "admin", "iat": now, "exp": now + 60}
    forged = jwt.encode(claims, signer.keys[signer.signing_kid], algorithm="EdDSA", headers={"kid": signer.signing_kid})
    with pytest.raises(InvalidToken):
        verifier.verify(forged)


def test_user_tokens_live_an_hour_at_most(user_ring, factory, verifier):
    with pytest.raises(ValueError):
        mint_user_token(user_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=3601)
    with pytest.raises(InvalidToken, match="too long"):
        verifier.verify(factory.long_lived_admin())
    assert verifier.verify(mint_user_token(user_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=3600))


def test_a_deleted_customers_token_is_refused_from_the_moment_of_the_delete(user_ring, keys):
    deleted: set[int] = set()
    asked: list[int] = []
    verifier = TokenVerifier(
        service_name="orders-service",
        user_ring=user_ring,
        service_keys=keys.public_keys(),
        callers={"orchestrator"},
        customer_gone=lambda customer_id: asked.append(customer_id) or customer_id in deleted,
    )
    token = mint_user_token(user_ring, user_id=7, role="customer", customer_id=3, ttl_seconds=600)
    assert verifier.verify(token).customer_id == 3
    deleted.add(3)
    with pytest.raises(InvalidToken, match="deleted"):
        verifier.verify(token)  # cached as valid, but asked again on every use
    admin = mint_user_token(user_ring, user_id=1, role="admin", customer_id=None, ttl_seconds=600)
    assert verifier.verify(admin).is_admin
    assert asked == [3, 3]  # admins and services are not bound to a customer


def test_verifier_cache_does_not_outlive_expiry(user_ring, verifier, monkeypatch):
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


def test_minter_reuses_token_until_near_expiry(keys, monkeypatch):
    minter = ServiceTokenMinter(
        keys.signing("orchestrator"), "orchestrator", ttl_seconds=300, refresh_margin_seconds=60
    )
    first = minter.token_for("orders-service")
    assert minter.token_for("orders-service") == first
    assert minter.token_for("customers-service") != first
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 250)
    assert minter.token_for("orders-service") != first


def test_signing_keys_never_print_their_secret(keys):
    signing = keys.signing("payments")
    seed = keys.private["payments"].split(":")[1]
    assert seed not in repr(signing) and seed not in str(signing)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("Basic abc", None), ("Bearer ", None), ("Bearer abc", "abc"), ("bearer  xyz ", "xyz")],
)
def test_bearer_token(header, expected):
    assert bearer_token(header) == expected
