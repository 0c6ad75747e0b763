"""The secret tools: .env generation, token minting, zero-downtime key rotation."""

import subprocess
import sys
from pathlib import Path

import pytest

from servicekit.auth import (
    SERVICE_IDENTITIES,
    InvalidToken,
    KeyRing,
    ServicePublicKeys,
    ServiceSigningKeys,
    TokenVerifier,
    mint_service_token,
    private_keys_variable,
)

SCRIPTS = Path(__file__).resolve().parents[1]
ROOT = SCRIPTS.parent


@pytest.fixture
def env_file(tmp_path):
    output = tmp_path / ".env"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(output)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return output


def values(path: Path) -> dict[str, str]:
    return {
        line.partition("=")[0]: line.partition("=")[2]
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }


def verifier_of(env: dict[str, str], *callers: str) -> TokenVerifier:
    public = ServicePublicKeys.parse(env["SERVICE_JWT_PUBLIC_KEYS"])
    return TokenVerifier(service_name="orders-service", user_ring=None, service_keys=public, callers=callers)


def test_make_env_fills_every_secret_and_keeps_the_rest(env_file, tmp_path):
    generated = values(env_file)
    KeyRing.parse(generated["USER_JWT_KEYS"])
    # One key pair per service identity, each published under its own name only.
    public = ServicePublicKeys.parse(generated["SERVICE_JWT_PUBLIC_KEYS"])
    assert public.issuers() == set(SERVICE_IDENTITIES)
    seeds = set()
    for caller in SERVICE_IDENTITIES:
        keys = ServiceSigningKeys.parse(generated[private_keys_variable(caller)])
        keys.check_published(public, caller)
        seeds.add(generated[private_keys_variable(caller)].split(":")[1])
    assert len(seeds) == len(SERVICE_IDENTITIES)
    assert "SERVICE_JWT_KEYS" not in generated
    for name in ("DEMO_ADMIN_PASSWORD", "DEMO_USER_PASSWORD", "MYSQL_ROOT_PASSWORD"):
        assert len(generated[name]) >= 20 and "#" not in generated[name]
    assert generated["CANCEL_WINDOW_SECONDS"] == "600"
    assert env_file.stat().st_mode & 0o077 == 0
    # A second run leaves the existing file (and its secrets) alone.
    subprocess.run([sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(env_file)], check=True)
    assert values(env_file) == generated
    example_secrets = [
        line
        for line in (ROOT / ".env.example").read_text().splitlines()
        if ("# secret:" in line or "# derived:" in line) and "=" in line
    ]
    assert all(line.split("=", 1)[1].split("#")[0].strip() == "" for line in example_secrets)


def test_make_env_adds_only_the_secrets_an_existing_file_lacks(env_file):
    generated = values(env_file)
    assert (
        generated["PAYMENT_GATEWAY_API_KEY"].startswith("sk_test_") and len(generated["PAYMENT_GATEWAY_API_KEY"]) > 30
    )
    # An older .env: no gateway key, a value the developer changed.
    lines = [line for line in env_file.read_text().splitlines() if not line.startswith("PAYMENT_GATEWAY_API_KEY=")]
    env_file.write_text("\n".join(lines).replace("CANCEL_WINDOW_SECONDS=600", "CANCEL_WINDOW_SECONDS=30"))
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(env_file), "--add-missing"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "added PAYMENT_GATEWAY_API_KEY" in result.stdout
    updated = values(env_file)
    assert updated["PAYMENT_GATEWAY_API_KEY"].startswith("sk_test_")
    assert updated["PAYMENT_GATEWAY_API_KEY"] != generated["PAYMENT_GATEWAY_API_KEY"]
    assert updated["CANCEL_WINDOW_SECONDS"] == "30" and updated["USER_JWT_KEYS"] == generated["USER_JWT_KEYS"]
    assert set(updated) == set(generated)
    again = subprocess.run(
        [sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(env_file), "--add-missing"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "has every secret" in again.stdout and values(env_file) == updated


def test_make_env_gives_a_new_service_identity_a_key_and_publishes_it(env_file):
    """An older .env without payments' own key: it gets one, and its public key is listed."""
    generated = values(env_file)
    kept = [line for line in env_file.read_text().splitlines() if not line.startswith("PAYMENTS_JWT_PRIVATE_KEYS=")]
    env_file.write_text("\n".join(kept) + "\n")
    subprocess.run(
        [sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(env_file), "--add-missing"],
        check=True,
        capture_output=True,
    )
    updated = values(env_file)
    assert updated["PAYMENTS_JWT_PRIVATE_KEYS"] != generated["PAYMENTS_JWT_PRIVATE_KEYS"]
    public = ServicePublicKeys.parse(updated["SERVICE_JWT_PUBLIC_KEYS"])
    ServiceSigningKeys.parse(updated["PAYMENTS_JWT_PRIVATE_KEYS"]).check_published(public, "payments")
    assert updated["ORCHESTRATOR_JWT_PRIVATE_KEYS"] == generated["ORCHESTRATOR_JWT_PRIVATE_KEYS"]


def test_minted_service_token_verifies_as_its_caller_only(env_file):
    # No key in the environment and none in the env file (not the repository's .env, which
    # `make run` creates: the test must not depend on it).
    missing = env_file.parent / "missing.env"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mint_token.py"), "--env-file", str(missing), "service"]
        + ["--caller", "payments", "--audience", "orders-service"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "PAYMENTS_JWT_PRIVATE_KEYS" in result.stderr
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mint_token.py"), "--env-file", str(env_file), "service"]
        + ["--caller", "payments", "--audience", "orders-service"],
        capture_output=True,
        text=True,
        check=True,
    )
    env = values(env_file)
    assert verifier_of(env, "payments").verify(result.stdout.strip()).subject == "payments"
    with pytest.raises(InvalidToken):
        verifier_of(env, "orchestrator", "sweeper").verify(result.stdout.strip())


def rotate(env_file: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / "rotate_jwt_key.py"), *args, "--env-file", str(env_file)],
        check=check,
        capture_output=True,
        text=True,
    )


def test_user_ring_rotation_add_then_retire(env_file):
    old_ring = KeyRing.parse(values(env_file)["USER_JWT_KEYS"])
    rotate(env_file, "add", "USER_JWT_KEYS")
    rotated = KeyRing.parse(values(env_file)["USER_JWT_KEYS"])
    assert rotated.signing_kid != old_ring.signing_kid and set(old_ring.keys) < set(rotated.keys)
    assert rotate(env_file, "retire", "USER_JWT_KEYS", "--kid", rotated.signing_kid, check=False).returncode != 0
    rotate(env_file, "retire", "USER_JWT_KEYS", "--kid", old_ring.signing_kid)
    assert set(KeyRing.parse(values(env_file)["USER_JWT_KEYS"]).keys) == {rotated.signing_kid}


def test_service_key_rotation_add_then_retire_without_downtime(env_file):
    before = values(env_file)
    old_keys = ServiceSigningKeys.parse(before["SWEEPER_JWT_PRIVATE_KEYS"])
    token_from_old_key = mint_service_token(old_keys, caller="sweeper", audience="orders-service")

    rotate(env_file, "add", "sweeper")
    during = values(env_file)
    rotated = ServiceSigningKeys.parse(during["SWEEPER_JWT_PRIVATE_KEYS"])
    assert rotated.signing_kid != old_keys.signing_kid and set(old_keys.keys) < set(rotated.keys)
    rotated.check_published(ServicePublicKeys.parse(during["SERVICE_JWT_PUBLIC_KEYS"]), "sweeper")
    verifier = verifier_of(during, "sweeper")
    assert verifier.verify(token_from_old_key).subject == "sweeper"  # old tokens still accepted
    token_from_new_key = mint_service_token(rotated, caller="sweeper", audience="orders-service")
    assert verifier.verify(token_from_new_key).subject == "sweeper"
    # Nobody else's keys moved.
    assert during["PAYMENTS_JWT_PRIVATE_KEYS"] == before["PAYMENTS_JWT_PRIVATE_KEYS"]

    assert rotate(env_file, "retire", "sweeper", "--kid", rotated.signing_kid, check=False).returncode != 0
    payments_kid = before["PAYMENTS_JWT_PRIVATE_KEYS"].split(":")[0]
    assert rotate(env_file, "retire", "sweeper", "--kid", payments_kid, check=False).returncode != 0
    rotate(env_file, "retire", "sweeper", "--kid", old_keys.signing_kid)
    after = values(env_file)
    assert set(ServiceSigningKeys.parse(after["SWEEPER_JWT_PRIVATE_KEYS"]).keys) == {rotated.signing_kid}
    fresh = verifier_of(after, "sweeper")
    with pytest.raises(InvalidToken):
        fresh.verify(token_from_old_key)
    assert fresh.verify(token_from_new_key).subject == "sweeper"
