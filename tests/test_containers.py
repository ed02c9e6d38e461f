"""The image and the compose stack, built and run here with podman (tests/podman_images.py: a debootstrap base, a
wheelhouse, runc). Slow the first time on a machine (the base and the wheelhouse are kept after it)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from integration.server import free_port
from podman_images import BASE, IMAGE, REDIS, ROOT, build, debian_image, environment, podman, wheelhouse, why_not_here
from waiting import waited

pytestmark = pytest.mark.skipif(why_not_here() is not None, reason=why_not_here() or "")

BODY = {"prompt": "in a container", "steps": 4, "width": 256, "height": 256, "seed": 5}


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    debian_image(BASE, ["python3", "python3-venv", "ca-certificates"])
    probe = podman("run", "--rm", "--network", "none", BASE, "true", check=False)
    if probe.returncode != 0:  # installed, but this machine cannot run containers (a container itself, say)
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    wheelhouse()
    built = build()
    assert built.returncode == 0, built.stderr[-3000:]
    print(f"\nbase, wheelhouse and {IMAGE} ready in {time.monotonic() - started:.0f} s")
    return IMAGE


def run(image: str, volume: str, port: int, *extra: str) -> str:
    name = f"aleaart-test-{uuid.uuid4().hex[:8]}"
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/data",
           "-e", "ALEAART_MODEL=tiny", "-e", "ALEAART_DRAIN_SECONDS=5", *extra, image)
    return name


def ready(url: str, timeout: float = 300) -> dict:
    def health() -> dict | None:
        try:
            return httpx.get(url + "/health", timeout=5).json()
        except httpx.HTTPError:
            return None

    return waited(health, lambda h: h is not None and h["model_loaded"], timeout=timeout, every=0.5,
                  what="the container's service ready")


def test_the_image_renders_as_non_root_into_its_volume_drains_on_stop_and_a_new_one_serves_the_old_store(image):
    volume, port = f"aleaart-test-{uuid.uuid4().hex[:8]}", free_port()
    podman("volume", "create", volume)
    names: list[str] = []
    try:
        started = time.monotonic()
        names.append(run(image, volume, port))
        url = f"http://127.0.0.1:{port}"
        ready(url)
        print(f"\nstart to ready with the tiny model: {time.monotonic() - started:.1f} s")
        answer = httpx.post(url + "/generate-image", json=BODY, timeout=300).json()
        assert answer["success"], answer
        png = httpx.get(url + answer["imageUrl"], timeout=30).content
        listed = podman("exec", names[0], "ls", "/data/images").stdout.split()
        assert answer["imageUrl"].rsplit("/", 1)[-1] in listed  # in the volume
        assert podman("exec", names[0], "id", "-u").stdout.strip() == "10001"  # not root
        assert podman("healthcheck", "run", names[0], check=False).returncode == 0  # its HEALTHCHECK answers
        podman("stop", "-t", "30", names[0])
        assert podman("inspect", names[0], "--format", "{{.State.ExitCode}}").stdout.strip() == "0"  # drained

        names.append(run(image, volume, port))  # an upgrade: a new container on the old volume
        ready(url)
        again = httpx.get(url + answer["imageUrl"], timeout=30)
        assert again.status_code == 200 and hashlib.sha256(again.content).digest() == hashlib.sha256(png).digest()
    finally:
        for name in names:
            podman("rm", "-f", "-t", "5", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def test_the_runtime_stage_has_no_compilers_caches_wheels_or_test_tools(image):
    probe = podman("run", "--rm", "--entrypoint", "sh", image, "-c",
                   "for c in gcc cc g++ make pip pip3 pytest; do command -v $c; done; ls -d /wheels /src 2>/dev/null;"
                   " python3 -c 'import playwright' 2>/dev/null && echo playwright; true")
    assert probe.stdout.strip() == "", probe.stdout
    size = int(podman("image", "inspect", image, "--format", "{{.Size}}").stdout.strip())
    layers = podman("history", image, "--format", "{{.CreatedBy}}").stdout
    assert "pip install" not in layers and "/wheels" not in layers  # the build stage's work is not in it
    print(f"\n{image}: {size / 2**30:.2f} GiB")


def test_compose_api_redis_and_two_workers_render_four_and_a_killed_worker_loses_none(image):
    debian_image(REDIS, ["redis-server"])
    beside = Path(sys.executable).parent / "podman-compose"  # the test extras' own, beside this Python
    compose = str(beside) if beside.exists() else shutil.which("podman-compose")
    if compose is None:
        pytest.skip("podman-compose is not installed (it is in the test extras: pip install -e '.[test]')")
    project, port = f"aleaart-test-{uuid.uuid4().hex[:8]}", free_port()
    env = {**environment(), "ALEAART_IMAGE": image, "ALEAART_REDIS_IMAGE": REDIS, "ALEAART_MODEL": "tiny",
           "ALEAART_PUBLISH": f"127.0.0.1:{port}", "ALEAART_REDELIVER_SECONDS": "10", "ALEAART_HEARTBEAT_SECONDS": "1"}
    url = f"http://127.0.0.1:{port}"

    def compose_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([compose, "-p", project, "-f", str(ROOT / "compose.yaml"), *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600)

    try:
        up = compose_run("up", "-d", "--scale", "worker=2")
        assert up.returncode == 0, up.stderr[-2000:]
        waited(lambda: httpx.get(url + "/health", timeout=5).json() if _up(url) else None,
               lambda h: h is not None and len(h["workers"]) == 2 and h["model_loaded"], timeout=300, every=1,
               what="the api and two workers")
        jobs = [httpx.post(url + "/jobs", json={**BODY, "steps": 40, "width": 512, "height": 512, "seed": s},
                           timeout=30).json()["jobId"] for s in range(4)]
        busy = waited(lambda: [w for w in httpx.get(url + "/health", timeout=5).json()["workers"] if w["job"]],
                      lambda ws: bool(ws), timeout=120, every=0.2, what="a worker running a job")
        victim = busy[0]["name"].rsplit("-", 1)[0]  # its hostname: the container's short id
        podman("kill", "-s", "KILL", victim)
        done = waited(lambda: [httpx.get(f"{url}/jobs/{j}", timeout=10).json()["status"] for j in jobs],
                      lambda states: all(s in ("succeeded", "failed", "cancelled") for s in states), timeout=600,
                      every=1, what="the four jobs")
        assert done == ["succeeded"] * 4
    finally:
        compose_run("down", "-v", "-t", "5")
        leftovers = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}", check=False)
        for container in leftovers.stdout.split():
            podman("rm", "-f", "-t", "2", container, check=False)
        for volume in podman("volume", "ls", "-q", check=False).stdout.split():
            if volume.startswith(project):
                podman("volume", "rm", "-f", volume, check=False)
        podman("network", "rm", "-f", f"{project}_default", check=False)
    assert project not in podman("ps", "-a", "--format", "{{.Names}}").stdout  # nothing left behind


def _up(url: str) -> bool:
    try:
        httpx.get(url + "/health", timeout=5)
    except httpx.HTTPError:
        return False
    return True
