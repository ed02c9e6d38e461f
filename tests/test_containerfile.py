"""The Containerfile and compose files, read without building: both targets resolve (the cuda one cannot be built
here: no GPU, and its wheels are gigabytes), and the compose file's services are the ones the README names."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages() -> dict[str, list[str]]:
    """Each stage of the Containerfile: its name → its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Containerfile").read_text())
    found: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = line.split()[-1] if " AS " in line.upper() else f"stage{len(found)}"
            found[current] = [line]
        elif current is not None:
            found[current].append(line)
    return found


def test_both_targets_resolve_to_the_same_runtime_with_their_own_torch():
    found = stages()
    assert {"cpu", "cuda", "runtime", "build", "build-cpu", "build-cuda"} <= set(found)
    for name, lines in found.items():
        parent = lines[0].split()[1]
        assert parent in found or parent == "${BASE}", (name, parent)  # every FROM is a stage or the base
        for line in lines:
            if (copied := re.search(r"--from=(\S+)", line)) is not None:
                assert copied.group(1) in found, line
    assert found["cpu"][0].split()[1] == found["cuda"][0].split()[1] == "runtime"
    assert any("--from=build-cpu" in line for line in found["cpu"])
    assert any("--from=build-cuda" in line for line in found["cuda"])
    assert any("TORCH_INDEX" in line for line in found["build-cpu"])  # the CPU build of the pinned torch
    assert not any("TORCH_INDEX" in line for line in found["build-cuda"])  # PyPI's, with its CUDA libraries
    runtime = " ".join(found["runtime"])
    assert "USER aleaart" in runtime and "HEALTHCHECK" in runtime and 'VOLUME ["/data", "/cache"]' in runtime
    assert 'ENTRYPOINT ["aleaart"]' in runtime and 'CMD ["serve"]' in runtime


def test_the_compose_file_has_the_api_redis_workers_and_the_watcher():
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "api", "worker", "watch"}
    assert services["api"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    assert services["watch"]["profiles"] == ["watch"]  # only where a contract and RPC are configured
    for name in ("api", "worker", "watch"):
        assert "data:/data" in services[name]["volumes"] and "ALEAART_BROKER_URL=redis://redis:6379/0" in \
            services[name]["environment"]
    gpu = yaml.safe_load((ROOT / "compose.gpu.yaml").read_text())["services"]["worker"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1 and device["capabilities"] == ["gpu"]  # one GPU per worker
