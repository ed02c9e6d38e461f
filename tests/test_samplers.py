import pytest
from diffusers import (
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    LMSDiscreteScheduler,
    PNDMScheduler,
)

from aleaart.engine.samplers import TABLE, make_scheduler
from aleaart.engine.tiny import SD15_SCHEDULER
from aleaart.errors import InvalidParams
from aleaart.params import SAMPLERS

CONFIG = dict(PNDMScheduler(**SD15_SCHEDULER).config)

EXPECTED = {
    "DPM++ 2M Karras": (DPMSolverMultistepScheduler, True),
    "DPM++ SDE Karras": (DPMSolverSDEScheduler, True),
    "Euler a": (EulerAncestralDiscreteScheduler, False),
    "DPM++ 2M": (DPMSolverMultistepScheduler, False),
    "DPM++ SDE": (DPMSolverSDEScheduler, False),
    "LMS": (LMSDiscreteScheduler, False),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_is_its_scheduler_on_the_models_schedule(name):
    cls, karras = EXPECTED[name]
    scheduler = make_scheduler(name, CONFIG, seed=99)
    assert type(scheduler) is cls
    assert bool(scheduler.config.get("use_karras_sigmas", False)) is karras
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.beta_end == 0.012


def test_sde_samplers_get_the_latent_seed():
    for name in ("DPM++ SDE Karras", "DPM++ SDE"):
        assert make_scheduler(name, CONFIG, seed=4294967295).noise_sampler_seed == 4294967295


def test_each_call_builds_a_new_scheduler():
    assert make_scheduler("LMS", CONFIG, seed=1) is not make_scheduler("LMS", CONFIG, seed=1)


def test_unknown_sampler():
    with pytest.raises(InvalidParams, match="sampler must be one of DPM\\+\\+ 2M Karras, .*got 'DDIM'"):
        make_scheduler("DDIM", CONFIG, seed=1)


def test_the_table_names_exactly_the_contracts_samplers():
    assert sorted(TABLE) == sorted(SAMPLERS)


def test_only_sde_samplers_have_batch_shaped_noise():
    assert {name for name, s in TABLE.items() if s.batch_shaped_noise} == {"DPM++ SDE Karras", "DPM++ SDE"}
    assert TABLE["Euler a"].noise == "ancestral"
