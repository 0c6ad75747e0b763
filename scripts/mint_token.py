#!/usr/bin/env python3
"""Mint a JWT for manual calls and debugging, signed with the first key of a ring.

  python scripts/mint_token.py service --caller orchestrator --audience orders-service
  python scripts/mint_token.py user --user-id 1 --role admin
  python scripts/mint_token.py user --user-id 7 --role customer --customer-id 3 --ttl 600

The ring comes from SERVICE_JWT_KEYS / USER_JWT_KEYS (environment or --env-file, default .env).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from servicekit.auth import KeyRing, mint_service_token, mint_user_token

ROOT = Path(__file__).resolve().parents[1]
CALLERS = ("orchestrator", "orders-service", "payments", "sweeper")
AUDIENCES = ("customers-service", "orders-service")


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                values[name.strip()] = value.split(" #")[0].strip()
    return values


def ring_from(name: str, env_file: Path) -> KeyRing:
    value = os.environ.get(name) or read_env_file(env_file).get(name)
    return KeyRing.parse(value, name=name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--ttl", type=int, default=300, help="lifetime in seconds (default 300)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    service = kinds.add_parser("service", help="a service token")
    service.add_argument("--caller", required=True, choices=CALLERS)
    service.add_argument("--audience", required=True, choices=AUDIENCES)
    user = kinds.add_parser("user", help="a user token")
    user.add_argument("--user-id", type=int, required=True)
    user.add_argument("--role", required=True, choices=("admin", "customer"))
    user.add_argument("--customer-id", type=int)
    args = parser.parse_args(argv)

    if args.kind == "service":
        ring = ring_from("SERVICE_JWT_KEYS", args.env_file)
        token = mint_service_token(ring, caller=args.caller, audience=args.audience, ttl_seconds=args.ttl)
    else:
        if args.role == "customer" and args.customer_id is None:
            parser.error("--customer-id is required for role customer")
        ring = ring_from("USER_JWT_KEYS", args.env_file)
        token = mint_user_token(
            ring, user_id=args.user_id, role=args.role, customer_id=args.customer_id, ttl_seconds=args.ttl
        )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
