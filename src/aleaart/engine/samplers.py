"""Sampler name → a fresh diffusers scheduler built from the loaded model's own config."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from diffusers import (
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    LMSDiscreteScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from aleaart.errors import InvalidParams
from aleaart.params import SAMPLERS

# torchsde warns when float rounding puts a timestep a hair past its interval; it is harmless.
warnings.filterwarnings("ignore", message="Should have tb<=t1", module="torchsde")

SchedulerFactory = Callable[[dict[str, Any], int], SchedulerMixin]


def _dpm_2m(karras: bool) -> SchedulerFactory:
    return lambda config, seed: DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=karras)


def _dpm_sde(karras: bool) -> SchedulerFactory:
    # Without noise_sampler_seed the Brownian noise comes from torch's global RNG, and the
    # same token would give a different image on every run.
    return lambda config, seed: DPMSolverSDEScheduler.from_config(
        config, use_karras_sigmas=karras, noise_sampler_seed=seed
    )


# In the order of params.SAMPLERS (the contract's samplerIndex), which names them.
SCHEDULERS: dict[str, SchedulerFactory] = dict(zip(SAMPLERS, (
    _dpm_2m(karras=True),
    _dpm_sde(karras=True),
    lambda config, seed: EulerAncestralDiscreteScheduler.from_config(config),
    _dpm_2m(karras=False),
    _dpm_sde(karras=False),
    lambda config, seed: LMSDiscreteScheduler.from_config(config),
), strict=True))


def make_scheduler(name: str, config: dict[str, Any], *, seed: int) -> SchedulerMixin:
    """A new scheduler for one generation (schedulers keep state between calls)."""
    try:
        factory = SCHEDULERS[name]
    except KeyError:
        raise InvalidParams(f"sampler must be one of {', '.join(SCHEDULERS)}, got {name!r}") from None
    return factory(config, seed)
