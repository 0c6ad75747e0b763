#!/usr/bin/env python3
"""Rotate a JWT key ring without downtime, in two steps.

1. `add`:    prepend a new random key. Deploy the new ring to every service: they now sign with
             the new key and still accept tokens signed with the old ones.
2. `retire`: once every token signed with the old key has expired (user tokens:
             JWT_EXPIRES_IN_SECONDS; service tokens: minutes), drop the old key and deploy again.

  python scripts/rotate_jwt_key.py add SERVICE_JWT_KEYS            # edits .env in place
  python scripts/rotate_jwt_key.py retire SERVICE_JWT_KEYS --kid k1a2b3c
  python scripts/rotate_jwt_key.py add USER_JWT_KEYS --print-only  # prints the new ring instead

For AWS, put the printed ring into the Secrets Manager secret the Lambdas read (see README).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from servicekit.auth import KeyRing

ROOT = Path(__file__).resolve().parents[1]
RINGS = ("USER_JWT_KEYS", "SERVICE_JWT_KEYS")


def add_key(ring_value: str) -> tuple[str, str]:
    ring = KeyRing.parse(ring_value)
    kid = f"k{secrets.token_hex(3)}"
    while kid in ring.keys:
        kid = f"k{secrets.token_hex(3)}"
    return f"{kid}:{secrets.token_urlsafe(32)}," + ring_value.strip(), kid


def retire_key(ring_value: str, kid: str) -> str:
    ring = KeyRing.parse(ring_value)
    if kid not in ring.keys:
        raise SystemExit(f"kid {kid!r} is not in the ring")
    if kid == ring.signing_kid:
        raise SystemExit(f"kid {kid!r} is the signing key; add a new key first")
    kept = [entry.strip() for entry in ring_value.split(",") if entry.strip().partition(":")[0] != kid]
    return ",".join(kept)


def rewrite_env(path: Path, name: str, value: str) -> None:
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.startswith(f"{name}="):
            lines[index] = f"{name}={value}"
            break
    else:
        raise SystemExit(f"{name} not found in {path}")
    path.write_text("\n".join(lines) + "\n")


def current_value(path: Path, name: str) -> str:
    for line in path.read_text().splitlines():
        if line.startswith(f"{name}="):
            return line.partition("=")[2].split(" #")[0].strip()
    raise SystemExit(f"{name} not found in {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("add", "retire"))
    parser.add_argument("ring", choices=RINGS)
    parser.add_argument("--kid", help="the key to retire")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--print-only", action="store_true", help="print the new ring, do not edit the file")
    args = parser.parse_args(argv)

    value = current_value(args.env_file, args.ring)
    if args.action == "add":
        new_value, kid = add_key(value)
        print(f"added signing key {kid}", file=sys.stderr)
    else:
        if not args.kid:
            parser.error("retire needs --kid")
        new_value = retire_key(value, args.kid)
        print(f"retired key {args.kid}", file=sys.stderr)
    if args.print_only:
        print(new_value)
    else:
        rewrite_env(args.env_file, args.ring, new_value)
        print(f"updated {args.ring} in {args.env_file}; restart the services to pick it up", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
