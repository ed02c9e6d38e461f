"""Logging for the service: every line names the job it is about; ``ALEAART_LOG_FORMAT=json`` for machines."""

from __future__ import annotations

import contextvars
import json
import logging
import time

current_job: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_job", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job)s: %(message)s"


class JobIdFilter(logging.Filter):
    """Puts the job being worked on (the worker thread sets it) on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.job_id = current_job.get()
        record.job = f" [job {record.job_id}]" if record.job_id else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(log_format: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(JobIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    quiet_libraries()


def quiet_libraries() -> None:
    """httpx logs every request at INFO with its whole URL: a webhook's userinfo, path and query, an RPC URL's key.
    Its warnings still show; the service logs what it sends itself, with URLs it has shortened."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
