"""The samplers, in one table: each name's diffusers scheduler, the config it overrides, and how it draws noise.

The contract's samplerIndex names a sampler by its place in ``params.SAMPLERS``; this table is keyed by name, so
its order does not matter, and a test checks it covers exactly those names.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

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

NoiseKind = Literal["none", "ancestral", "sde"]
"""What step noise a sampler adds: none (deterministic), ancestral (drawn from the pipeline's generator) or sde
(a Brownian tree for the whole batch at once, seeded by the latent seed)."""


@dataclass(frozen=True)
class Sampler:
    name: str
    scheduler: type[SchedulerMixin]
    config: dict[str, Any] = field(default_factory=dict)
    noise: NoiseKind = "none"

    @property
    def batch_shaped_noise(self) -> bool:
        """Whether an image in a batch gets other step noise than alone (so variations render one at a time)."""
        return self.noise == "sde"

    def make(self, model_config: dict[str, Any], seed: int) -> SchedulerMixin:
        extra = dict(self.config)
        if self.noise == "sde":
            # Without noise_sampler_seed the Brownian noise comes from torch's global RNG, and the
            # same token would give a different image on every run.
            extra["noise_sampler_seed"] = seed
        return self.scheduler.from_config(model_config, **extra)


TABLE: dict[str, Sampler] = {s.name: s for s in (
    Sampler("DPM++ 2M Karras", DPMSolverMultistepScheduler, {"use_karras_sigmas": True}),
    Sampler("DPM++ SDE Karras", DPMSolverSDEScheduler, {"use_karras_sigmas": True}, noise="sde"),
    Sampler("Euler a", EulerAncestralDiscreteScheduler, noise="ancestral"),
    Sampler("DPM++ 2M", DPMSolverMultistepScheduler, {"use_karras_sigmas": False}),
    Sampler("DPM++ SDE", DPMSolverSDEScheduler, {"use_karras_sigmas": False}, noise="sde"),
    Sampler("LMS", LMSDiscreteScheduler),
)}


def sampler(name: str) -> Sampler:
    try:
        return TABLE[name]
    except KeyError:
        raise InvalidParams(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}") from None


def make_scheduler(name: str, config: dict[str, Any], *, seed: int) -> SchedulerMixin:
    """A new scheduler for one generation (schedulers keep state between calls)."""
    return sampler(name).make(config, seed)
