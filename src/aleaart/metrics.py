"""Prometheus metrics of one service instance (its own registry, so tests can run many)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from aleaart import __version__

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("aleaart_jobs", "jobs that ended, by kind and final state", ["kind", "state"], registry=r)
        self.job_seconds = Histogram("aleaart_job_seconds", "seconds a job ran (rendering and storing)", ["kind"],
                                     buckets=JOB_BUCKETS, registry=r)
        self.step_seconds = Histogram("aleaart_step_seconds", "seconds of one denoising step", buckets=STEP_BUCKETS,
                                      registry=r)
        self.cache_hits = Counter("aleaart_cache_hits", "requests answered from the store", ["kind"], registry=r)
        self.errors = Counter("aleaart_errors", "error answers, by code", ["code"], registry=r)
        self.queue_depth = Gauge("aleaart_queue_depth", "jobs waiting to run", registry=r)
        self.model_load_seconds = Gauge("aleaart_model_load_seconds", "seconds the model took to load", registry=r)
        self.waiting_clients = Gauge("aleaart_waiting_clients", "requests holding their connection open until a job "
                                     "ends: answer (/generate-image) or events (SSE)", ["how"], registry=r)
        Info("aleaart_build", "the running version", registry=r).info({"version": __version__})

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
