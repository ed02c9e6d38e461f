"""The model, loaded once in a background thread, and how that is going."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from aleaart.errors import AleaArtError, ModelUnavailable
from aleaart.heap import freeze_loaded
from aleaart.jobs.kind import EngineLike

log = logging.getLogger(__name__)


class ModelHolder:
    """Loads the engine off the request path; jobs queue while it loads and run once it is there."""

    def __init__(self, loader: Callable[[], EngineLike], *, probe_cuda: Callable[[], bool] = lambda: False) -> None:
        self._loader = loader
        self._probe_cuda = probe_cuda
        self._ready = threading.Event()
        self.engine: EngineLike | None = None
        self.error: str | None = None
        self.cuda_available = False
        self.load_seconds: float | None = None

    def start(self) -> None:
        threading.Thread(target=self._load, name="aleaart-model-loader", daemon=True).start()

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            self.engine = self._loader()
            self.load_seconds = time.perf_counter() - started
            freeze_loaded()
        except AleaArtError as error:
            self.error = str(error)
        except Exception as error:  # the loader's failure must reach /health, not kill a thread silently
            log.exception("model loading failed")
            self.error = f"model loading failed: {type(error).__name__}: {error}"
        finally:
            try:
                self.cuda_available = self._probe_cuda()
            except Exception:  # a broken driver is reported as "no CUDA"
                self.cuda_available = False
            self._ready.set()

    @property
    def loading(self) -> bool:
        return not self._ready.is_set()

    @property
    def failed(self) -> bool:
        return self._ready.is_set() and self.engine is None

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def require(self) -> EngineLike:
        """The engine, or ModelUnavailable saying why not (still loading, or failed)."""
        if self.engine is not None:
            return self.engine
        if self.loading:
            raise ModelUnavailable("the model is still loading; try again in a few seconds")
        raise ModelUnavailable(self.error or "the model is not available")

    def refuse_if_failed(self) -> None:
        """Jobs are accepted while the model loads; only a model that failed to load refuses them."""
        if self.failed:
            raise ModelUnavailable(self.error or "the model is not available")
