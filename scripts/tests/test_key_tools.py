"""The secret tools: .env generation, token minting, zero-downtime key rotation."""

import subprocess
import sys
from pathlib import Path

import pytest

from servicekit.auth import KeyRing, TokenVerifier, mint_service_token

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


def test_make_env_fills_every_secret_and_keeps_the_rest(env_file, tmp_path):
    generated = values(env_file)
    for name in ("USER_JWT_KEYS", "SERVICE_JWT_KEYS"):
        KeyRing.parse(generated[name])
    assert generated["USER_JWT_KEYS"] != generated["SERVICE_JWT_KEYS"]
    for name in ("DEMO_ADMIN_PASSWORD", "DEMO_USER_PASSWORD", "MYSQL_ROOT_PASSWORD"):
        assert len(generated[name]) >= 20 and "#" not in generated[name]
    assert generated["CANCEL_WINDOW_SECONDS"] == "600"
    assert env_file.stat().st_mode & 0o077 == 0
    # A second run leaves the existing file (and its secrets) alone.
    subprocess.run([sys.executable, str(SCRIPTS / "make_env.py"), "--output", str(env_file)], check=True)
    assert values(env_file) == generated
    example_secrets = [
        line for line in (ROOT / ".env.example").read_text().splitlines() if "# secret:" in line and "=" in line
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


def test_minted_service_token_verifies(env_file):
    # No ring in the environment and none in the env file (not the repository's .env, which
    # `make run` creates: the test must not depend on it).
    missing = env_file.parent / "missing.env"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mint_token.py"), "--env-file", str(missing), "service"]
        + ["--caller", "payments", "--audience", "orders-service"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "SERVICE_JWT_KEYS" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "mint_token.py"),
            "--env-file",
            str(env_file),
            "service",
            "--caller",
            "payments",
            "--audience",
            "orders-service",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    ring = KeyRing.parse(values(env_file)["SERVICE_JWT_KEYS"])
    verifier = TokenVerifier(
        service_name="orders-service", user_ring=None, service_ring=ring, trusted_callers={"payments"}
    )
    assert verifier.verify(result.stdout.strip()).subject == "payments"


def test_rotation_add_then_retire_without_downtime(env_file):
    old_value = values(env_file)["SERVICE_JWT_KEYS"]
    old_ring = KeyRing.parse(old_value)
    token_from_old_key = mint_service_token(old_ring, caller="sweeper", audience="orders-service")

    subprocess.run(
        [sys.executable, str(SCRIPTS / "rotate_jwt_key.py"), "add", "SERVICE_JWT_KEYS", "--env-file", str(env_file)],
        check=True,
        capture_output=True,
    )
    rotated = KeyRing.parse(values(env_file)["SERVICE_JWT_KEYS"])
    assert rotated.signing_kid != old_ring.signing_kid and set(old_ring.keys) < set(rotated.keys)
    verifier = TokenVerifier(
        service_name="orders-service", user_ring=None, service_ring=rotated, trusted_callers={"sweeper"}
    )
    assert verifier.verify(token_from_old_key).subject == "sweeper"  # old tokens still accepted

    refused = subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "rotate_jwt_key.py"),
            "retire",
            "SERVICE_JWT_KEYS",
            "--kid",
            rotated.signing_kid,
            "--env-file",
            str(env_file),
        ],
        capture_output=True,
    )
    assert refused.returncode != 0
    subprocess.run(
        [
            sys.executable,
            str(SCRIPTS / "rotate_jwt_key.py"),
            "retire",
            "SERVICE_JWT_KEYS",
            "--kid",
            old_ring.signing_kid,
            "--env-file",
            str(env_file),
        ],
        check=True,
        capture_output=True,
    )
    retired = KeyRing.parse(values(env_file)["SERVICE_JWT_KEYS"])
    assert set(retired.keys) == {rotated.signing_kid}
    fresh = TokenVerifier(
        service_name="orders-service", user_ring=None, service_ring=retired, trusted_callers={"sweeper"}
    )
    from servicekit.auth import InvalidToken

    with pytest.raises(InvalidToken):
        fresh.verify(token_from_old_key)
