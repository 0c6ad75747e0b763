#!/usr/bin/env bash
# Offline checks of template.yaml: `sam validate --lint` (cfn-lint), cfn-lint of the stacks in
# deploy/cloudformation/, and `sam build`, then scripts/check_lambda_packages.py on the build:
# each function package holds only what it needs, compiled, and every handler imports with
# Python 3.12 alone (no site-packages), which catches a dependency missing from the function's
# packages/<function>.txt or the ServiceKit layer. No AWS account, no Docker.
#
#   scripts/check_sam.sh            (called by `make test`)
#
# SAM CLI and cfn-lint live in .venv-tools (their pins clash with the app's); created if missing.
# `sam build` needs a python3.12 on PATH: PYTHON312 (a path to the interpreter), else python3.12
# on PATH, else a pyenv-installed 3.12.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

tools_venv="$root/.venv-tools"
stamp="$tools_venv/.installed-stamp"
if [[ ! -x "$tools_venv/bin/sam" || ! -f "$stamp" || requirements-tools.txt -nt "$stamp" ]]; then
  echo "==> installing SAM CLI and cfn-lint into .venv-tools"
  python3 -m venv "$tools_venv"
  "$tools_venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-tools.txt
  touch "$stamp"
fi

find_python312() {
  if [[ -n "${PYTHON312:-}" ]]; then echo "$PYTHON312"; return; fi
  local candidate
  for candidate in "$(command -v python3.12 || true)" "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.12*/bin/python3.12; do
    if [[ -n "$candidate" && -x "$candidate" ]] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
      echo "$candidate"; return
    fi
  done
  echo "python3.12 not found: install it or set PYTHON312=/path/to/python3.12" >&2
  exit 1
}
python312=$(find_python312)

export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> sam validate --lint"
"$tools_venv/bin/sam" validate --lint --template-file template.yaml

echo "==> cfn-lint deploy/cloudformation/*.yaml (stacks deployed before template.yaml)"
"$tools_venv/bin/cfn-lint" -- deploy/cloudformation/*.yaml

echo "==> sam build (python: $python312)"
PATH="$(dirname "$python312"):$PATH" "$tools_venv/bin/sam" build \
  --template-file template.yaml --build-dir "$work/build" --cache-dir "$work/cache" --no-cached >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; exit 1; }
grep -m1 "Build Succeeded" "$work/build.log"

echo "==> the Lambda packages: only what each function needs, compiled, importable (python3.12 -S)"
"$python312" -S scripts/check_lambda_packages.py "$work/build"
echo "SAM checks passed"
