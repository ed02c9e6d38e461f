"""jobs/holder.py: the engine, loaded in the background, and what asking for it says meanwhile."""

import threading

import pytest
from fakes import FakeEngine

from aleaart.errors import ModelUnavailable
from aleaart.jobs import ModelHolder


def test_model_failure_is_reported_with_its_reason():
    def broken():
        raise ModelUnavailable("model 'x' not found: set ALEAART_MODEL to ... or 'tiny'")

    holder = ModelHolder(broken)
    holder.start()
    assert holder.wait(5) and holder.engine is None and holder.failed
    with pytest.raises(ModelUnavailable, match="model 'x' not found"):
        holder.require()


def test_still_loading_is_its_own_message():
    gate = threading.Event()
    holder = ModelHolder(lambda: gate.wait(5) and FakeEngine())
    holder.start()
    with pytest.raises(ModelUnavailable, match="still loading"):
        holder.require()
    holder.refuse_if_failed()  # loading is not failing: jobs are accepted meanwhile
    gate.set()
    assert holder.wait(5) and holder.require() is not None
