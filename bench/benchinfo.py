"""What the benchmark scripts share (they run as scripts from bench/): where they ran, progress
lines, per-call latencies."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
_START = time.perf_counter()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo: numbers mean little without it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on: they mean little without it."""
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu_model(),
            "date": datetime.now(UTC).isoformat(timespec="seconds")}


def log(msg: str) -> None:
    """A progress line on stderr, with the seconds since start: stdout is kept for the table."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {msg}", file=sys.stderr, flush=True)


def latencies(calls: Sequence[T], step: Callable[[T], None]) -> dict[str, Any]:
    """Per-call wall time of ``step`` over ``calls`` in order: mean, p50, p99 in µs."""
    times_ns = np.empty(len(calls), dtype=np.int64)
    clock = time.perf_counter_ns
    for i, call in enumerate(calls):
        t = clock()
        step(call)
        times_ns[i] = clock() - t
    us = times_ns / 1e3
    return {"answers": len(calls), "mean_us": float(us.mean()),
            "p50_us": float(np.percentile(us, 50)), "p99_us": float(np.percentile(us, 99))}


def best_rate(run: Callable[[], Any], items: int, runs: int = 3) -> dict[str, float]:
    """Items per second of ``run`` (which handles ``items`` items), best of ``runs`` calls."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return {"answers": items, "best_s": best, "answers_per_s": items / best}
