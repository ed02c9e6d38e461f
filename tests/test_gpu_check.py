"""The prepared GPU check (bench/gpu): its budget logic, its wheel list against the GPU machine's packages, and a
dry run of the whole script on the CPU with the tiny model, so it cannot rot unseen."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "bench" / "gpu"
sys.path.insert(0, str(GPU))

from budget import MIN_PART_SECONDS, Budget  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_part_gets_its_own_budget_capped_by_what_is_left_and_skips_steps_that_do_not_fit():
    clock = Clock()
    budget = Budget(100, clock)

    def part(b):
        assert b.left() == 60  # its own budget, under the 100 left
        assert b.allows("quick", 10)
        clock.now += 55
        assert not b.allows("slow", 10)  # 5 s left
        return [{"what": "quick"}]

    result = budget.run("first", 60, part)
    assert result.status == "ok" and result.seconds == 55 and result.rows == [{"what": "quick"}]
    assert result.note == "skipped slow: needs about 10 s, 5 s left"
    capped = budget.run("second", 500, lambda b: [{"left": b.left()}])
    assert capped.rows == [{"left": 45}]  # what is left of the whole


def test_a_failing_part_is_reported_and_the_rest_still_run_until_the_whole_budget_is_spent():
    clock = Clock()
    budget = Budget(30, clock)

    def broken(b):
        clock.now += 10
        raise RuntimeError("CUDA error: out of memory")

    failed = budget.run("broken", 20, broken)
    assert failed.status == "failed" and failed.note == "RuntimeError: CUDA error: out of memory"
    assert budget.run("next", 20, lambda b: []).status == "ok"
    clock.now += 30 - 10 - MIN_PART_SECONDS + 1
    spent = budget.run("late", 20, lambda b: pytest.fail("a part with no time must not start"))
    assert spent.status == "skipped" and "budget is spent" in spent.note


def names(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {canonical(re.split(r"[=<>!~ ]", line)[0]) for line in lines if line}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(dist: str) -> set[str]:
    """A distribution's requirements on the GPU machine (Python 3.12 on Linux), extras left out; none for one not
    installed here."""
    try:
        required = metadata.requires(dist) or []
    except metadata.PackageNotFoundError:
        return set()
    environment = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.3",
                   "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}
    found = set()
    for text in required:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
            found.add(canonical(requirement.name))
    return found


def test_the_carried_wheels_and_the_gpu_image_hold_everything_the_check_imports():
    gpu, carried = names(GPU / "gpu_packages.txt"), names(GPU / "wheels.txt")
    other_versions = {canonical(line.split("=")[0]) for line in (GPU / "wheels.txt").read_text().splitlines()
                      if "# another version" in line}
    assert gpu & carried == other_versions, "carried but already there (carry one only for another version)"
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, json, importlib.metadata as m; sys.path[:0] = ['bench', 'bench/gpu'];"
         "import check, aleaart.engine.pipeline, aleaart.jobs, aleaart.jobs.inprocess, aleaart.provenance.credentials,"
         " aleaart.store, aleaart.motion, bench_sd15_random;"
         "d = m.packages_distributions();"
         "print(json.dumps(sorted({x for k in sys.modules for x in d.get(k.split('.')[0], [])})))"],
        cwd=ROOT, capture_output=True, text=True, check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    found = {canonical(d) for d in json.loads(imported.stdout.strip().splitlines()[-1])} - {"aleaart"}
    provided = gpu | carried
    # What a package the machine has already needs (and what that needs) comes with it there, in its versions.
    through_gpu, todo = set(), list(found & gpu)
    while todo:
        for needed in requirements(todo.pop()) - through_gpu:
            through_gpu.add(needed)
            todo.append(needed)
    missing = {d for d in found - provided if d not in through_gpu}
    assert not missing, f"imported by the check but neither on the GPU machine nor carried: {sorted(missing)}"
    # (A carried wheel's declared needs that nothing imports on Python 3.12, as diffusers' importlib_metadata,
    # are left behind: the wheels are installed with --no-deps.)
    assert {"diffusers", "pydantic", "torchsde", "c2pa-python"} <= carried and "torch" in gpu


def test_the_dry_run_runs_every_part_and_writes_the_table_and_json(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run([sys.executable, str(GPU / "check.py"), "--dry-run", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not list(scratch.glob("aleaart-gpu-check-*"))  # its work folder went with it
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = {p["part"]: p for p in report["parts"]}
    assert list(parts) == ["cuda_tests", "sd15", "aspects", "batches", "service_path"]
    assert all(p["status"] == "ok" for p in parts.values()), parts
    assert parts["cuda_tests"]["rows"][0]["passed"] is True  # here its CUDA cases skip: no CUDA
    variants = {row["what"]: row for row in parts["sd15"]["rows"]}
    assert variants["eager"]["unet_it_s"] > 0 and variants["compile"]["compile_s"] > 0
    assert variants["compile_cudagraphs"]["skipped"] == "CUDA graphs need CUDA"
    assert len(parts["aspects"]["rows"]) == 5
    assert {row["what"] for row in parts["batches"]["rows"]} == {"variations of 8 (one batch)", "animation, 2 frames"}
    service = parts["service_path"]["rows"][0]
    assert service["outside_engine_s"] >= 0 and service["file_kib"] > 0
    table = (tmp_path / "gpu_check.md").read_text()
    assert table.startswith("| part | what | figures |") and table in done.stdout
    assert report["environment"]["dry_run"] is True
