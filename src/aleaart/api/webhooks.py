"""A request's webhook at the edge: checked before its job is made (a refused URL is a 422 and makes no job),
subscribed once the job exists, and shown in the job's answers."""

from __future__ import annotations

import asyncio
from typing import Any

from aleaart.api.schemas import WebhookFields
from aleaart.jobs import Job
from aleaart.webhooks.events import WebhookSpec
from aleaart.webhooks.hub import Webhooks


async def checked_webhook(body: WebhookFields | None, hub: Webhooks) -> WebhookSpec | None:
    spec = body.webhook_spec() if body is not None else None
    if spec is not None:
        await asyncio.to_thread(hub.check, spec.url)  # resolves the host
    return spec


async def subscribed(hub: Webhooks, job: Job, spec: WebhookSpec | None, answer: dict[str, Any],
                     owner: str = "") -> dict[str, Any]:
    """``answer`` for a job made with ``spec`` by key ``owner``: subscribed, and saying so (``webhooks``: this
    subscription only; an identical request's job may have others' too)."""
    if spec is None:
        return answer
    subscription = await asyncio.to_thread(hub.subscribe, job, spec, owner)
    return {**answer, "webhooks": await asyncio.to_thread(hub.job_state, job.id, subscription=subscription)}
