import os

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
        client.app.state.model.wait(5)
        yield client
