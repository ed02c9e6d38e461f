"""The loaded model is kept out of Python's cyclic collector, and an unloaded one is still freed."""

from __future__ import annotations

import gc
import weakref

import pytest
from fakes import FakeEngine

from aleaart.engine.checkpoint import export_single_file
from aleaart.engine.shelf import ModelShelf
from aleaart.engine.tiny import build_tiny_pipeline, tiny_variant
from aleaart.jobs import ModelHolder


@pytest.fixture(autouse=True)
def thawed_afterwards():
    yield
    gc.unfreeze()


def walked_by_full_collections(thing: object) -> bool:
    """gc.get_objects() lists what the generations hold: frozen objects are not there."""
    return any(other is thing for other in gc.get_objects())


def test_a_loaded_engine_is_left_out_of_full_collections():
    engine = FakeEngine()
    assert walked_by_full_collections(engine)
    holder = ModelHolder(lambda: engine)
    holder.start()
    assert holder.wait(5) and holder.engine is engine
    assert not walked_by_full_collections(engine)
    made_later = FakeEngine()
    assert walked_by_full_collections(made_later)


def test_an_unloaded_model_in_a_reference_cycle_is_still_freed(tmp_path):
    upload = "ab" * 32
    export_single_file(tiny_variant(seed=3), tmp_path / f"{upload}.safetensors")
    shelf = ModelShelf(build_tiny_pipeline(), max_loaded=1, models_dir=tmp_path, config_dir=tmp_path / "configs",
                       reload_default=build_tiny_pipeline)
    pipeline = shelf.get(upload).pipeline
    assert shelf.loaded == [upload] and not walked_by_full_collections(pipeline)
    pipeline.__dict__["cycle"] = [pipeline]  # only the cyclic collector can free it now
    gone = weakref.ref(pipeline)
    del pipeline

    shelf.get(None)

    assert shelf.loaded == [""]
    assert gone() is None
