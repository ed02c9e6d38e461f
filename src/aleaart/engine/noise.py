"""Starting noise: the seed's own, and blends of it (variations), drawn exactly as diffusers draws it."""

from __future__ import annotations

import torch
from diffusers.utils.torch_utils import randn_tensor

from aleaart.engine.samplers import TABLE

# These samplers draw their step noise for the whole batch at once (a Brownian tree per call), so an
# image in a batch would get other step noise than alone: they render variations one at a time.
BATCH_SHAPED_NOISE = frozenset(name for name, s in TABLE.items() if s.batch_shaped_noise)


def seeded_noise(shape: tuple[int, ...], seed: int, *, device: torch.device,
                 dtype: torch.dtype) -> tuple[torch.Tensor, torch.Generator]:
    """The noise StableDiffusionPipeline starts from for ``seed`` (a CPU generator: the same on every device),
    and that generator, advanced as the pipeline leaves it, for the step noise of ancestral samplers."""
    generator = torch.Generator("cpu").manual_seed(seed)
    return randn_tensor(shape, generator=generator, device=device, dtype=dtype), generator


def slerp(strength: float, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from ``start`` (0) to ``end`` (1), as A1111's variation seed blends noise:
    the blend keeps the norm a Gaussian sample has, where a straight line would shrink it."""
    if strength == 0:
        return start
    a, b = start.double().flatten(), end.double().flatten()
    cosine = torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0)
    omega = torch.arccos(cosine)
    if omega.abs() < 1e-6:  # (nearly) the same direction: a straight line is the same thing
        blend = (1 - strength) * a + strength * b
    else:
        blend = (torch.sin((1 - strength) * omega) * a + torch.sin(strength * omega) * b) / torch.sin(omega)
    return blend.reshape(start.shape).to(start.dtype)
