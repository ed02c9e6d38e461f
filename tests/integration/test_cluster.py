"""Many GPUs: one API and two `aleaart worker` processes on the tiny model, through a real redis-server.

Everything is a real process on 127.0.0.1: redis-server, the API (`aleaart serve` with
ALEAART_BROKER_URL) and the Celery workers. Long jobs are 100-step renders (seconds each here),
so a job can be caught running; every wait is bounded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from evm import mint_cheap
from sse import sse_events
from waiting import eventually, waited

from aleaart.cluster.wire import Outcome, outcome_key
from aleaart.provenance.credentials import read_credentials
from integration.cluster import RedisServer, Worker, health, jobs_by_worker
from integration.server import Server, aleaart_watch, server_env

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None and not os.environ.get("CI"),
                                reason="redis-server is not installed (run_tests.sh installs it; CI fails instead)")

FAST = {"steps": 4, "width": 256, "height": 256}
LONG = {"steps": 100, "width": 512, "height": 512}  # long enough on the tiny model to be caught running


@pytest.fixture(scope="module")
def cluster(tiny_env, tmp_path_factory, anvil, contract):
    workdir = tmp_path_factory.mktemp("cluster")
    redis_server = RedisServer(workdir / "redis").start()
    env = server_env(tiny_env, workdir / "api", broker_url=redis_server.url, heartbeat_seconds="0.5",
                     redeliver_seconds="3", threads="1", rpc_url=anvil.url, chain_id="31337",
                     params_contract=contract.address, collections_dir=str(workdir / "collections"))
    api = Server(env, workdir / "api")
    workers = [Worker(env, workdir / name, name) for name in ("gpu0", "gpu1")]
    try:
        api.start()
        cluster = Cluster(api, workers, redis_server, env, workdir)
        cluster.early_job = cluster.submit({**FAST, "prompt": "before any worker", "seed": 1})  # waits in the queue
        cluster.early_health = health(api.url)
        for worker in workers:
            worker.start(api.url)
        yield cluster
    finally:
        for worker in workers:
            worker.stop()
        api.stop()
        redis_server.stop()


class Cluster:
    def __init__(self, api: Server, workers: list[Worker], redis_server: RedisServer, env: dict, workdir: Path):
        self.api, self.workers, self.redis, self.env, self.workdir = api, workers, redis_server, env, workdir

    @property
    def url(self) -> str:
        return self.api.url

    def images(self) -> list[Path]:
        return sorted((self.workdir / "api" / "images").glob("*.png"))

    def submit(self, body: dict) -> str:
        answer = httpx.post(self.url + "/jobs", json=body, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()["jobId"]

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/jobs/{job_id}", timeout=10).json()

    def wait(self, job_id: str, until, timeout: float = 120) -> dict:
        return waited(lambda: self.job(job_id), until, timeout=timeout, every=0.1, what=f"job {job_id}'s change")

    def start_long_job(self, prompt: str, seed: int) -> tuple[str, Worker]:
        """A long job, once it runs: its id and the worker it runs on."""
        job_id = self.submit({**LONG, "prompt": prompt, "seed": seed})
        self.wait(job_id, running)
        return job_id, self.running_on(job_id)

    def assert_finished_on_the_other(self, job_id: str, gone: Worker) -> None:
        """The job succeeded on the worker that is not ``gone``, and its key has exactly one file."""
        status = self.wait(job_id, finished, timeout=240)
        assert status["status"] == "succeeded", status
        other = next(w for w in self.workers if w is not gone)
        assert f"job {job_id}" in other.output()
        key = status["result"]["imageId"]
        assert len([p for p in self.images() if key[:16] in p.name]) == 1

    def replace(self, worker: Worker) -> None:
        """A new worker under the same name, for the tests after this one."""
        self.workers[self.workers.index(worker)] = Worker(self.env, worker.workdir, worker.name).start(self.url)

    def running_on(self, job_id: str) -> Worker:
        """The worker that runs the job, once one says so."""
        def says_it() -> str | None:
            return next((info["name"] for info in health(self.url)["workers"] if info["job"] == job_id), None)

        name = waited(says_it, every=0.1, what=f"a worker saying it runs {job_id}")
        return next(w for w in self.workers if w.name == name)


def running(status: dict) -> bool:
    return status["status"] == "running" and status["step"] >= 2


def finished(status: dict) -> bool:
    return status["status"] in ("succeeded", "failed", "cancelled")


def test_with_no_worker_alive_jobs_wait_in_the_queue(cluster):
    assert cluster.early_health["workers"] == [] and cluster.early_health["model_loaded"] is False
    assert cluster.early_health["queue_depth"] == 1
    status = cluster.wait(cluster.early_job, finished, timeout=120)  # the workers came up and took it
    assert status["status"] == "succeeded"


def test_health_lists_both_workers_and_the_broker(cluster):
    state = health(cluster.url)
    assert state["backend"] == "celery" and state["model_loaded"] is True
    assert state["broker"]["state"] == "ok" and state["broker"]["url"] == cluster.redis.url
    workers = {w["name"]: w for w in state["workers"]}
    assert set(workers) == {"gpu0", "gpu1"}
    for info in workers.values():
        assert info["device"] == "cpu" and info["model"] == "tiny" and info["state"] == "idle"
        assert info["seconds_since_heartbeat"] < 30
    assert httpx.get(cluster.url + "/ready", timeout=10).status_code == 200
    assert "loaded aleaart-tiny on cpu" in cluster.workers[0].output()


def test_ten_distinct_requests_spread_over_both_workers(cluster):
    before = jobs_by_worker(cluster.url)
    bodies = [{**FAST, "prompt": "spread", "seed": 100 + i} for i in range(10)]
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda b: httpx.post(cluster.url + "/generate-image", json=b, timeout=180), bodies))
    assert [a.status_code for a in answers] == [200] * 10
    assert len({a.json()["sha256"] for a in answers}) == 10
    # /health shows the workers' counts as of their last heartbeat
    done = waited(lambda: jobs_by_worker(cluster.url), lambda d: sum(d.values()) - sum(before.values()) >= 10,
                  every=0.2, what="10 more renders counted")
    assert sum(done.values()) - sum(before.values()) == 10
    assert all(done[name] > before[name] for name in ("gpu0", "gpu1")), done
    signers = set()
    for answer in answers:  # the PNG the API serves is the one the worker computed the sha256 of, and signed
        png = httpx.get(cluster.url + answer.json()["imageUrl"], timeout=10).content
        assert hashlib.sha256(png).hexdigest() == answer.json()["sha256"]
        read = read_credentials(png, "image/png")
        assert read.state == "Valid" and read.assertion["key"] == answer.json()["imageId"]
        signers.add(read.manifest["signature_info"]["cert_serial_number"])
    assert len(signers) == 1  # both workers sign as one deployment (one ALEAART_CACHE_DIR here: one local key)


def test_an_upscale_and_a_restyle_run_on_workers_from_the_apis_stored_image(cluster):
    source = httpx.post(cluster.url + "/generate-image", json={**FAST, "prompt": "harbour", "seed": 77}, timeout=180)
    key = source.json()["imageId"]
    for path, body, size in [("upscale", {}, (512, 512)), ("restyle", {"styleIndex": 4}, (256, 256))]:
        answer = httpx.post(f"{cluster.url}/images/{key}/{path}", json=body, timeout=30)
        assert answer.status_code == 202, answer.text
        status = cluster.wait(answer.json()["jobId"], finished)
        assert status["status"] == "succeeded", status
        result = status["result"]
        assert result["source"] == key and (result["parameters"]["width"], result["parameters"]["height"]) == size
        png = httpx.get(cluster.url + result["imageUrl"], timeout=10).content
        assert hashlib.sha256(png).hexdigest() == result["sha256"]


def test_an_animation_runs_on_a_worker_and_its_video_is_served_from_the_api(cluster):
    from pixels import decode_mp4

    body = {**FAST, "prompt": "tide", "seed": 78, "frames": 8, "fps": 8}
    answer = httpx.post(cluster.url + "/animations", json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    status = cluster.wait(answer.json()["jobId"], finished)
    assert status["status"] == "succeeded", status
    mp4, webp = status["results"]
    video = httpx.get(cluster.url + mp4["imageUrl"], timeout=10)
    assert video.headers["content-type"] == "video/mp4" and hashlib.sha256(video.content).hexdigest() == mp4["sha256"]
    frames, fps, _ = decode_mp4(video.content)
    assert len(frames) == 8 and fps == 8 and frames[0].size == (256, 256)
    assert httpx.get(cluster.url + webp["imageUrl"], timeout=10).headers["content-type"] == "image/webp"


def test_a_worker_of_another_model_gets_none_of_this_models_jobs(cluster, cache_dir):
    folder = next(Path(cache_dir).glob("tiny-model-*"))  # the same weights, named as another model
    other = Worker({**cluster.env, "ALEAART_MODEL": str(folder)}, cluster.workdir / "other", "other")
    try:
        other.start(cluster.url)
        bodies = [{**FAST, "prompt": "routed", "seed": 300 + i} for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda b: httpx.post(cluster.url + "/generate-image", json=b, timeout=180),
                                    bodies))
        assert [a.status_code for a in answers] == [200] * 4
        workers = {w["name"]: w for w in health(cluster.url)["workers"]}
        assert workers["other"]["model"] == str(folder) and workers["other"]["jobs"] == 0
        assert workers["other"]["queue"] != workers["gpu0"]["queue"]
        assert "job " not in other.output()
    finally:
        other.stop()


def test_a_collection_spreads_over_all_workers(cluster, anvil, contract):
    w3 = anvil.web3()
    tokens = [mint_cheap(contract, w3) for _ in range(4)]  # quick to render: square, few steps
    before = jobs_by_worker(cluster.url)
    created = httpx.post(cluster.url + "/collections", json={"from": tokens[0], "to": tokens[-1]}, timeout=30)
    assert created.status_code == 202, created.text
    status = cluster.wait(created.json()["jobId"], finished, timeout=300)
    assert status["status"] == "succeeded", status
    assert status["summary"]["rendered"] == 4 and not status["summary"]["failed"]
    # counts are as of the workers' last heartbeat
    done = waited(lambda: jobs_by_worker(cluster.url), lambda d: sum(d.values()) - sum(before.values()) >= 4,
                  every=0.2, what="4 more renders counted")
    assert sum(done.values()) - sum(before.values()) == 4
    assert all(done[name] > before[name] for name in ("gpu0", "gpu1")), (before, done)


def test_aleaart_watch_only_enqueues_and_the_workers_render_each_fulfilled_token(cluster, anvil, contract):
    w3 = anvil.web3()
    env = {**cluster.env, "ALEAART_WATCH_FROM_BLOCK": str(w3.eth.block_number + 1),
           "ALEAART_WATCH_POLL_SECONDS": "0.2"}
    before = jobs_by_worker(cluster.url)
    log_path = cluster.workdir / "watch.log"
    with aleaart_watch(env, cluster.workdir / "api", log_path, "--no-progress") as watch:
        tokens = [mint_cheap(contract, w3) for _ in range(2)]

        def rendered() -> bool:
            return all(httpx.get(f"{cluster.url}/tokens/{t}/metadata.json").json()["generation"]["sha256"]
                       for t in tokens)

        assert eventually(rendered, timeout=240), log_path.read_text()[-2000:]
        def watcher_caught_up() -> bool:  # the API shows the other process's watcher, a poll behind the store
            watcher = health(cluster.url)["chain_watcher"]
            return watcher["tokens"]["rendered"] >= 2 and watcher["status"] == "following"

        assert eventually(watcher_caught_up, timeout=30), health(cluster.url)["chain_watcher"]
        # The workers rendered them (counts are as of their last heartbeat).
        assert eventually(lambda: sum(jobs_by_worker(cluster.url).values()) - sum(before.values()) >= 2, timeout=30)
        os.killpg(watch.pid, signal.SIGTERM)
        assert watch.wait(30) == 0


def test_twenty_identical_concurrent_requests_render_once(cluster):
    body = {**FAST, "prompt": "one of twenty", "seed": 2020, "tokenId": "2020"}
    before, files_before = health(cluster.url)["generations"], len(cluster.images())
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: httpx.post(cluster.url + "/generate-image", json=body, timeout=180),
                                range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert len({a.json()["sha256"] for a in answers}) == 1
    assert health(cluster.url)["generations"] == before + 1
    assert len(cluster.images()) == files_before + 1
    assert len([p for p in cluster.images() if p.name.startswith("art_token_2020_")]) == 1


def test_events_show_the_steps_of_a_job_run_by_a_worker(cluster):
    job_id = cluster.submit({**FAST, "steps": 12, "prompt": "events", "seed": 77})
    with httpx.stream("GET", f"{cluster.url}/jobs/{job_id}/events", timeout=120) as stream:
        events = list(sse_events(stream.iter_lines()))
    steps = [data["step"] for kind, data in events if kind == "progress"]
    assert steps == sorted(steps) and 1 <= len(set(steps) - {0}) and max(steps) >= 6
    kind, final = events[-1]
    assert kind == "result" and final["status"] == "succeeded" and final["step"] == final["totalSteps"] == 12


def test_cancel_a_running_and_a_queued_job(cluster):
    files_before = len(cluster.images())
    long_a, _ = cluster.start_long_job("cancel me", 1)
    long_b, _ = cluster.start_long_job("cancel me", 2)  # both workers are busy: the next job waits in the queue
    queued = cluster.submit({**FAST, "prompt": "never runs", "seed": 3})
    assert cluster.job(queued)["status"] == "queued"
    assert httpx.delete(f"{cluster.url}/jobs/{queued}", timeout=10).json()["status"] == "cancelled"
    for job_id in (long_a, long_b):
        httpx.delete(f"{cluster.url}/jobs/{job_id}", timeout=10)
    for job_id in (long_a, long_b):
        status = cluster.wait(job_id, finished, timeout=60)
        assert status["status"] == "cancelled" and status["code"] == "cancelled"
        assert status["step"] < 100
    # The workers now get the cancelled job: they must skip it (concluding it cancelled), not render it.
    redis = cluster.redis.client()
    assert eventually(lambda: redis.exists(outcome_key(queued)), timeout=60)
    assert Outcome.from_json(redis.get(outcome_key(queued))).state == "cancelled"
    assert cluster.job(queued)["status"] == "cancelled"
    assert len(cluster.images()) == files_before  # none of the three was stored
    # Each worker says it is idle at its next heartbeat after the job it stopped.
    assert eventually(lambda: all(w["state"] == "idle" for w in health(cluster.url)["workers"]), timeout=30)


def test_kill_9_of_a_worker_mid_job_finishes_on_the_other(cluster):
    job_id, victim = cluster.start_long_job("survives a kill", 9)
    victim.kill()
    cluster.assert_finished_on_the_other(job_id, victim)
    cluster.replace(victim)


def test_sigterm_lets_the_running_job_finish_and_a_second_one_hands_it_back(cluster):
    job_id, worker = cluster.start_long_job("warm shutdown", 21)
    worker.terminate()  # warm: the job finishes on this worker, then it exits
    assert cluster.wait(job_id, finished, timeout=240)["status"] == "succeeded"
    assert worker.process.wait(60) == 0
    assert "finishing job" in worker.output()
    cluster.replace(worker)

    job_id, worker = cluster.start_long_job("cold shutdown", 22)
    said = worker.output().count("finishing job")
    worker.terminate()
    assert eventually(lambda: worker.output().count("finishing job") > said)  # the first was received
    worker.terminate()  # again: stop at the next step and hand the job back
    assert worker.process.wait(60) == 0
    assert "handed back to the queue" in worker.output()
    cluster.assert_finished_on_the_other(job_id, worker)
    cluster.replace(worker)


def test_results_land_while_the_api_restarts(cluster):
    job_id, _ = cluster.start_long_job("api restarts", 11)
    cluster.api.stop()
    cluster.api.start()
    status = cluster.wait(job_id, finished, timeout=240)
    assert status["status"] == "succeeded", status
    png = httpx.get(cluster.url + status["result"]["imageUrl"], timeout=10)
    assert png.status_code == 200 and hashlib.sha256(png.content).hexdigest() == status["result"]["sha256"]


def test_redis_down_is_503_broker_unavailable_and_the_service_recovers(cluster):
    cluster.redis.stop()
    answer = waited(lambda: httpx.post(cluster.url + "/generate-image", json={**FAST, "prompt": "no broker", "seed": 5},
                                       timeout=60), lambda a: a.status_code == 503, every=0.2, what="a 503")
    assert answer.json()["code"] == "broker_unavailable" and answer.headers["retry-after"]
    ready = httpx.get(cluster.url + "/ready", timeout=10)
    assert ready.status_code == 503 and ready.json()["code"] == "broker_unavailable"
    assert health(cluster.url)["broker"]["state"] == "unreachable"
    stored = httpx.post(cluster.url + "/generate-image", json={**FAST, "prompt": "spread", "seed": 100}, timeout=60)
    assert stored.status_code == 200 and stored.json()["cached"] is True  # the store needs no broker

    cluster.redis.start()  # empty: the workers must register again, and nothing may need a restart
    assert eventually(lambda: httpx.get(cluster.url + "/ready", timeout=10).status_code == 200
                      and len(health(cluster.url)["workers"]) >= 2, timeout=90, every=0.3), health(cluster.url)
    answer = httpx.post(cluster.url + "/generate-image", json={**FAST, "prompt": "broker is back", "seed": 6},
                        timeout=180)
    assert answer.status_code == 200 and answer.json()["cached"] is False
