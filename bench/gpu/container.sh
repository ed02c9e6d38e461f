#!/usr/bin/env bash
# On a GPU host with Docker and the NVIDIA Container Toolkit (or Podman with CDI): build the cuda image, start it on
# the tiny model with the GPU, and render once. Prints /health's device and the render's seconds.
#   bash bench/gpu/container.sh [docker|podman]
set -euo pipefail
cd "$(dirname "$0")/../.."
engine="${1:-docker}"
gpu=(--gpus all)
[ "$engine" = podman ] && gpu=(--device nvidia.com/gpu=all)
"$engine" build --target cuda -t aleaart:cuda .
name="aleaart-gpu-check-$$"
"$engine" run -d --name "$name" "${gpu[@]}" -p 127.0.0.1:8000:8000 -e ALEAART_MODEL=tiny aleaart:cuda >/dev/null
trap '"$engine" rm -f "$name" >/dev/null' EXIT
for _ in $(seq 1 120); do
    curl -sf 127.0.0.1:8000/ready >/dev/null && break
    sleep 2
done
curl -s 127.0.0.1:8000/health | python3 -c 'import json, sys; h = json.load(sys.stdin); print("device", h["device"], "cuda", h["cuda_available"])'
curl -s -X POST 127.0.0.1:8000/generate-image -H 'content-type: application/json' \
    -d '{"prompt": "gpu container", "steps": 20, "width": 512, "height": 512, "seed": 1}' \
    | python3 -c 'import json, sys; a = json.load(sys.stdin); print("rendered in", a["seconds"], "s:", a["imageUrl"])'
