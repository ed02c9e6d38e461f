#!/usr/bin/env bash
# Runs the whole test suite: creates .venv if missing, installs the project with its test
# extras, then runs pytest. Extra arguments go to pytest (e.g. ./run_tests.sh -k params).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 is pinned in pyproject.toml: a looser pin pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet -e '.[test]'

# anvil (a local JSON-RPC node) and solcjs for the chain tests, pinned in chain/package-lock.json.
npm ci --prefix chain --no-audit --no-fund --loglevel=error

export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
