"""The workers' events as the API follows them: a job started, its steps, its previews, and that it is done (a
wake-up to collect its outcome). Best effort: a lost or malformed message is skipped, since outcomes are keys the
API collects anyway (cluster/dispatch.py)."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable

import redis

from aleaart.cluster.wire import EVENTS, Event
from aleaart.jobs.backend import QueueHooks
from aleaart.previews import Preview

log = logging.getLogger(__name__)


class EventFollower:
    """Follows EVENTS until ``halt``: updates the queue's jobs, tells ``started`` of each job a worker took (the
    fair release's count; True when that freed room) and ``wake`` when there is something to do."""

    def __init__(self, client: redis.Redis, queue: QueueHooks, *, started: Callable[[str], bool],
                 wake: Callable[[], None], halt: threading.Event, errors: tuple[type[BaseException], ...]) -> None:
        self.redis, self.queue, self.started, self.wake, self.halt, self.errors = \
            client, queue, started, wake, halt, errors

    def run(self) -> None:
        while not self.halt.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(EVENTS)
                while not self.halt.is_set():
                    if (message := pubsub.get_message(timeout=1.0)) is not None:
                        self.on_raw(message["data"])
            except self.errors:
                self.halt.wait(1.0)  # the watcher reports the broker's state; here, just reconnect
            finally:
                pubsub.close()

    def on_raw(self, data: bytes) -> None:
        try:
            event = Event.from_json(data)
        except (ValueError, TypeError):
            log.warning("ignored a malformed event on %s", EVENTS)
            return
        self.on_event(event)

    def on_event(self, event: Event) -> None:
        if event.kind == "done":
            self.wake()
            return
        if self.started(event.job):
            self.wake()  # room for the next at the broker
        job = self.queue.started(event.job, key=event.key)
        if job is None:
            return
        if event.kind == "step":
            job.progress(event.step, event.total)
        elif event.kind == "preview" and event.image:
            try:
                job.show_preview(Preview(event.step, event.total, base64.b64decode(event.image, validate=True)))
            except binascii.Error:
                log.warning("ignored a preview of job %s that is not base64", event.job)
