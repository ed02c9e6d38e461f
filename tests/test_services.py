"""The composition root: one Services.open builds the service for the API, the CLI and the benches."""

from __future__ import annotations

from fakes import FakeEngine

from aleaart.chain import ChainReader
from aleaart.cluster.dispatch import CeleryQueue
from aleaart.config import Settings
from aleaart.jobs import JobQueue, JobState, RenderRequest
from aleaart.params import RenderSpec
from aleaart.tally import LocalTally, RedisTally

SPEC = RenderSpec(prompt="wired once", sampler="Euler a", width=64, height=64, steps=2, guidance_scale=7.5, seed=3)


def chain() -> ChainReader:
    return ChainReader(rpc_url="http://127.0.0.1:9", chain_id=31337, address="0x" + "00" * 20)  # never read here


def test_the_embedded_default_renders_in_process_and_closes_its_database(tmp_path):
    from aleaart.services import Services

    services = Services.open(Settings(images_dir=tmp_path / "images"), loader=FakeEngine, chain=chain())
    assert isinstance(services.queue, JobQueue) and services.model is not None
    assert services.queue.store is services.store and services.registry is not None
    services.start(publish=False)
    try:
        assert services.model.wait(10)
        job = services.queue.submit(RenderRequest(SPEC, "1"))
        assert job.wait_done(10) and job.state is JobState.SUCCEEDED
        assert services.store.get(job.status.key).file == job.status.image.file
        assert b"aleaart_queue_depth 0.0" in services.metrics.exposition()
        assert isinstance(services.limiter.tally, LocalTally)  # limits counted here and in the journal
    finally:
        services.close()
    assert not services.queue.backend._worker.is_alive()  # stopped, not left behind


def test_a_broker_url_puts_the_queue_on_gpu_workers_and_loads_no_model_here(tmp_path):
    from aleaart.services import Services

    settings = Settings(images_dir=tmp_path / "images", broker_url="redis://127.0.0.1:9/0")
    services = Services.open(settings, chain=chain())  # builds only: nothing connects before start
    try:
        assert isinstance(services.queue, CeleryQueue) and services.model is None
        assert services.queue.health()["backend"] == "celery"
        assert isinstance(services.limiter.tally, RedisTally)  # limits shared with every API process on it
    finally:
        services.db.close()
