"""A real redis-server and real `aleaart worker` processes on 127.0.0.1, each in its own process group."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import redis
from waiting import eventually

from integration.server import free_port, port_open, stop_group, wait_port_closed


class RedisServer:
    """redis-server on a free port, without persistence: a restart starts it empty, the worst case."""

    def __init__(self, workdir: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        if self.binary is None:
            raise RuntimeError("the many-GPU tests need Debian's redis-server: apt-get install redis-server")
        self.workdir.mkdir(parents=True, exist_ok=True)
        wait_port_closed(self.port, 10)
        with open(self.workdir / f"redis-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                cwd=self.workdir, stdout=log, stderr=log, start_new_session=True)
        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited instead of listening on {self.port}")
            return port_open(self.port)

        if not eventually(listening, timeout=20):
            raise RuntimeError(f"redis-server did not start on {self.port}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_group(self.process, 10)
            self.process = None
        wait_port_closed(self.port, 10)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


class Worker:
    """`aleaart worker --name NAME` as a real process."""

    def __init__(self, env: dict[str, str], workdir: Path, name: str) -> None:
        self.env = env
        self.workdir = workdir
        self.name = name
        self.log = workdir / f"worker-{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self, api_url: str | None = None, timeout: float = 120) -> Worker:
        """Start it; with ``api_url``, wait until the API lists it as alive."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "aleaart.cli", "worker", "--name", self.name],
                                            env=self.env, cwd=self.workdir, stdout=log, stderr=log,
                                            start_new_session=True)
        if api_url is not None:
            def listed() -> bool:
                if self.process.poll() is not None:
                    raise RuntimeError(f"worker {self.name} exited:\n{self.log.read_text()[-3000:]}")
                return self.name in worker_names(api_url)

            if not eventually(listed, timeout=timeout, every=0.2):
                raise RuntimeError(f"worker {self.name} did not come up:\n{self.log.read_text()[-3000:]}")
        return self

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops it (warm shutdown)."""
        os.kill(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """kill -9 of the whole group: no chance to clean up or hand its job back."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process, 30)
        elif self.process is not None:
            stop_group(self.process, 1)  # whatever of its group is left

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def health(api_url: str) -> dict:
    return httpx.get(api_url + "/health", timeout=10).json()


def worker_names(api_url: str) -> list[str]:
    try:
        return [w["name"] for w in health(api_url).get("workers", [])]
    except httpx.TransportError:
        return []


def jobs_by_worker(api_url: str) -> dict[str, int]:
    return {w["name"]: w["jobs"] for w in health(api_url)["workers"]}
