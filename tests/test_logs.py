import json
import logging

from aleaart.logs import JobIdFilter, JsonFormatter, current_job


def formatted(message: str) -> dict:
    record = logging.LogRecord("aleaart.jobs.queue", logging.INFO, __file__, 1, message, None, None)
    JobIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_lines_carry_the_job_being_worked_on():
    token = current_job.set("abc123")
    try:
        line = formatted("render job succeeded")
    finally:
        current_job.reset(token)
    assert line["job_id"] == "abc123" and line["message"] == "render job succeeded"
    assert line["level"] == "INFO" and line["logger"] == "aleaart.jobs.queue" and line["time"].endswith("Z")
    assert formatted("outside a job")["job_id"] is None
