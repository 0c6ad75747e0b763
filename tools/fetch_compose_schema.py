#!/usr/bin/env python3
"""Fetch the Compose Specification JSON schema for offline validation of docker-compose.yml.

The schema is taken from a pinned wheel on PyPI that vendors it (check-jsonschema ships the
compose-spec schema among its builtin schemas), with `pip download --no-deps`, and verified
against a pinned SHA-256, so a clean clone gets byte-for-byte the same file:

    python tools/fetch_compose_schema.py            # writes tools/.cache/compose-spec.json
    python tools/fetch_compose_schema.py --check    # exit 1 if missing or not the pinned file

Nothing is installed: the wheel is only unpacked. Re-running with the file in place is a no-op.
To move to a newer schema, bump WHEEL and SCHEMA_SHA256 together (the script prints the hash of
what it found when they disagree).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WHEEL = "check-jsonschema==0.39.0"
MEMBER = "check_jsonschema/builtin_schemas/vendor/compose-spec.json"
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
DEFAULT_OUTPUT = ROOT / "tools" / ".cache" / "compose-spec.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def is_current(path: Path) -> bool:
    return path.is_file() and sha256(path.read_bytes()) == SCHEMA_SHA256


def download_schema() -> bytes:
    with tempfile.TemporaryDirectory(prefix="compose-schema-") as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                tmp,
                WHEEL,
            ],
            check=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise SystemExit(f"expected one wheel for {WHEEL}, got {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as archive:
            return archive.read(MEMBER)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true", help="only verify the file in place")
    args = parser.parse_args(argv)
    if is_current(args.output):
        return 0
    if args.check:
        print(f"{args.output} is missing or is not the pinned schema; run {Path(__file__).name}", file=sys.stderr)
        return 1
    data = download_schema()
    digest = sha256(data)
    if digest != SCHEMA_SHA256:
        print(f"{WHEEL}:{MEMBER} has sha256 {digest}, expected {SCHEMA_SHA256}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    print(f"wrote {args.output} (compose-spec schema from {WHEEL})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
