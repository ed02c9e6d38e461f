"""Every error aleaart raises on purpose, with its HTTP status and stable machine-readable code.

    AleaArtError                      base; ``status`` is the HTTP status, ``code`` what clients branch on
    ├── InvalidParams          (422)  invalid_params: a RenderParams field or request value is out of contract
    │   └── InvalidModel       (422)  invalid_model: an uploaded weights file is not what it claims, or a pickle
    ├── Unauthorized           (401)  unauthorized: an API key is configured and the request lacks it
    ├── Forbidden              (403)  forbidden: the key is valid but lacks the scope the route needs (named)
    ├── UploadsDisabled        (403)  uploads_disabled: no key may upload (ALEAART_ADMIN_KEY, or the upload scope)
    ├── BodyTooLarge           (413)  body_too_large: the request body is over the configured limit
    ├── UriTooLong             (414)  uri_too_long: the path and query are over 8 KiB
    ├── HeadersTooLarge        (431)  headers_too_large: the request's headers are over 32 KiB
    ├── CorsRejected           (400)  cors_rejected: a browser preflight from an origin (or asking a method) not allowed
    ├── ModelUnavailable       (503)  model_unavailable: the model could not be loaded; says which and what to set
    ├── GenerationCancelled    (409)  cancelled: a job was stopped on request
    ├── GenerationFailed       (500)  generation_failed: the engine failed on a valid request
    ├── OutOfMemory            (503)  out_of_memory: the device ran out of memory, even on the low-memory retry
    ├── NotFound               (404)  not_found: an image, job or token that does not exist
    ├── RangeNotSatisfiable    (416)  range_not_satisfiable: a Range header starts past the end of the file
    ├── QueueFull              (429)  queue_full: the job queue is at its bound; carries ``retry_after``
    ├── Limited                (429)  over a key's limit; carries ``retry_after`` and the RateLimit fields
    │   ├── RateLimited        (429)  rate_limited: over its requests a minute
    │   └── QuotaExceeded      (429)  quota_exceeded: over its renders waiting at once, or a day
    ├── ShuttingDown           (503)  shutting_down: the service is draining for a restart; carries ``retry_after``
    ├── BrokerUnavailable      (503)  broker_unavailable: Redis (the GPU workers' broker) cannot be reached
    ├── DiskFull               (507)  disk_full: less than ALEAART_MIN_FREE_MB is free where images are stored
    ├── ChainError             (502)  chain_unreachable: the chain could not be read (RPC down, a call failed)
    │   ├── ChainUnavailable   (503)  wrong_chain: the chain is misconfigured (wrong chain id, bad address)
    │   └── TokenNotReady      (409)  token_not_ready: the token exists but its randomness has not arrived
    ├── PinningFailed          (502)  pinning_failed: IPFS pinning failed or answered another CID (ipfsError)
    └── RecordFailed           (502)  mongo_unavailable: the frontend's MongoDB record was not written (mongoError)

The last two never fail a request: the image is answered, the error is carried beside it, and
the work is retried in the background.

Anything else that escapes is a bug and is reported as one (500, ``internal_error``).
"""

from __future__ import annotations


class AleaArtError(Exception):
    """Base of all expected errors; the message is written for the person who can fix it."""

    status: int = 500
    code: str = "internal_error"
    retry_after: int | None = None
    extra: dict[str, object] | None = None  # more fields of the error body (where to go instead)


class BadRequest(AleaArtError):
    status = 400
    code = "bad_request"


class RequestTimeout(AleaArtError):
    status = 408
    code = "request_timeout"


class InvalidParams(AleaArtError, ValueError):
    status = 422
    code = "invalid_params"


class InvalidModel(InvalidParams):
    code = "invalid_model"


class InvalidWebhook(InvalidParams):
    code = "invalid_webhook"


class InvalidFile(InvalidParams):
    """A file that cannot be read as what it claims to be, or that would inflate without bound when read."""

    code = "invalid_file"


class ImageTooLarge(AleaArtError):
    """An image larger (in pixels, not bytes) than the service will decode."""

    status = 413
    code = "image_too_large"


class Unauthorized(AleaArtError):
    status = 401
    code = "unauthorized"


class Forbidden(AleaArtError):
    status = 403
    code = "forbidden"


class UploadsDisabled(AleaArtError):
    status = 403
    code = "uploads_disabled"


class BodyTooLarge(AleaArtError):
    status = 413
    code = "body_too_large"


class UriTooLong(AleaArtError):
    status = 414
    code = "uri_too_long"


class HeadersTooLarge(AleaArtError):
    status = 431
    code = "headers_too_large"


class CorsRejected(AleaArtError):
    status = 400
    code = "cors_rejected"


class ModelUnavailable(AleaArtError):
    status = 503
    code = "model_unavailable"


class GenerationCancelled(AleaArtError):
    status = 409
    code = "cancelled"


class GenerationFailed(AleaArtError):
    status = 500
    code = "generation_failed"


class OutOfMemory(AleaArtError):
    status = 503
    code = "out_of_memory"
    retry_after = 30


class InsufficientMemory(AleaArtError):
    """A request whose render would need more memory than ALEAART_MAX_RSS_GB allows."""

    status = 507
    code = "insufficient_memory"


class NotFound(AleaArtError, LookupError):
    status = 404
    code = "not_found"


class RangeNotSatisfiable(AleaArtError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class Busy(AleaArtError):
    """Every slot of a bounded pool (verification) is taken: try again in a moment."""

    status = 429
    code = "busy"
    retry_after = 2


class JobEnded(AleaArtError):
    """What a running job shows (its preview) asked for after it ended: ``extra`` says where its result is."""

    status = 410
    code = "job_ended"

    def __init__(self, message: str, *, extra: dict[str, object]) -> None:
        super().__init__(message)
        self.extra = extra


class QueueFull(AleaArtError):
    status = 429
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Limited(AleaArtError):
    """Over a key's (or a keyless address's) limit: which ``policy``, its ``quota`` a ``window`` of seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, policy: str, quota: int, window: int) -> None:
        super().__init__(message)
        self.retry_after, self.policy, self.quota, self.window = retry_after, policy, quota, window

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit-Policy and RateLimit fields (draft-ietf-httpapi-ratelimit-headers)."""
        window = f";w={self.window}" if self.window else ""
        return {"RateLimit-Policy": f'"{self.policy}";q={self.quota}{window}',
                "RateLimit": f'"{self.policy}";r=0;t={self.retry_after}'}


class RateLimited(Limited):
    code = "rate_limited"


class QuotaExceeded(Limited):
    code = "quota_exceeded"


class ShuttingDown(AleaArtError):
    status = 503
    code = "shutting_down"
    retry_after = 10


class BrokerUnavailable(AleaArtError):
    status = 503
    code = "broker_unavailable"
    retry_after = 5


class DiskFull(AleaArtError):
    status = 507
    code = "disk_full"


class ChainError(AleaArtError):
    status = 502
    code = "chain_unreachable"


class ChainUnavailable(ChainError):
    status = 503
    code = "wrong_chain"


class TokenNotReady(ChainError):
    status = 409
    code = "token_not_ready"


class PinningFailed(AleaArtError):
    status = 502
    code = "pinning_failed"


class RecordFailed(AleaArtError):
    status = 502
    code = "mongo_unavailable"


def error_tree() -> list[type[AleaArtError]]:
    """Every class of the tree, base first."""
    found, todo = [], [AleaArtError]
    while todo:
        cls = todo.pop(0)
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def error_codes() -> dict[str, int]:
    """Every code of the tree with its HTTP status (for the README, OpenAPI and tests)."""
    return {cls.code: cls.status for cls in reversed(error_tree())}


def error_for(code: str | None, message: str) -> AleaArtError:
    """The error a job that ended with ``code`` stands for (a finished job keeps only its code and text);
    an unknown code, or one whose class needs more than a message, is GenerationFailed."""
    cls = next((c for c in error_tree() if c.code == code), GenerationFailed)
    return GenerationFailed(message) if issubclass(cls, QueueFull | RangeNotSatisfiable | Limited) else cls(message)
