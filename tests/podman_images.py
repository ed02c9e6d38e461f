"""Building and running the image here, as tests/test_containers.py does: a Debian base made with debootstrap
(no registry is reachable), a wheelhouse downloaded on the host (the build needs no network), podman as root with
runc and explicit ulimits (this VM cannot raise rlimits; crun rejects its hybrid cgroups). The base images and
the wheelhouse are cached in ALEAART_CONTAINER_CACHE (default /var/cache/aleaart-containers) between runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("ALEAART_CONTAINER_CACHE", "/var/cache/aleaart-containers"))
BASE = "localhost/aleaart-base:bookworm"
REDIS = "localhost/aleaart-redis:bookworm"
IMAGE = "localhost/aleaart:cpu"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


def environment() -> dict[str, str]:
    """podman's environment: runc and the ulimits this VM allows, for every container (podman-compose's too)."""
    conf = CACHE / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        CACHE.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], env=environment(), capture_output=True, text=True, timeout=timeout,
                          check=check)


def why_not_here() -> str | None:
    """Why containers cannot be built and run here (None: they can)."""
    if shutil.which("podman") is None:
        return "podman is not installed (run_tests.sh installs it with apt where it can)"
    if shutil.which("debootstrap") is None and not image_exists(BASE):
        return "debootstrap is not installed (the base image is made with it)"
    if os.geteuid() != 0:
        return "the container tests run podman as root (rootless podman cannot use this VM's cgroups)"
    return None


def image_exists(name: str) -> bool:
    return shutil.which("podman") is not None and podman("image", "exists", name, check=False).returncode == 0


def debian_image(name: str, packages: list[str]) -> None:
    """A Debian bookworm image with ``packages`` (debootstrap, then apt in the chroot), made once and kept."""
    if image_exists(name):
        return
    rootfs = CACHE / f"rootfs-{name.rsplit('/', 1)[-1].replace(':', '-')}"
    shutil.rmtree(rootfs, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian"],
                   check=True, capture_output=True, timeout=900)
    shutil.copy("/etc/resolv.conf", rootfs / "etc/resolv.conf")
    script = ("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              f"{' '.join(packages)} >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*")
    subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", script], check=True, capture_output=True, timeout=900)
    (rootfs / "etc/resolv.conf").unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", name], stdin=tar.stdout, env=environment(), check=True,
                   capture_output=True, timeout=600)
    tar.wait(60)
    shutil.rmtree(rootfs, ignore_errors=True)


def wheelhouse() -> Path:
    """The project's dependencies as wheels (pip download on the host, kept in the cache), linked into the build
    context's containers/wheelhouse/."""
    kept = CACHE / "wheelhouse"
    kept.mkdir(parents=True, exist_ok=True)
    # async-timeout: redis needs it below Python 3.11.3, which Debian's 3.11.2 is and the host's may not be
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(kept), str(ROOT), "setuptools",
                    "wheel", "async-timeout>=4.0.3"], check=True, capture_output=True, timeout=1800)
    context = ROOT / "containers" / "wheelhouse"
    for wheel in kept.iterdir():
        target = context / wheel.name
        if not target.exists():
            try:
                os.link(wheel, target)
            except OSError:
                shutil.copy(wheel, target)
    return context


def build(target: str = "cpu", tag: str = IMAGE) -> subprocess.CompletedProcess:
    return podman("build", "--format", "docker", "--network", "none", "--build-arg", f"BASE={BASE}",
                  "--build-arg", "PIP_ARGS=--no-index --find-links /wheels", "--target", target, "-t", tag,
                  "-f", str(ROOT / "Containerfile"), str(ROOT), timeout=1800)
