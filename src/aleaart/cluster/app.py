"""The Celery application both sides share: the broker, delivery guarantees, priorities, the one task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery

from aleaart.cluster.wire import RUN_JOB
from aleaart.config import Settings


def redis_client(settings: Settings) -> redis.Redis:
    """A client for our own keys; short timeouts so an unreachable Redis is a quick 503, not a hang."""
    return redis.Redis.from_url(str(settings.broker_url), socket_connect_timeout=3, socket_timeout=10,
                                health_check_interval=30, retry_on_timeout=False)


def make_celery(settings: Settings, run_job: Callable[[str, str, dict[str, Any]], None] | None = None) -> Celery:
    """The Celery app on ALEAART_BROKER_URL; a worker passes ``run_job``, the API only sends by name."""
    app = Celery("aleaart", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        # A job is acknowledged when it ends, not when it starts: a worker that dies leaves it to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # with one job at a time: take the next job only when free
        task_ignore_result=True,  # outcomes are our own Redis keys (wire.py), collected by the API
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.redeliver_seconds,
            # Look for abandoned jobs often enough that one comes back soon after the visibility timeout.
            "unacked_restore_interval": max(1, min(10, int(settings.redeliver_seconds // 3) or 1)),
            "unacked_restore_throttle": 1,
            "queue_order_strategy": "priority",  # interactive jobs (0) before a collection's (9)
            "priority_steps": list(range(10)),
            "sep": ":",
            "socket_connect_timeout": 3,
            "socket_timeout": 10,
        },
        # Publishing when Redis is down fails fast, so the API answers 503 broker_unavailable.
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
        worker_send_task_events=True,  # Flower shows jobs as they run
        task_send_sent_event=True,
    )
    if run_job is not None:
        @app.task(name=RUN_JOB, bind=False)
        def _run_job(job_id: str, kind: str, request: dict[str, Any]) -> None:
            run_job(job_id, kind, request)

    return app


def redact(url: str) -> str:
    """The broker URL without its password, for /health and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
