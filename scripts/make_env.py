#!/usr/bin/env python3
"""Create .env from .env.example, filling every `# secret:<kind>` value with a random one.

An existing .env is left alone (pass --force to regenerate), so `make env` is safe to repeat.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists; leaving it alone")
        return 0
    args.output.write_text(render(args.example.read_text()))
    args.output.chmod(0o600)
    print(f"wrote {args.output} with fresh random secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
