#!/usr/bin/env python3
"""Create .env from .env.example, filling every `# secret:<kind>` value with a random one.

`# secret:ed25519` values are a new Ed25519 key pair's private half for the caller the variable
names (ORDERS_SERVICE_JWT_PRIVATE_KEYS: orders-service), and the `# derived:public-keys` value
(SERVICE_JWT_PUBLIC_KEYS) lists the public half of every such key (docs/auth.md).

An existing .env is left alone (pass --force to regenerate), so `make env` is safe to repeat;
`--add-missing` only appends the secrets .env.example gained since (existing values untouched)
and publishes the public keys of any private key the file holds but does not list yet.
Runs with the project's virtualenv (`make env` does that): the keys are made with `cryptography`.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

from servicekit.auth import SERVICE_IDENTITIES, ServiceSigningKeys, generate_service_key, private_keys_variable

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<name>[A-Z0-9_]+)=(?P<value>[^#]*?)\s*(#\s*(?P<how>secret|derived):(?P<kind>[\w-]+))?\s*$")
PUBLIC_KEYS = "SERVICE_JWT_PUBLIC_KEYS"
CALLER_OF = {private_keys_variable(caller): caller for caller in SERVICE_IDENTITIES}


def random_value(kind: str, name: str = "") -> str:
    if kind == "keyring":
        return f"k{secrets.token_hex(3)}:{secrets.token_urlsafe(32)}"
    if kind == "password":
        return secrets.token_urlsafe(18)
    if kind == "apikey":  # shaped like a provider's test key
        return f"sk_test_{secrets.token_urlsafe(24)}"
    if kind == "ed25519":
        if name not in CALLER_OF:
            raise ValueError(f"{name}: no service identity of that name ({', '.join(CALLER_OF)})")
        return generate_service_key(CALLER_OF[name])[0]
    raise ValueError(f"unknown secret kind {kind!r}")


def parse(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        match = LINE.match(line)
        if match and not line.startswith("#"):
            values[match["name"]] = match["value"].strip()
    return values


def public_keys(values: dict[str, str], existing: str = "") -> str:
    """Every listed public key kept, and the public half of every private key in `values` added."""
    entries = [entry.strip() for entry in existing.split(",") if entry.strip()]
    for name, caller in CALLER_OF.items():
        if values.get(name):
            for entry in ServiceSigningKeys.parse(values[name], name=name).public_entries(caller):
                if entry not in entries:
                    entries.append(entry)
    return ",".join(entries)


def render(example: str) -> str:
    lines = []
    for line in example.splitlines():
        match = LINE.match(line)
        if match and match["how"] == "secret" and not match["value"].strip():
            lines.append(f"{match['name']}={random_value(match['kind'], match['name'])}")
        else:
            lines.append(line)
    values = parse("\n".join(lines))
    return (
        "\n".join(
            f"{PUBLIC_KEYS}={public_keys(values)}" if line.startswith(f"{PUBLIC_KEYS}=") else line for line in lines
        )
        + "\n"
    )


def missing_secrets(example: str, existing: str) -> list[str]:
    """`NAME=value` lines for the secrets of .env.example that `existing` does not set."""
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    lines = []
    for line in example.splitlines():
        match = LINE.match(line)
        if match and match["how"] == "secret" and not match["value"].strip() and match["name"] not in present:
            lines.append(f"{match['name']}={random_value(match['kind'], match['name'])}")
    return lines


def with_public_keys(text: str) -> tuple[str, bool]:
    """`text` whose SERVICE_JWT_PUBLIC_KEYS lists the public half of every private key in it."""
    values = parse(text)
    current = values.get(PUBLIC_KEYS, "")
    wanted = public_keys(values, current)
    if wanted == current:
        return text, False
    lines = text.splitlines()
    if PUBLIC_KEYS in values:
        lines = [f"{PUBLIC_KEYS}={wanted}" if line.startswith(f"{PUBLIC_KEYS}=") else line for line in lines]
    else:
        lines.append(f"{PUBLIC_KEYS}={wanted}")
    return "\n".join(lines) + "\n", True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--add-missing", action="store_true", help="append secrets an existing file lacks")
    args = parser.parse_args(argv)
    if args.output.exists() and args.add_missing and not args.force:
        existing = args.output.read_text()
        added = missing_secrets(args.example.read_text(), existing)
        separator = "" if existing.endswith("\n") or not existing else "\n"
        updated, published = with_public_keys(existing + separator + "".join(line + "\n" for line in added))
        if added or published:
            args.output.write_text(updated)
            names = [line.split("=", 1)[0] for line in added] + ([PUBLIC_KEYS] if published else [])
            print(f"{args.output}: added {', '.join(names)} (new in .env.example) with fresh random values")
        else:
            print(f"{args.output} exists and has every secret; leaving it alone")
        args.output.touch()
        return 0
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; leaving it alone")
        return 0
    args.output.write_text(render(args.example.read_text()))
    args.output.chmod(0o600)
    print(f"wrote {args.output} with fresh random secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
