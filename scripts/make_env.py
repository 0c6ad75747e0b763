#!/usr/bin/env python3
"""Create .env from .env.example, filling every `# secret:<kind>` value with a random one.

An existing .env is left alone (pass --force to regenerate), so `make env` is safe to repeat;
`--add-missing` only appends the secrets .env.example gained since (existing values untouched).
Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^(?P<name>[A-Z0-9_]+)=(?P<value>[^#]*?)\s*(#\s*secret:(?P<kind>\w+))?\s*$")


def random_value(kind: str) -> str:
    if kind == "keyring":
        return f"k{secrets.token_hex(3)}:{secrets.token_urlsafe(32)}"
    if kind == "password":
        return secrets.token_urlsafe(18)
    if kind == "apikey":  # shaped like a provider's test key
        return f"sk_test_{secrets.token_urlsafe(24)}"
    raise ValueError(f"unknown secret kind {kind!r}")


def render(example: str) -> str:
    lines = []
    for line in example.splitlines():
        match = LINE.match(line)
        if match and match["kind"] and not match["value"].strip():
            lines.append(f"{match['name']}={random_value(match['kind'])}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def missing_secrets(example: str, existing: str) -> list[str]:
    """`NAME=value` lines for the secrets of .env.example that `existing` does not set."""
    present = {line.split("=", 1)[0].strip() for line in existing.splitlines() if "=" in line}
    lines = []
    for line in example.splitlines():
        match = LINE.match(line)
        if match and match["kind"] and not match["value"].strip() and match["name"] not in present:
            lines.append(f"{match['name']}={random_value(match['kind'])}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--add-missing", action="store_true", help="append secrets an existing file lacks")
    args = parser.parse_args(argv)
    if args.output.exists() and args.add_missing and not args.force:
        added = missing_secrets(args.example.read_text(), args.output.read_text())
        if added:
            existing = args.output.read_text()
            separator = "" if existing.endswith("\n") or not existing else "\n"
            args.output.write_text(existing + separator + "\n".join(added) + "\n")
            names = ", ".join(line.split("=", 1)[0] for line in added)
            print(f"{args.output}: added {names} (new in .env.example) with fresh random values")
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
