"""Start `aleaart serve` as a real process on a free 127.0.0.1 port, bounded in time."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
from waiting import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port_closed(port: int, timeout: float) -> None:
    if not eventually(lambda: not port_open(port), timeout=timeout, every=0.1):
        raise TimeoutError(f"something still answers on 127.0.0.1:{port} after {timeout} s")


def live_group_members(pgid: int) -> list[int]:
    """Processes of the group that still run (zombies excluded: PID 1 here may reap them late)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            live.append(int(stat.parent.name))
    return live


def stop_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM the process group (a wrapper and what it started), SIGKILL what is left after ``timeout``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group outlived the wrapper
    except ProcessLookupError:
        pass
    process.wait(5)


TESTS = Path(__file__).resolve().parents[1]


class Server:
    """``aleaart serve``; with ``fake_step_seconds``, the same app on the fake engine slowed to that."""

    def __init__(self, env: dict[str, str], workdir: Path, *, fake_step_seconds: float | None = None) -> None:
        self.env = env
        self.workdir = workdir
        self.fake_step_seconds = fake_step_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self.process: subprocess.Popen | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 90) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "aleaart.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        env = self.env
        if self.fake_step_seconds is not None:
            cmd = [sys.executable, "-m", "integration.fake_service", str(self.port), str(self.fake_step_seconds)]
            env = {**env, "PYTHONPATH": str(TESTS)}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=log, stderr=log)
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                health = httpx.get(self.url + "/health", timeout=2).json()
            except httpx.TransportError:
                return False
            return not wait_ready or not health["model_loading"]

        if eventually(up, timeout=timeout, every=0.2):
            return self
        self.stop()
        raise TimeoutError(f"server not up in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """kill -9: the process gets no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def server_env(base: dict[str, str], workdir: Path, **extra: str) -> dict[str, str]:
    # A short drain: stop() sends SIGTERM, and a test's leftover job need not hold the teardown for 30 s.
    env = {**base, "ALEAART_IMAGES_DIR": str(workdir / "images"), "PYTHONUNBUFFERED": "1", "ALEAART_DRAIN_SECONDS": "2"}
    env.update({f"ALEAART_{k.upper()}": v for k, v in extra.items()})
    return env


@contextlib.contextmanager
def aleaart_watch(env: dict[str, str], cwd: Path, log_path: Path, *args: str) -> Iterator[subprocess.Popen]:
    """`aleaart watch` as a real process in its own group, its output in ``log_path``; killed (the group) if the
    test has not stopped it."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "aleaart.cli", "watch", *args], env=env, cwd=cwd,
                                   stdout=log, stderr=log, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
