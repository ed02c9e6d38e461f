#!/usr/bin/env bash
# Runs the whole test suite: creates .venv if missing, installs the project with its test
# extras, lints with ruff, then runs pytest. Extra arguments go to pytest (e.g. ./run_tests.sh -k params).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch==2.13.0 is pinned in pyproject.toml: a looser pin pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet -e '.[test]'

# Debian's chromium for the browser tests (Playwright drives it; it downloads no browser), redis-server for the
# many-GPU tests (the Celery broker; the tests start their own on a free port), and podman with debootstrap for the
# container tests (they build the image on a Debian base made here: no registry is reachable).
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-noto-color-emoji)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v podman >/dev/null 2>&1 || missing+=(podman runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "run_tests.sh: ${missing[*]} missing and cannot be installed here; their tests will skip" >&2
    fi
fi

# anvil (a local JSON-RPC node) and solcjs for the chain tests, pinned in chain/package-lock.json;
# the independent JavaScript implementations the tests compare against, in tests/node/package-lock.json.
npm ci --prefix chain --no-audit --no-fund --loglevel=error
npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

.venv/bin/ruff check --quiet src tests bench

export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
