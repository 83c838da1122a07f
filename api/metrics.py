"""Prometheus metrics. With several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (``tutor serve``
does) so that ``/metrics`` adds up every worker's counts."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Histogram("tutor_request_seconds", "HTTP request latency",
                     ["method", "route", "status"],
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0))
ANSWERS = Counter("tutor_answers_total", "Answers received (retries included)")
ONE_STATEMENT = Counter(
    "tutor_one_statement_answers_total",
    "Answers tried as one statement (PostgreSQL): 'applied', or 'locked' when the cache was "
    "missing or stale or the statement wrote nothing, so the locked path ran",
    ["outcome"])

STATE_STORE_ERRORS = Counter(
    "tutor_state_store_errors_total",
    "State store (Redis) reads or writes that failed; the states were rebuilt from the log",
    ["operation"])
STATE_CACHE_DAMAGED = Counter(
    "tutor_state_cache_damaged_total",
    "Damaged state cache entries found, dropped and rebuilt from the log, by kind: 'type' (a "
    "Redis key of another type), 'number' (an epoch, version or digest that is not an integer "
    "in range), 'text' (recent items not UTF-8), 'incomplete' (fields missing), 'state' (bytes "
    "the tracer refuses: wrong size, NaN, a probability out of range)",
    ["kind"])
SLOW_REQUESTS = Counter(
    "tutor_slow_requests_total",
    "Connections closed while a request was read: 'headers' not complete within the header "
    "timeout, 'body' not within the body timeout, 'head-size' headers over the size limit "
    "(api.http_limits)",
    ["phase"])


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text, summed over workers in multiprocess mode."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
