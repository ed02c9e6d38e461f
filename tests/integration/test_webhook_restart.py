"""Webhooks through restarts of a real server process: events written with a job's change are delivered after a
kill -9 that came before their delivery, and a client that hung up still gets its webhook."""

from __future__ import annotations

import collections

import httpx
from waiting import eventually

from integration.receiver import SECRET, Receiver
from integration.server import Server, server_env

FLAT = {"prompt": "a harbour at night", "steps": 4, "width": 256, "height": 256, "webhook_events_filter": ["output"]}


def test_events_of_a_finished_job_survive_kill_9_before_their_delivery(tiny_env, tmp_path):
    receiver = Receiver()  # not listening yet: every delivery is refused
    env = server_env(tiny_env, tmp_path, webhook_secret=SECRET, webhook_allow_private="1",
                     webhook_retry_seconds="0.2")
    try:
        with Server(env, tmp_path, fake_step_seconds=0.05) as server:
            created = httpx.post(server.url + "/jobs", json={**FLAT, "seed": 1, "webhook": receiver.url})
            job_id = created.json()["jobId"]
            try:  # a client that gives up waiting: its webhook is still told
                httpx.post(server.url + "/generate-image", json={**FLAT, "seed": 2, "webhook": receiver.url},
                           timeout=0.5)
            except httpx.TimeoutException:
                pass

            def owed() -> bool:
                job = httpx.get(f"{server.url}/jobs/{job_id}").json()
                return job["status"] == "succeeded" and job["webhooks"][0]["deliveries"]["pending"] == 3

            assert eventually(owed, timeout=60)
            assert eventually(lambda: len(httpx.get(server.url + "/images").json()["images"]) == 2, timeout=60)
            server.kill()
        receiver.start()
        with Server(env, tmp_path, fake_step_seconds=0.05):
            def told() -> dict[str, list[str]]:
                by_job: dict[str, list[str]] = collections.defaultdict(list)
                for r in receiver.received:
                    by_job[r.body["jobId"]].append(r.event)
                return by_job

            assert eventually(lambda: len(told()) == 2 and all(e[-1:] == ["completed"] for e in told().values()),
                              timeout=60), told()
            assert all(events == ["start", "output", "completed"] for events in told().values()), told()
            assert all(r.verified for r in receiver.received)
            assert len({r.id for r in receiver.received}) == 6
    finally:
        receiver.stop()
