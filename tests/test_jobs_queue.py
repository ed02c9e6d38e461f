"""jobs/queue.py on the in-process backend (jobs/inprocess.py): dedup, the store, priorities, cancel, records,
restarts, the model loading meanwhile."""

import threading

import pytest
from fakes import FakeEngine
from waiting import eventually

from aleaart.config import Settings
from aleaart.database import Database
from aleaart.errors import ModelUnavailable, NotFound, QueueFull
from aleaart.jobs import JobBook, JobQueue, JobState, ModelHolder, Priority, RenderRequest
from aleaart.params import RenderSpec
from aleaart.store import ImageStore


def spec(seed=1, steps=5):
    return RenderSpec(prompt="p", sampler="Euler a", width=16, height=16, steps=steps, guidance_scale=7.5, seed=seed)


def render(seed=1, steps=5, token=None):
    return RenderRequest(spec(seed, steps), token)


def loaded_holder(engine) -> ModelHolder:
    holder = ModelHolder(lambda: engine)
    holder.start()
    assert holder.wait(5)
    return holder


class Service:
    """A queue with its own store and database, restartable on the same folder."""

    def __init__(self, folder, holder, max_queue=32, keep_jobs_hours=24.0):
        self.db = Database(folder / "index.db")
        self.store = ImageStore(folder, self.db)
        settings = Settings(max_queue=max_queue, images_dir=folder, keep_jobs_hours=keep_jobs_hours)
        self.queue = JobQueue(model=holder, store=self.store, book=JobBook(self.db, self.store), settings=settings)
        self.queue.start()

    def stop(self):
        self.queue.stop()
        self.db.close()


@pytest.fixture
def make_service(tmp_path):
    made = []

    def make(engine=None, *, holder=None, **options):
        service = Service(tmp_path / "images", holder or loaded_holder(engine), **options)
        made.append(service)
        return service

    yield make
    for service in made:
        service.stop()


@pytest.fixture
def make_queue(make_service):
    return lambda engine, **options: make_service(engine, **options).queue


def test_job_runs_to_a_stored_image(make_queue):
    queue = make_queue(FakeEngine())
    job = queue.submit(render(token="3"))
    assert job.wait_done(5) and job.state is JobState.SUCCEEDED and job.kind == "render"
    status = job.status
    assert status.step == status.total_steps == 5
    assert status.image.file.startswith("art_token_3_") and queue.store.get(status.key) == status.image
    assert queue.generations == 1


def test_a_result_looked_up_once_is_remembered_without_the_database(make_queue):
    queue = make_queue(FakeEngine())
    assert queue.submit(render(token="3")).wait_done(5)
    assert queue.remembered(render(token="3")) is None  # stored, not yet looked up
    found = queue.lookup(render(token="3"))
    queue.store.db.close()  # from here on, a database read would raise
    assert found is not None and queue.remembered(render(token="3")) == found
    assert queue.remembered(render(token="4")) is None


def test_the_engine_renders_the_next_job_while_the_last_is_encoded(make_queue, monkeypatch):
    encode, encoding, may_finish = RenderRequest.encode, threading.Event(), threading.Event()

    def slow_encode(self, rendered, context):
        if self.spec.seed == 1:
            encoding.set()
            assert may_finish.wait(10)
        return encode(self, rendered, context)

    monkeypatch.setattr(RenderRequest, "encode", slow_encode)
    engine = FakeEngine()
    queue = make_queue(engine)
    first, second = queue.submit(render(seed=1)), queue.submit(render(seed=2))
    assert encoding.wait(5)
    assert second.wait_done(5) and second.state is JobState.SUCCEEDED  # rendered and stored meanwhile
    assert first.state is JobState.RUNNING and first.status.step == first.status.total_steps
    may_finish.set()
    assert first.wait_done(5) and first.state is JobState.SUCCEEDED
    assert queue.store.get(first.status.key) is not None and queue.generations == 2


def test_a_failed_encoding_fails_its_job_only(make_queue, monkeypatch):
    encode = RenderRequest.encode

    def failing_encode(self, rendered, context):
        if self.spec.seed == 1:
            raise OSError("image too large to encode")
        return encode(self, rendered, context)

    monkeypatch.setattr(RenderRequest, "encode", failing_encode)
    queue = make_queue(FakeEngine())
    failed, fine = queue.submit(render(seed=1)), queue.submit(render(seed=2))
    assert failed.wait_done(5) and failed.state is JobState.FAILED and failed.status.code == "generation_failed"
    assert "too large" in failed.status.error
    assert fine.wait_done(5) and fine.state is JobState.SUCCEEDED


def test_identical_requests_join_then_come_from_the_store(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine)
    first = queue.submit(render(token="1"))
    joined = [queue.submit(render(token="1")) for _ in range(5)]
    assert all(j is first for j in joined)
    engine.release.set()
    assert first.wait_done(5)
    later = queue.submit(render(token="1"))
    assert later is not first and later.status.cached and later.state is JobState.SUCCEEDED
    assert later.status.image == first.status.image and len(engine.calls) == 1


def test_queue_full_says_when_to_retry(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine, max_queue=2)
    queue.submit(render(seed=1))
    assert engine.started.wait(5)  # seed 1 is running; two more fill the queue
    queue.submit(render(seed=2))
    queue.submit(render(seed=3))
    with pytest.raises(QueueFull) as error:
        queue.submit(render(seed=4))
    assert error.value.retry_after >= 1 and "queue is full" in str(error.value)
    engine.release.set()


def test_cancel_queued_and_running(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine)
    running = queue.submit(render(seed=1, steps=50))
    queued = queue.submit(render(seed=2))
    assert engine.started.wait(5)
    assert queue.progress(queued).queue_position == 1
    queue.cancel(queued.id)
    assert queued.state is JobState.CANCELLED and queued.status.code == "cancelled" and queue.depth == 0
    engine.pause_at_step = 2
    engine.release.set()
    assert engine.paused.wait(5)
    queue.cancel(running.id)
    engine.resume.set()
    assert running.wait_done(5) and running.state is JobState.CANCELLED
    assert running.status.step == 2 and len(engine.calls) == 1
    again = queue.submit(render(seed=1, steps=50))  # a cancelled request can be asked for again
    assert again is not running


def test_a_failing_generation_fails_its_job_only(make_queue):
    engine = FakeEngine(fail_with=RuntimeError("out of memory"))
    queue = make_queue(engine)
    job = queue.submit(render())
    assert job.wait_done(5) and job.state is JobState.FAILED
    assert job.status.error == "generation failed: RuntimeError: out of memory"
    assert job.status.code == "generation_failed"
    engine.fail_with = None
    assert queue.submit(render()).wait_done(5)


def test_unknown_job(make_queue):
    with pytest.raises(NotFound, match="no job with id 'nope'"):
        make_queue(FakeEngine()).get("nope")


def test_jobs_submitted_while_the_model_loads_run_once_it_is_loaded(make_service):
    gate = threading.Event()
    engine = FakeEngine()
    holder = ModelHolder(lambda: gate.wait(10) and engine)
    holder.start()
    queue = make_service(holder=holder).queue
    jobs = [queue.submit(render(seed=s)) for s in (1, 2)]
    assert [j.state for j in jobs] == [JobState.QUEUED] * 2 and queue.depth == 2
    gate.set()
    assert all(j.wait_done(5) for j in jobs) and {j.state for j in jobs} == {JobState.SUCCEEDED}


def test_jobs_waiting_for_a_model_that_fails_to_load_fail_with_its_code(make_service):
    gate = threading.Event()

    def broken():
        gate.wait(10)
        raise ModelUnavailable("model 'x' not found")

    holder = ModelHolder(broken)
    holder.start()
    queue = make_service(holder=holder).queue
    waiting = queue.submit(render())
    gate.set()
    assert waiting.wait_done(5) and waiting.state is JobState.FAILED
    assert waiting.status.code == "model_unavailable" and "not found" in waiting.status.error
    with pytest.raises(ModelUnavailable):
        queue.submit(render(seed=9))


def test_submit_reads_the_store_outside_the_queue_lock(make_queue):
    queue = make_queue(FakeEngine())
    done = queue.submit(render(seed=1))
    assert done.wait_done(5)
    in_store, release = threading.Event(), threading.Event()
    real_get = queue.store.get

    def slow_get(key):
        in_store.set()
        release.wait(10)
        return real_get(key)

    queue.store.get = slow_get
    submitter = threading.Thread(target=queue.submit, args=(render(seed=1),))
    submitter.start()
    try:
        assert in_store.wait(5)
        answered = threading.Event()
        threading.Thread(target=lambda: (queue.depth, answered.set())).start()
        assert answered.wait(5), "the queue's lock was held during a store read"
    finally:
        release.set()
        submitter.join(10)


def test_interactive_jobs_go_before_bulk_ones(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine)
    queue.submit(render(seed=0))
    assert engine.started.wait(5)
    bulk = [queue.submit(render(seed=s), priority=Priority.BULK) for s in (1, 2, 3)]
    interactive = queue.submit(render(seed=4))
    assert queue.progress(interactive).queue_position == 1 and queue.progress(bulk[0]).queue_position == 2
    engine.release.set()
    assert all(j.wait_done(5) for j in [*bulk, interactive])
    assert [s.seed for s in engine.calls] == [0, 4, 1, 2, 3]


def test_a_restart_finishes_every_queued_job(make_service):
    engine = FakeEngine()
    engine.release.clear()
    first = make_service(engine)
    jobs = [first.queue.submit(render(seed=s)) for s in range(5)]
    assert engine.started.wait(5)
    first.stop()  # the running one is interrupted: it is queued again, not cancelled
    engine.release.set()

    second = make_service(engine)
    again = [second.queue.get(j.id) for j in jobs]
    assert all(j.wait_done(10) for j in again)
    assert [j.state for j in again] == [JobState.SUCCEEDED] * 5
    assert again[0].status.attempts == 1 and len({j.status.key for j in again}) == 5
    assert len(list(second.store.folder.glob("*.png"))) == 5


def test_a_finished_job_answers_after_a_restart(make_service):
    first = make_service(FakeEngine())
    job = first.queue.submit(render(seed=7, token="7"))
    assert job.wait_done(5)
    first.stop()
    second = make_service(FakeEngine())
    found = second.queue.get(job.id)
    assert found.state is JobState.SUCCEEDED and found.status.image == job.status.image
    assert found.request == job.request


def test_store_hits_do_not_push_real_jobs_out(make_queue):
    queue = make_queue(FakeEngine())
    real = queue.submit(render(seed=1))
    assert real.wait_done(5)
    hits = [queue.submit(render(seed=1)) for _ in range(1500)]
    assert all(h.status.cached for h in hits)
    assert queue.get(real.id).status.image == real.status.image
    assert queue.get(hits[0].id).status.cached


def test_old_finished_jobs_are_forgotten_by_age(make_service):
    first = make_service(FakeEngine(), keep_jobs_hours=1)
    job = first.queue.submit(render(seed=1))
    assert job.wait_done(5)
    first.db.execute("UPDATE jobs SET finished_at = finished_at - 7200 WHERE id = ?", (job.id,))
    first.stop()
    second = make_service(FakeEngine(), keep_jobs_hours=1)
    with pytest.raises(NotFound, match="kept for 1 hours"):
        second.queue.get(job.id)


def test_eta_is_given_while_running(make_queue):
    engine = FakeEngine()
    engine.pause_at_step = 2
    queue = make_queue(engine)
    job = queue.submit(render(steps=10))
    assert engine.paused.wait(5)
    progress = queue.progress(job)
    engine.resume.set()
    assert progress.queue_position is None and progress.eta_seconds is not None and progress.eta_seconds >= 0


def test_a_key_with_200_waiting_renders_delays_another_keys_one_by_at_most_one_render(make_queue):
    engine = FakeEngine()
    engine.release.clear()  # the first render waits at its gate, so all 201 are queued behind it
    queue = make_queue(engine, max_queue=300)
    jobs = [queue.submit(render(seed=s), owner="a") for s in range(200)]
    assert engine.started.wait(5)
    single = queue.submit(render(seed=1000), owner="b")
    assert queue.progress(single).queue_position == 1
    engine.release.set()
    assert single.wait_done(30)
    started = [spec.seed for spec in engine.calls]
    assert started.index(1000) == 1, started[:5]  # a0 was running, so a had had its share: b's came next
    assert all(j.wait_done(60) for j in jobs)


def test_a_key_of_weight_two_gets_two_renders_for_one(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine, max_queue=50)
    queue.weight_of = lambda owner: 2 if owner == "heavy" else 1
    queue.submit(render(seed=99), owner="light")  # running: the rest wait behind it
    assert engine.started.wait(5)
    heavy = [queue.submit(render(seed=s), owner="heavy") for s in range(4)]
    light = [queue.submit(render(seed=10 + s), owner="light") for s in range(2)]
    # light's running render is its share until heavy has had two
    assert [queue.progress(j).queue_position for j in (*heavy, *light)] == [1, 2, 3, 5, 4, 6]
    engine.release.set()
    assert all(j.wait_done(30) for j in (*heavy, *light))
    assert [spec.seed for spec in engine.calls] == [99, 0, 1, 2, 10, 3, 11]


def test_a_job_asked_for_by_two_keys_is_theirs_and_runs_until_neither_wants_it(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine)
    queue.submit(render(seed=1), owner="a")  # running: the next waits
    job = queue.submit(render(seed=2), owner="a")
    assert queue.submit(render(seed=2), owner="b") is job and job.owners == ["a", "b"]
    assert queue.withdraw(job.id, "a").state is JobState.QUEUED and job.owners == ["b"]
    assert queue.withdraw(job.id, "b").state is JobState.CANCELLED
    assert queue.book.load(job.id).owners == ["b"]  # the record says whose it was
    engine.release.set()


def test_an_owners_limits_hear_of_each_render_it_starts_and_each_one_it_stops_waiting_for(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine, max_queue=1)
    heard: list[tuple[str, str, str]] = []
    queue.admit = lambda owner, job_id: heard.append(("admit", owner, job_id))
    queue.left = lambda owner, job_id: heard.append(("left", owner, job_id))
    running = queue.submit(render(seed=1), owner="a")
    assert engine.started.wait(5)
    waiting = queue.submit(render(seed=2), owner="a")
    assert queue.submit(render(seed=2), owner="b") is waiting  # a join: nothing new to admit
    with pytest.raises(QueueFull):
        queue.submit(render(seed=3), owner="c")
    refused_id = heard[-1][2]
    assert heard == [("admit", "a", running.id), ("admit", "a", waiting.id), ("admit", "c", refused_id),
                     ("left", "c", refused_id)]
    queue.withdraw(waiting.id, "a")  # b still wants it
    assert heard[-1] == ("left", "a", waiting.id)
    engine.release.set()
    assert running.wait_done(10) and waiting.wait_done(10)
    assert eventually(lambda: {("left", "a", running.id), ("left", "b", waiting.id)} <= set(heard))
