"""The service under the failures an operator meets: full disks, broken indexes, bad files, kill -9, SIGTERM.

Real server processes on 127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image
from sse import sse_events
from waiting import eventually, waited

from integration.server import Server, server_env

SMALL = {"prompt": "reliable", "steps": 4, "width": 256, "height": 256}


@contextlib.contextmanager
def small_tmpfs(path, megabytes: int):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder, leave_mb: float) -> None:
    """Fill the file system of ``folder`` until ``leave_mb`` is free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    size = max(0, free - int(leave_mb * 1024 * 1024))
    with open(folder / "filler", "wb") as handle:
        handle.truncate(0)
        chunk = b"\0" * (1024 * 1024)
        while size > 0:
            handle.write(chunk[: min(size, len(chunk))])
            size -= len(chunk)


def test_a_full_disk_is_a_507_before_rendering_and_said_at_start(tiny_env, tmp_path):
    with small_tmpfs(tmp_path / "disk", megabytes=24) as disk:
        env = server_env(tiny_env, disk, min_free_mb="8")  # images and index on the small disk, logs off it
        with Server(env, tmp_path / "work") as server:
            first = httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 1}, timeout=120)
            assert first.status_code == 200
            fill(disk, leave_mb=4)
            refused = httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 2}, timeout=60)
            assert refused.status_code == 507 and refused.json()["code"] == "disk_full"
            assert "disk full" in refused.json()["error"]
            stored = httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 1}, timeout=60)
            assert stored.status_code == 200 and stored.json()["cached"] is True  # reads still work
            (disk / "filler").unlink()
            assert httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 2}, timeout=120).status_code == 200
        fill(disk, leave_mb=0)
        again = Server(env, tmp_path / "work")
        with pytest.raises(RuntimeError, match="exited early"):
            again.start()  # the index cannot even be opened: one line that says so, not a traceback
        assert again.process.returncode == 1
        log = again.log.read_text().strip().splitlines()
        assert log[-1].startswith("aleaart: error: disk full") and not any("Traceback" in line for line in log)


def test_on_a_disk_with_no_room_at_all_stored_images_are_answered_and_new_work_is_507(tiny_env, tmp_path):
    """ALEAART_MIN_FREE_MB=0: nothing refuses early, so the database's own "disk is full" is what is met."""
    with small_tmpfs(tmp_path / "disk", megabytes=24) as disk:
        env = server_env(tiny_env, disk, min_free_mb="0")
        with Server(env, tmp_path / "work") as server:
            made = httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 1}, timeout=120).json()
            fill(disk, leave_mb=0)
            for path, status in (("/generate-image", 200), ("/jobs", 202)):
                for _ in range(3):  # and asked for again: nothing is written for a store hit
                    hit = httpx.post(server.url + path, json={**SMALL, "seed": 1}, timeout=60)
                    assert hit.status_code == status, hit.text
            assert hit.json()["result"]["sha256"] == made["sha256"]
            for path in ("/generate-image", "/jobs"):
                new = httpx.post(server.url + path, json={**SMALL, "seed": 7}, timeout=60)
                assert new.status_code == 507 and new.json()["code"] == "disk_full", new.text
            (disk / "filler").unlink()


def test_jobs_accepted_before_a_stop_survive_a_garbled_index(tiny_env, tmp_path):
    """The image index is derived (rebuilt from the PNGs); the job journal is not, and lives apart from it."""
    env = server_env(tiny_env, tmp_path, drain_seconds="0")
    server = Server(env, tmp_path, fake_step_seconds=0.5).start()
    try:
        made = httpx.post(server.url + "/generate-image", json={**SMALL, "seed": 30, "steps": 2}, timeout=60).json()
        accepted = [httpx.post(server.url + "/jobs", json={**SMALL, "seed": s, "steps": 40}).json()["jobId"]
                    for s in (31, 32, 33)]
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    finally:
        server.stop()
    index = tmp_path / "images" / "index.db"
    with open(index, "r+b") as handle:
        handle.write(b"\xff" * 100)  # the header garbled
    with Server(env, tmp_path, fake_step_seconds=0.001) as after:
        assert "index.db.corrupt-" in after.log.read_text()
        assert httpx.get(after.url + "/images").json()["total"] >= 1  # rebuilt from the PNGs
        assert httpx.get(after.url + made["imageUrl"]).status_code == 200

        def all_succeeded() -> bool:
            return all(httpx.get(f"{after.url}/jobs/{job_id}").json().get("status") == "succeeded"
                       for job_id in accepted)

        assert eventually(all_succeeded, timeout=120), [httpx.get(f"{after.url}/jobs/{j}").json() for j in accepted]
        assert "journal_lost" not in httpx.get(after.url + "/health").json()


def test_a_broken_index_and_bad_entries_do_not_stop_the_start(tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path)
    with Server(env, tmp_path) as first:
        made = httpx.post(first.url + "/generate-image", json={**SMALL, "seed": 5}, timeout=120).json()
    images = tmp_path / "images"
    (images / "index.db").write_bytes(b"\xff" * 4096)  # garbled
    for suffix in ("-wal", "-shm"):
        (images / f"index.db{suffix}").unlink(missing_ok=True)
    (images / "art_token_9_0123456789abcdef.png").mkdir()  # a directory named like a PNG
    (images / "art_token_8_0123456789abcdef.png").write_bytes(b"\x89PNG truncated")
    with Server(env, tmp_path) as second:
        listed = httpx.get(second.url + "/images").json()
        assert [i["sha256"] for i in listed["images"]] == [made["sha256"]]
        served = httpx.get(second.url + made["imageUrl"])
        assert hashlib.sha256(served.content).hexdigest() == made["sha256"]
    log = second.log.read_text()
    assert "moved it to" in log and "index.db.corrupt-" in log and "skipping art_token_9_" in log


def assert_store_consistent(url: str, images) -> None:
    """Every PNG decodes, and disk, index and API agree on each sha256; no temp file is left."""
    listed = httpx.get(url + "/images", params={"limit": 100}).json()["images"]
    on_disk = {p.name: p for p in images.glob("art_token_*.png")}
    assert {i["imageUrl"].rsplit("/", 1)[1] for i in listed} == set(on_disk)
    for item in listed:
        data = on_disk[item["imageUrl"].rsplit("/", 1)[1]].read_bytes()
        Image.open(io.BytesIO(data)).load()
        assert hashlib.sha256(data).hexdigest() == item["sha256"]
        assert hashlib.sha256(httpx.get(url + item["imageUrl"]).content).hexdigest() == item["sha256"]
    assert not list(images.glob(".tmp-*"))


def test_kill_9_at_random_points_of_writing_loses_and_corrupts_nothing(tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path)
    rng = random.Random(20261125)
    accepted = []
    for round_ in range(5):
        with Server(env, tmp_path) as server:
            for i in range(3):
                body = {**SMALL, "seed": 100 * round_ + i}
                accepted.append(httpx.post(server.url + "/jobs", json=body).json()["jobId"])
            time.sleep(rng.uniform(0.2, 2.0))  # a random moment of rendering and storing
            server.kill()
    with Server(env, tmp_path) as last:
        states = waited(lambda: [httpx.get(f"{last.url}/jobs/{job_id}").json()["status"] for job_id in accepted],
                        lambda found: all(s == "succeeded" for s in found), timeout=300, every=0.5,
                        what="every accepted job succeeding")
        assert states == ["succeeded"] * len(accepted)
        assert_store_consistent(last.url, tmp_path / "images")


def sse_final_event(url: str, seen: list) -> None:
    with httpx.stream("GET", url, timeout=120) as stream:
        seen.extend(sse_events(stream.iter_lines()))


def waiting_clients(url: str) -> dict[str, float]:
    """aleaart_waiting_clients from /metrics, by how they wait."""
    text = httpx.get(url + "/metrics").text
    return {how: float(value) for how, value in re.findall(r'^aleaart_waiting_clients\{how="(\w+)"\} (\S+)$', text,
                                                            re.MULTILINE)}


def wait_running(url: str, job: dict) -> None:
    assert eventually(lambda: httpx.get(url + job["statusUrl"]).json()["step"] >= 1, timeout=60), \
        "the job never started"


def test_sigterm_drains_answers_everyone_and_exits_0_then_the_jobs_run(tiny_env, tmp_path):
    long_body = {**SMALL, "seed": 1, "steps": 100}  # 50 s at 0.5 s a step: longer than the drain
    env = server_env(tiny_env, tmp_path, drain_seconds="1", keepalive_seconds="0")
    server = Server(env, tmp_path, fake_step_seconds=0.5).start()
    try:
        running = httpx.post(server.url + "/jobs", json=long_body).json()
        queued = [httpx.post(server.url + "/jobs", json={**SMALL, "seed": s}).json() for s in (2, 3)]
        wait_running(server.url, running)
        with ThreadPoolExecutor(2) as pool:
            waiting = pool.submit(httpx.post, server.url + "/generate-image", json=long_body, timeout=120)
            events: list = []
            streaming = pool.submit(sse_final_event, server.url + running["eventsUrl"], events)
            assert eventually(lambda: waiting_clients(server.url) == {"answer": 1.0, "events": 1.0})
            server.process.send_signal(signal.SIGTERM)
            ready = httpx.get(server.url + "/ready")
            assert ready.status_code == 503 and ready.json()["code"] == "shutting_down"
            refused = httpx.post(server.url + "/jobs", json={**SMALL, "seed": 9})
            assert refused.status_code == 503 and refused.json()["code"] == "shutting_down"
            assert int(refused.headers["retry-after"]) > 0
            answer = waiting.result(60)
            streaming.result(60)
        assert server.process.wait(60) == 0
        assert answer.status_code == 503 and answer.json()["code"] == "shutting_down"
        assert running["jobId"] in answer.json()["error"]
        assert events[-1][0] == "shutting_down" and events[-1][1]["jobId"] == running["jobId"]
    finally:
        server.stop()
    with Server(server_env(tiny_env, tmp_path), tmp_path, fake_step_seconds=0.001) as after:
        for job in [running, *queued]:
            waited(lambda job=job: httpx.get(after.url + job["statusUrl"]).json(),
                   lambda state: state["status"] == "succeeded", timeout=60, every=0.1, what=f"job {job['jobId']}")
        assert httpx.get(after.url + running["statusUrl"]).json()["attempts"] == 1


def test_sigterm_lets_a_job_that_fits_in_the_drain_finish_for_its_client(tiny_env, tmp_path):
    env = server_env(tiny_env, tmp_path, drain_seconds="30", keepalive_seconds="0")
    server = Server(env, tmp_path, fake_step_seconds=0.5).start()
    try:
        body = {**SMALL, "seed": 4, "steps": 6}  # 3 s
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(httpx.post, server.url + "/generate-image", json=body, timeout=120)
            job = httpx.post(server.url + "/jobs", json=body).json()  # the same job: watch it start
            wait_running(server.url, job)
            server.process.send_signal(signal.SIGTERM)
            answer = waiting.result(60)
        assert answer.status_code == 200 and answer.json()["success"] is True
        assert server.process.wait(60) == 0
    finally:
        server.stop()
