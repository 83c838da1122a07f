"""Readers that turn research answer-log files into an :class:`~engine.events.AnswerLog`, and the
writers that make round trips (and hand-made test files) possible.

One entry point, :func:`read_log`, takes the format by name so that command lines and configs can
pass it through unchanged. Every malformed input raises :class:`LogFormatError` naming the file,
line and field: a log is either loaded completely or not at all. The one exception is pyBKT's
convention of dropping answers without a skill, which these readers follow with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from engine.events import AnswerLog
from training.readers.assistments import read_assistments
from training.readers.dkt3 import read_dkt3, write_dkt3
from training.readers.errors import LogFormatError
from training.readers.generic import read_csv_log, read_parquet_log, write_csv, write_parquet
from training.readers.pybkt import read_pybkt
from training.readers.pykt import read_pykt

__all__ = ["FORMATS", "LogFormatError", "read_log", "write_csv", "write_dkt3", "write_parquet"]

_FIXED: dict[str, Callable[[Path], AnswerLog]] = {
    "dkt3": read_dkt3, "assistments": read_assistments, "pykt": read_pykt,
}
_MAPPED: dict[str, Callable[[Path, Mapping[str, str] | None], AnswerLog]] = {
    "pybkt": read_pybkt, "csv": read_csv_log, "parquet": read_parquet_log,
}
FORMATS = ("dkt3", "pybkt", "assistments", "pykt", "csv", "parquet")


def read_log(
    path: str | os.PathLike[str], format: str, *, mapping: dict[str, str] | None = None
) -> AnswerLog:
    """Read the answer log at ``path`` in ``format`` (one of :data:`FORMATS`).

    ``mapping`` (pybkt, csv, parquet) names the column of each field: keys ``learner``, ``item``,
    ``skills``, ``correct``, ``order``, ``timestamp``, ``response_ms``, ``attempt``, ``hints``,
    ``session``, ``event_id``; it overrides the columns found by name.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown answer-log format {format!r}; valid formats: "
                         f"{', '.join(FORMATS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"answer log not found: {path}")
    if format in _MAPPED:
        return _MAPPED[format](path, mapping)
    if mapping is not None:
        raise ValueError(f"format {format!r} has fixed columns; mapping applies only to "
                         f"{', '.join(_MAPPED)}")
    return _FIXED[format](path)
