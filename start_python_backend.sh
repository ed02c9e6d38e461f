#!/usr/bin/env bash
# Starts the AleaArt backend on 0.0.0.0:8000 (ALEAART_HOST / ALEAART_PORT), creating .venv
# and installing the project first if needed. The default model is Stable Diffusion 1.5 from
# the Hugging Face hub; offline, set ALEAART_MODEL=tiny (or a local folder / .safetensors).
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x .venv/bin/aleaart ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch==2.13.0 is pinned in pyproject.toml: a looser pin pulls a multi-GB CUDA build.
    .venv/bin/python -m pip install --quiet -e .
fi
exec .venv/bin/aleaart serve "$@"
