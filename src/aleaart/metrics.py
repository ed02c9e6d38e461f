"""Prometheus metrics of one service instance (its own registry, so tests can run many)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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
        self._watch_metrics(r)
        self.webhook_deliveries = Counter("aleaart_webhook_deliveries", "webhook delivery attempts by outcome: "
                                          "delivered, retry (failed, tried again), failed (given up at the horizon), "
                                          "gone (410)", ["outcome"], registry=r)
        self._key_metrics(r)
        Info("aleaart_build", "the running version", registry=r).info({"version": __version__})

    def _key_metrics(self, r: CollectorRegistry) -> None:
        """Per API key, by its name (never its secret); callers without a key are ``-``."""
        self.key_requests = Counter("aleaart_key_requests", "requests that passed the key check", ["key"], registry=r)
        self.key_renders = Counter("aleaart_key_renders", "renders admitted (not store hits or joins)", ["key"],
                                   registry=r)
        self.key_limited = Counter("aleaart_key_limited", "429s for being over a limit: requests, queued, renders",
                                   ["key", "limit"], registry=r)
        self.key_queue_seconds = Histogram("aleaart_key_queue_seconds", "seconds a job waited before it started",
                                           ["key"], buckets=JOB_BUCKETS, registry=r)

    def _watch_metrics(self, r: CollectorRegistry) -> None:
        """The chain watcher's counters (this process's watcher); its state gauges come from ``watch_chain``."""
        self.watch_seen = Counter("aleaart_watch_tokens_seen", "fulfilled tokens the watcher found (new, or with a "
                                  "new seed after a reorganisation)", registry=r)
        self.watch_rendered = Counter("aleaart_watch_tokens_rendered", "tokens whose image the watcher had stored",
                                      registry=r)
        self.watch_render_failures = Counter("aleaart_watch_render_failures", "renders of a watched token that "
                                             "failed (each is retried with backoff)", registry=r)
        self.watch_reorgs = Counter("aleaart_watch_reorgs", "chain reorganisations the watcher undid", registry=r)
        self.watch_rpc_errors = Counter("aleaart_watch_rpc_errors", "passes that could not read the chain",
                                        registry=r)
        self.watch_render_seconds = Histogram("aleaart_watch_ready_seconds", "seconds from the watcher finding a "
                                              "token to its image being stored", buckets=JOB_BUCKETS, registry=r)

    def watch_chain(self, status: Callable[[], dict[str, float | None]]) -> None:
        """Gauges of the watcher's journal (kept in the database, so an API process shows a watcher running in
        another): ``status`` gives head, cursor, lag and token counts; read at most once a second."""
        value = cached_reader(status)
        r = self.registry
        for name, help_text in (("head_block", "the chain's head block when last read"),
                                ("cursor_block", "the last block the watcher has read"),
                                ("lag_blocks", "head minus cursor"),
                                ("lag_seconds", "seconds since the watcher last reached the confirmed head")):
            Gauge(f"aleaart_watch_{name}", help_text, registry=r).set_function(value(name))
        tokens = Gauge("aleaart_watch_tokens", "the watcher's tokens by state (pending includes failed: those "
                       "that failed 3 times or more, still retried)", ["state"], registry=r)
        for state in ("seen", "rendered", "pending", "failed"):
            tokens.labels(state).set_function(value(state))

    def watch_outbox(self, status: Callable[[], dict[str, float | None]]) -> None:
        """Gauges of the webhook outbox: undelivered events and the age of the oldest (read at most once a second)."""
        read = cached_reader(status)
        Gauge("aleaart_webhook_outbox_depth", "webhook events not yet delivered", registry=self.registry) \
            .set_function(read("depth"))
        Gauge("aleaart_webhook_oldest_undelivered_seconds", "age of the oldest undelivered webhook event (0: none)",
              registry=self.registry).set_function(read("oldest_seconds", missing=0.0))

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def cached_reader(status: Callable[[], dict[str, float | None]]) -> Callable[..., Callable[[], float]]:
    """``read(name)``: a gauge function giving ``status()[name]``, with ``status`` called at most once a second
    (one scrape reads many gauges of it); a missing value is ``missing`` (NaN unless given)."""
    cached: dict[str, Any] = {"at": -2.0, "values": {}}

    def read(name: str, missing: float = float("nan")) -> Callable[[], float]:
        def value() -> float:
            if time.monotonic() - cached["at"] > 1.0:
                cached["values"], cached["at"] = status(), time.monotonic()
            found = cached["values"].get(name)
            return missing if found is None else float(found)
        return value

    return read
