"""Every error aleaart raises on purpose, and the HTTP status each one maps to.

    AleaArtError                      base; ``status`` is the HTTP status it maps to
    ├── InvalidParams          (422)  a RenderParams field or request value is out of contract
    ├── Unauthorized           (401)  an API key is configured and the request lacks it
    ├── BodyTooLarge           (413)  the request body is over the configured limit
    ├── ModelUnavailable       (503)  the model could not be loaded; says which and what to set
    ├── GenerationCancelled    (409)  a generation was stopped between steps on request
    ├── GenerationFailed       (500)  the engine failed on a valid request (out of memory, ...)
    ├── NotFound               (404)  an image, job or token that does not exist
    ├── QueueFull              (429)  the job queue is at its bound; carries ``retry_after``
    └── ChainError             (502)  the chain could not be read (RPC down, a call failed)
        ├── ChainUnavailable   (503)  the chain is misconfigured (wrong chain id, bad address)
        └── TokenNotReady      (409)  the token exists but its randomness has not arrived

Anything else that escapes is a bug and is reported as one (500).
"""

from __future__ import annotations


class AleaArtError(Exception):
    """Base of all expected errors; the message is written for the person who can fix it."""

    status: int = 500


class InvalidParams(AleaArtError, ValueError):
    status = 422


class Unauthorized(AleaArtError):
    status = 401


class BodyTooLarge(AleaArtError):
    status = 413


class ModelUnavailable(AleaArtError):
    status = 503


class GenerationCancelled(AleaArtError):
    status = 409


class GenerationFailed(AleaArtError):
    status = 500


class NotFound(AleaArtError, LookupError):
    status = 404


class QueueFull(AleaArtError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChainError(AleaArtError):
    status = 502


class ChainUnavailable(ChainError):
    status = 503


class TokenNotReady(ChainError):
    status = 409
