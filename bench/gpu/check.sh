#!/usr/bin/env bash
# On the GPU machine (device `run` with carry [".whl"]): install the carried wheels into a temporary site folder,
# then run the check into $OUT. Prepare the wheels first, here: bash bench/gpu/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec python3 bench/gpu/check.py --out "${OUT:?the device machine sets OUT}" "$@"
