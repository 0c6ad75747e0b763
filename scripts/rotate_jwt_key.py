#!/usr/bin/env python3
"""Rotate JWT keys without downtime, in two steps.

The user-token ring (USER_JWT_KEYS, HS256):
1. `add USER_JWT_KEYS`: prepend a new random key. Deploy the ring everywhere: it now signs with
   the new key and still accepts tokens signed with the old ones.
2. `retire USER_JWT_KEYS --kid <old>`: once every token signed with the old key has expired
   (JWT_EXPIRES_IN_SECONDS, at most an hour), drop it and deploy again.

A service identity (orchestrator, payments, sweeper, orders-service, customers-service; Ed25519):
1. `add <caller>`: a new key pair. Its public key joins SERVICE_JWT_PUBLIC_KEYS (deploy that to the
   verifiers first: they then accept both), and its private key is prepended to the caller's ring,
   `<CALLER>_JWT_PRIVATE_KEYS` (deploy that second: the caller signs with the new key).
2. `retire <caller> --kid <old>`: once the caller's tokens signed with the old key have expired
   (service tokens: minutes), drop the old pair from both and deploy again.

  python scripts/rotate_jwt_key.py add payments                     # edits .env in place
  python scripts/rotate_jwt_key.py retire payments --kid payments-1a2b3c4d
  python scripts/rotate_jwt_key.py add USER_JWT_KEYS --print-only   # prints the new value(s) instead

For AWS, docs/deploy.md ("Rotating keys") says where each value goes.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path

from servicekit.auth import (
    SERVICE_IDENTITIES,
    KeyRing,
    ServicePublicKeys,
    ServiceSigningKeys,
    generate_service_key,
    private_keys_variable,
)

ROOT = Path(__file__).resolve().parents[1]
USER_RING = "USER_JWT_KEYS"
PUBLIC_KEYS = "SERVICE_JWT_PUBLIC_KEYS"


def add_key(ring_value: str) -> tuple[str, str]:
    ring = KeyRing.parse(ring_value)
    kid = f"k{secrets.token_hex(3)}"
    while kid in ring.keys:
        kid = f"k{secrets.token_hex(3)}"
    return f"{kid}:{secrets.token_urlsafe(32)}," + ring_value.strip(), kid


def _without(value: str, kid: str, position: int) -> str:
    """The comma-separated entries of `value` but those whose `position`-th field is `kid`."""
    return ",".join(
        entry.strip() for entry in value.split(",") if entry.strip() and entry.strip().split(":")[position] != kid
    )


def retire_key(ring_value: str, kid: str) -> str:
    ring = KeyRing.parse(ring_value)
    if kid not in ring.keys:
        raise SystemExit(f"kid {kid!r} is not in the ring")
    if kid == ring.signing_kid:
        raise SystemExit(f"kid {kid!r} is the signing key; add a new key first")
    return _without(ring_value, kid, 0)


def add_service_key(caller: str, private_value: str, public_value: str) -> tuple[str, str, str]:
    """(new private ring, new public keys, new kid): the new pair signs, the old one still verifies."""
    ServiceSigningKeys.parse(private_value)
    ServicePublicKeys.parse(public_value)
    private_entry, public_entry = generate_service_key(caller)
    return (
        f"{private_entry},{private_value.strip()}",
        f"{public_value.strip()},{public_entry}",
        private_entry.split(":")[0],
    )


def retire_service_key(caller: str, private_value: str, public_value: str, kid: str) -> tuple[str, str]:
    keys = ServiceSigningKeys.parse(private_value)
    if kid not in keys.keys:
        raise SystemExit(f"kid {kid!r} is not one of {caller}'s keys")
    if kid == keys.signing_kid:
        raise SystemExit(f"kid {kid!r} is {caller}'s signing key; add a new key first")
    bound = ServicePublicKeys.parse(public_value).by_kid.get(kid)
    if bound is not None and bound[0] != caller:
        raise SystemExit(f"kid {kid!r} is published for {bound[0]}, not {caller}")
    return _without(private_value, kid, 0), _without(public_value, kid, 1)


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
    parser.add_argument("ring", choices=(USER_RING, *SERVICE_IDENTITIES), help="USER_JWT_KEYS or a service identity")
    parser.add_argument("--kid", help="the key to retire")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--print-only", action="store_true", help="print the new value(s), do not edit the file")
    args = parser.parse_args(argv)
    if args.action == "retire" and not args.kid:
        parser.error("retire needs --kid")

    if args.ring == USER_RING:
        value = current_value(args.env_file, USER_RING)
        if args.action == "add":
            new_value, kid = add_key(value)
            print(f"added signing key {kid}", file=sys.stderr)
        else:
            new_value = retire_key(value, args.kid)
            print(f"retired key {args.kid}", file=sys.stderr)
        changes = {USER_RING: new_value}
    else:
        name = private_keys_variable(args.ring)
        private_value, public_value = current_value(args.env_file, name), current_value(args.env_file, PUBLIC_KEYS)
        if args.action == "add":
            new_private, new_public, kid = add_service_key(args.ring, private_value, public_value)
            print(f"added {args.ring}'s signing key {kid}: deploy {PUBLIC_KEYS} first, then {name}", file=sys.stderr)
        else:
            new_private, new_public = retire_service_key(args.ring, private_value, public_value, args.kid)
            print(f"retired {args.ring}'s key {args.kid}", file=sys.stderr)
        changes = {PUBLIC_KEYS: new_public, name: new_private}
    for name, value in changes.items():
        if args.print_only:
            print(f"{name}={value}")
        else:
            rewrite_env(args.env_file, name, value)
    if not args.print_only:
        print(f"updated {', '.join(changes)} in {args.env_file}; restart the services to pick it up", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
