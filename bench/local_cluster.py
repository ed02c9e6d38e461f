"""What the cluster benches share: the environment of a tiny-model service here, and an API with N `aleaart worker`s
and its own redis-server, as real processes on 127.0.0.1 (the test suite's helpers start them)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from integration.cluster import RedisServer, Worker  # noqa: E402
from integration.server import Server, server_env  # noqa: E402


def base_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ALEAART_MODEL", "tiny")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("ALEAART_DEVICE", "cpu")
    env["ALEAART_THREADS"] = str(threads)
    return env


@contextlib.contextmanager
def in_process(work: Path, threads: int, **extra: str) -> Iterator[str]:
    """The embedded service; yields its URL."""
    with Server(server_env(base_env(threads), work, **extra), work) as api:
        yield api.url


@contextlib.contextmanager
def cluster(work: Path, workers: int, threads: int, **extra: str) -> Iterator[str]:
    """redis-server, the API on it and ``workers`` workers of ``threads`` threads each; yields the API's URL."""
    redis_server = RedisServer(work / "redis").start()
    env = server_env(base_env(threads), work / "api", broker_url=redis_server.url, **extra)
    started = [Worker(env, work / f"w{i}", f"bench{i}") for i in range(workers)]
    api = Server(env, work / "api")
    try:
        api.start()
        for worker in started:
            worker.start(api.url)
        yield api.url
    finally:
        for worker in started:
            worker.stop()
        api.stop()
        redis_server.stop()
