import hashlib
import os
from pathlib import Path

# Before anything imports huggingface_hub: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from aleaart.config import Settings  # noqa: E402

# Image hashes depend on torch's thread count: every test that renders pins it.
THREADS = 2


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> str:
    """One tiny-model cache for the whole run (in-process engines and subprocesses alike)."""
    return str(tmp_path_factory.mktemp("aleaart-cache"))


@pytest.fixture(scope="session", autouse=True)
def cache_in_the_runs_folder(cache_dir) -> None:
    """Every Settings() a test makes keeps its cache (the tiny model, the local signing key) in this run's
    temporary folder, not the user's."""
    os.environ["ALEAART_CACHE_DIR"] = cache_dir


@pytest.fixture(scope="session")
def tiny_settings(cache_dir) -> Settings:
    return Settings(model="tiny", threads=THREADS, cache_dir=cache_dir, device="cpu")


@pytest.fixture(scope="module")
def tiny_lora(tmp_path_factory) -> tuple[Path, str]:
    """A LoRA of the tiny model in a models folder of its own, stored as uploads are: under its sha256."""
    from aleaart.engine.tiny import build_tiny_pipeline, write_tiny_lora

    folder = tmp_path_factory.mktemp("models")
    path = write_tiny_lora(build_tiny_pipeline(), folder / "style.safetensors", seed=11)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    path.rename(folder / f"{sha256}.safetensors")
    return folder, sha256


@pytest.fixture(scope="session")
def tiny_engine(tiny_settings):
    from aleaart.engine.pipeline import Engine

    return Engine.load(tiny_settings)


@pytest.fixture(scope="module")
def anvil():
    """A real JSON-RPC node (anvil from chain/node_modules) on a free 127.0.0.1 port."""
    from integration.anvil import Anvil

    node = Anvil().start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def contract(anvil):
    """The EntropyArtParamsV2 test double, deployed on that node."""
    from evm import deploy

    return deploy(anvil.web3())


@pytest.fixture(scope="session")
def tiny_env(cache_dir) -> dict[str, str]:
    """Environment for a subprocess that should use the same tiny model and threads."""
    env = dict(os.environ)
    env.update(ALEAART_MODEL="tiny", ALEAART_CACHE_DIR=cache_dir, ALEAART_THREADS=str(THREADS), ALEAART_DEVICE="cpu")
    return env


@pytest.fixture
def fake_client(tmp_path):
    """The API on the fake engine, in-process, with its model loaded."""
    from fakes import FakeEngine
    from fastapi.testclient import TestClient

    from aleaart.api import create_app

    with TestClient(create_app(Settings(images_dir=tmp_path / "images"), loader=FakeEngine)) as client:
        assert client.app.state.model.wait(60)
        yield client


# The cluster's: a real redis-server (per test module), a client of it, a worker on the fake engine, and the API's
# CeleryQueue with no worker at all


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    import shutil

    from integration.cluster import RedisServer

    if shutil.which("redis-server") is None and not os.environ.get("CI"):
        pytest.skip("redis-server is not installed (run_tests.sh installs it)")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def client(redis_server):
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def engine():
    from fakes import FakeEngine

    return FakeEngine()


@pytest.fixture
def worker(redis_server, client, engine):
    from cluster_helpers import settings_for

    from aleaart.cluster.worker import ClusterWorker
    from aleaart.jobs import Runner

    return ClusterWorker(Runner(engine), client, settings_for(redis_server), name="w1")


@pytest.fixture
def queue(redis_server, client, tmp_path):
    from cluster_helpers import settings_for

    from aleaart.cluster.dispatch import CeleryQueue
    from aleaart.database import Database
    from aleaart.jobs import JobBook
    from aleaart.store import ImageStore

    db = Database(tmp_path / "index.db")
    store = ImageStore(tmp_path / "images", db)
    settings = settings_for(redis_server, images_dir=tmp_path / "images")
    queue = CeleryQueue(store=store, book=JobBook(db, store), settings=settings)
    queue.start()
    yield queue
    queue.stop()
    db.close()
