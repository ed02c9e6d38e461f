#!/usr/bin/env bash
# On a CPU machine with PyPI: download bench/gpu/wheels.txt's wheels for the GPU machine (CPython 3.12,
# manylinux x86-64) into .whl/ (ignored by git), which the device call carries: `carry: [".whl"]`.
# Checks they fit the 64 MiB the working tree may take with them.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
rm -rf .whl && mkdir -p .whl
platforms=()
for p in manylinux_2_39 manylinux_2_35 manylinux_2_34 manylinux_2_31 manylinux_2_28 manylinux_2_27 manylinux_2_24 \
         manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${p}_x86_64")
done
grep -v '^\s*#' bench/gpu/wheels.txt | grep -v '^\s*$' | while read -r requirement; do
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "$requirement"
done
wheels=$(du -cm .whl/*.whl | tail -1 | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1)
echo "$(ls .whl/*.whl | wc -l) wheels, ${wheels} MiB; with the tracked tree (${tree} MiB): $((wheels + tree)) MiB of 64"
if [ $((wheels + tree)) -ge 64 ]; then
    echo "fetch_wheels.sh: over the 64 MiB a device call may carry" >&2
    exit 1
fi
