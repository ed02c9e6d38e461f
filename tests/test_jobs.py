import threading
import time

import pytest
from fakes import FakeEngine

from aleaart.config import Settings
from aleaart.errors import ModelUnavailable, NotFound, QueueFull
from aleaart.jobs import Job, JobQueue, JobState, ModelHolder
from aleaart.params import RenderSpec
from aleaart.store import ImageStore


def spec(seed=1, steps=5):
    return RenderSpec(prompt="p", sampler="Euler a", width=16, height=16, steps=steps, guidance_scale=7.5, seed=seed)


def loaded_holder(engine) -> ModelHolder:
    holder = ModelHolder(lambda: engine)
    holder.start()
    assert holder.wait(5)
    return holder


@pytest.fixture
def make_queue(tmp_path):
    made = []

    def make(engine, max_queue=32):
        store = ImageStore(tmp_path / "images", tmp_path / "index.db")
        queue = JobQueue(model=loaded_holder(engine), store=store,
                         settings=Settings(max_queue=max_queue, images_dir=tmp_path / "images"))
        queue.start()
        made.append((queue, store))
        return queue

    yield make
    for queue, store in made:
        queue.stop()
        store.close()


def test_job_runs_to_a_stored_image(make_queue):
    engine = FakeEngine()
    queue = make_queue(engine)
    job = queue.submit(spec(), "3")
    assert job.wait_done(5) and job.state is JobState.SUCCEEDED
    assert job.step == job.total_steps == 5
    assert job.image.file.startswith("art_token_3_") and queue.store.get(job.key) == job.image
    assert queue.generations == 1


def test_identical_requests_join_then_come_from_the_store(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine)
    first = queue.submit(spec(), "1")
    joined = [queue.submit(spec(), "1") for _ in range(5)]
    assert all(j is first for j in joined)
    engine.release.set()
    assert first.wait_done(5)
    later = queue.submit(spec(), "1")
    assert later is not first and later.cached and later.state is JobState.SUCCEEDED
    assert later.image == first.image and len(engine.calls) == 1


def test_queue_full_says_when_to_retry(make_queue):
    engine = FakeEngine()
    engine.release.clear()
    queue = make_queue(engine, max_queue=2)
    queue.submit(spec(seed=1), None)
    assert engine.started.wait(5)  # seed 1 is running; two more fill the queue
    queue.submit(spec(seed=2), None)
    queue.submit(spec(seed=3), None)
    with pytest.raises(QueueFull) as error:
        queue.submit(spec(seed=4), None)
    assert error.value.retry_after >= 1 and "queue is full" in str(error.value)
    engine.release.set()


def test_cancel_queued_and_running(make_queue):
    engine = FakeEngine(step_seconds=0.05)
    engine.release.clear()
    queue = make_queue(engine)
    running = queue.submit(spec(seed=1, steps=50), None)
    queued = queue.submit(spec(seed=2), None)
    assert engine.started.wait(5)
    assert queue.progress(queued).queue_position == 1
    queue.cancel(queued.id)
    assert queued.state is JobState.CANCELLED and queue.depth == 0
    engine.release.set()
    while running.step < 2:
        time.sleep(0.01)
    queue.cancel(running.id)
    assert running.wait_done(5) and running.state is JobState.CANCELLED
    assert running.step < 50 and len(engine.calls) == 1
    again = queue.submit(spec(seed=1, steps=50), None)  # a cancelled key can be asked for again
    assert again is not running


def test_a_failing_generation_fails_its_job_only(make_queue):
    engine = FakeEngine(fail_with=RuntimeError("out of memory"))
    queue = make_queue(engine)
    job = queue.submit(spec(), None)
    assert job.wait_done(5) and job.state is JobState.FAILED
    assert job.error == "generation failed: RuntimeError: out of memory"
    engine.fail_with = None
    assert queue.submit(spec(), None).wait_done(5)


def test_unknown_job(make_queue):
    with pytest.raises(NotFound, match="no job with id 'nope'"):
        make_queue(FakeEngine()).get("nope")


def test_model_failure_is_reported_with_its_reason():
    def broken():
        raise ModelUnavailable("model 'x' not found: set ALEAART_MODEL to ... or 'tiny'")

    holder = ModelHolder(broken)
    holder.start()
    assert holder.wait(5) and holder.engine is None
    with pytest.raises(ModelUnavailable, match="model 'x' not found"):
        holder.require()


def test_still_loading_is_its_own_message():
    gate = threading.Event()
    holder = ModelHolder(lambda: gate.wait(5) and FakeEngine())
    holder.start()
    with pytest.raises(ModelUnavailable, match="still loading"):
        holder.require()
    gate.set()
    assert holder.wait(5) and holder.require() is not None


def test_state_transitions_are_checked():
    assert JobState.CANCELLED.is_terminal() and not JobState.RUNNING.is_terminal()
    job = Job(id="j", key="k", spec=spec(), token_id=None)
    job.move(JobState.RUNNING)
    job.move(JobState.SUCCEEDED)
    with pytest.raises(RuntimeError, match="succeeded → running is not allowed"):
        job.move(JobState.RUNNING)
