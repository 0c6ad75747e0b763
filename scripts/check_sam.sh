#!/usr/bin/env bash
# Offline checks of template.yaml: `sam validate --lint` (cfn-lint), cfn-lint of the stacks in
# deploy/cloudformation/, and `sam build`, then an import
# of every handler from the build output with Python 3.12 alone (no site-packages), which catches
# a dependency missing from requirements.txt or the ServiceKit layer. No AWS account, no Docker.
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

echo "==> importing every handler from the build (python3.12 -S: stdlib + function + layer only)"
for function in OrchestratorFunction:orchestrator.bff.handler PaymentsFunction:orchestrator.payments.handler \
  SweeperFunction:orchestrator.sweeper.handler; do
  dir=${function%%:*} module=${function#*:}
  (cd "$work" && "$python312" -S -c "
import sys
sys.path[:0] = ['$work/build/$dir', '$work/build/ServiceKitLayer/python']
import $module as m
assert callable(m.lambda_handler)
print('   $dir: $module.lambda_handler ok')
")
done
echo "SAM checks passed"
