#!/usr/bin/env python3
"""Mint a JWT for manual calls and debugging.

  python scripts/mint_token.py service --caller orchestrator --audience orders-service
  python scripts/mint_token.py user --user-id 1 --role admin
  python scripts/mint_token.py user --user-id 7 --role customer --customer-id 3 --ttl 600

A service token is signed with that caller's own private key, `<CALLER>_JWT_PRIVATE_KEYS`
(e.g. ORCHESTRATOR_JWT_PRIVATE_KEYS), and verifies only as that caller (docs/auth.md); a user
token with the first key of USER_JWT_KEYS. Keys come from the environment or --env-file
(default .env).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from servicekit.auth import (
    MAX_USER_TOKEN_TTL_SECONDS,
    SERVICE_IDENTITIES,
    KeyRing,
    ServiceSigningKeys,
    mint_service_token,
    mint_user_token,
    private_keys_variable,
)
from servicekit.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
AUDIENCES = ("customers-service", "orders-service")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[name.strip()] = value.split(" #")[0].strip()
    return values


def setting(name: str, env_file: Path) -> str | None:
    return os.environ.get(name) or read_env_file(env_file).get(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--ttl", type=int, default=300, help="lifetime in seconds (default 300)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    service = kinds.add_parser("service", help="a service token")
    service.add_argument("--caller", required=True, choices=SERVICE_IDENTITIES)
    service.add_argument("--audience", required=True, choices=AUDIENCES)
    user = kinds.add_parser("user", help="a user token")
    user.add_argument("--user-id", type=int, required=True)
    user.add_argument("--role", required=True, choices=("admin", "customer"))
    user.add_argument("--customer-id", type=int)
    args = parser.parse_args(argv)
    if not 1 <= args.ttl <= MAX_USER_TOKEN_TTL_SECONDS:
        parser.error(f"--ttl must be 1 to {MAX_USER_TOKEN_TTL_SECONDS} seconds")

    if args.kind == "user" and args.role == "customer" and args.customer_id is None:
        parser.error("--customer-id is required for role customer")
    try:
        if args.kind == "service":
            name = private_keys_variable(args.caller)
            keys = ServiceSigningKeys.parse(setting(name, args.env_file), name=name)
            token = mint_service_token(keys, caller=args.caller, audience=args.audience, ttl_seconds=args.ttl)
        else:
            ring = KeyRing.parse(setting("USER_JWT_KEYS", args.env_file), name="USER_JWT_KEYS")
            token = mint_user_token(
                ring, user_id=args.user_id, role=args.role, customer_id=args.customer_id, ttl_seconds=args.ttl
            )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
