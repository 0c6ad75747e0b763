#!/usr/bin/env python3
"""Print one environment's `parameter_overrides` from samconfig.toml, one per line.

`sam deploy --parameter-overrides X=Y` on the command line replaces samconfig's list instead of
adding to it, so the deploy workflow passes samconfig's list plus the image tags:

    mapfile -t overrides < <(python3 scripts/sam_overrides.py staging)
    sam deploy --config-env staging --parameter-overrides "${overrides[@]}" "MigrationImageTag=$TAG"

`--stack-name` prints the environment's stack name instead.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

SAMCONFIG = Path(__file__).resolve().parents[1] / "samconfig.toml"


def deploy_parameters(environment: str, path: Path = SAMCONFIG) -> dict:
    config = tomllib.loads(path.read_text())
    try:
        return config[environment]["deploy"]["parameters"]
    except KeyError:
        raise SystemExit(f"{path.name} has no [{environment}.deploy.parameters]") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("environment")
    parser.add_argument("--stack-name", action="store_true", help="print the stack name instead")
    parser.add_argument("--samconfig", type=Path, default=SAMCONFIG)
    args = parser.parse_args(argv)
    parameters = deploy_parameters(args.environment, args.samconfig)
    if args.stack_name:
        print(parameters["stack_name"])
        return 0
    overrides = parameters.get("parameter_overrides", [])
    for item in [overrides] if isinstance(overrides, str) else overrides:
        if "\n" in item:
            raise SystemExit(f"a parameter override spans lines: {item!r}")
        print(item)
    return 0


if __name__ == "__main__":
    sys.exit(main())
