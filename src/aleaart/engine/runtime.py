"""What runs a loaded pipeline's networks: one protocol, one module per runtime, chosen from ``RUNTIMES``.

A runtime prepares each loaded pipeline before its first job (converting or compiling what it runs), names
itself in the recipe (so in every image key), and may step aside for a job whose LoRAs change weights its
prepared networks do not hold. Diffusers keeps the sampler loop on every runtime.

Adding a runtime: a module with ``open_runtime(setup: RuntimeSetup) -> Runtime``, and a line in ``RUNTIMES``.
"""

from __future__ import annotations

import importlib
import importlib.util
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from aleaart.config import Settings
from aleaart.errors import ModelUnavailable

if TYPE_CHECKING:
    import torch

    from aleaart.engine.shelf import Loaded


@dataclass(frozen=True)
class RuntimeSetup:
    """What a runtime is opened with: the CPU threads (fixed, since pixels depend on them), a folder of its own
    for what it converts, and the settings (each runtime reads its own)."""

    threads: int
    folder: Path | None
    settings: Settings


class Runtime(Protocol):
    @property
    def key(self) -> str | None:
        """The recipe's ``backend`` entry (so part of every key); None on PyTorch eager, whose keys predate it."""
        ...

    def done_with(self, loaded: Loaded, part: str) -> None:
        """A call on ``loaded`` is done with ``part`` (``unet`` after its last step, ``vae`` after the decode): let
        go what it holds beyond what the next use needs at once (pages read in, buffers for activations)."""
        ...

    def make_room(self, loaded: Loaded) -> None:
        """A phase comes that is larger than a native-size image's (a large render's VAE encode or decode) and
        does not need the UNet as it is now: let go what the runtime can build again when the UNet is next
        called (OpenVINO: a compiled UNet, where one shape is kept)."""
        ...

    def prepare(self, loaded: Loaded, identity: str) -> None:
        """Make ``loaded`` run on this runtime (once per loaded pipeline; ``identity`` names its weights)."""
        ...

    def job(self, loaded: Loaded, *, adapted: bool) -> AbstractContextManager[None]:
        """Around one job on ``loaded``; ``adapted``: LoRAs are on for it."""
        ...


@dataclass(frozen=True)
class RuntimeChoice:
    module: str
    devices: tuple[str, ...] | None = None  # the device types it runs on; None: any
    package: str | None = None  # what must be installed for ALEAART_BACKEND=auto to pick it

    def runs_on(self, device: str) -> bool:
        return self.devices is None or device in self.devices

    def installed(self) -> bool:
        return self.package is None or importlib.util.find_spec(self.package) is not None


# In order of preference for ALEAART_BACKEND=auto: OpenVINO on the CPU, where bench/compare.py measured it faster
# than PyTorch (when installed), PyTorch eager anywhere else.
RUNTIMES: dict[str, RuntimeChoice] = {
    "openvino": RuntimeChoice("aleaart.engine.openvino", devices=("cpu",), package="openvino"),
    "torch": RuntimeChoice("aleaart.engine.eager"),
}


def pick_backend(requested: str, device: torch.device) -> str:
    """The runtime ALEAART_BACKEND names, checked against the device; ``auto``: the first that runs here."""
    if requested == "auto":
        return next(name for name, choice in RUNTIMES.items() if choice.runs_on(device.type) and choice.installed())
    choice = RUNTIMES.get(requested)
    if choice is None:
        raise ModelUnavailable(f"ALEAART_BACKEND must be auto or one of {', '.join(RUNTIMES)}, got {requested!r}")
    if not choice.runs_on(device.type):
        assert choice.devices is not None
        raise ModelUnavailable(f"ALEAART_BACKEND={requested} runs on the {', '.join(choice.devices).upper()}, not "
                               f"{device.type}: set ALEAART_DEVICE={choice.devices[0]}, or ALEAART_BACKEND=torch for "
                               "this device")
    return requested


def open_runtime(name: str, setup: RuntimeSetup) -> Runtime:
    return importlib.import_module(RUNTIMES[name].module).open_runtime(setup)
