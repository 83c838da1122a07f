"""The generic answer-log table: one row per answer, columns named after AnswerEvent's fields.

This is the project's own interchange format, in CSV or Parquet: ``learner``, ``item``, ``skills``
(ids separated by ``;``) and ``correct`` (0/1) are required; ``timestamp`` (ISO 8601 or integer
epoch milliseconds), ``response_ms``, ``attempt``, ``hints``, ``session`` and ``event_id`` are
optional. Rows stay in file order, which is log order, so a written log reads back identical.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from engine.events import AnswerLog
from training.readers.table import Table, read_csv_table, read_parquet_table, resolve_columns
from training.readers.tabular import table_to_log

__all__ = ["read_csv_log", "read_parquet_log", "write_csv", "write_parquet"]

SKILL_SEP = ";"
_FIELDS = ("learner", "item", "skills", "correct", "timestamp", "response_ms", "attempt",
           "hints", "session", "event_id")


def read_csv_log(path: Path, mapping: Mapping[str, str] | None) -> AnswerLog:
    """Read a generic CSV log; ``mapping`` renames columns (field -> column name)."""
    return _read(read_csv_table(path), mapping)


def read_parquet_log(path: Path, mapping: Mapping[str, str] | None) -> AnswerLog:
    """Read a generic Parquet log; ``mapping`` renames columns (field -> column name)."""
    return _read(read_parquet_table(path), mapping)


def write_csv(log: AnswerLog, path: str | Path) -> None:
    """Write ``log`` as a generic CSV (times in ISO 8601 UTC with nanoseconds): reads back exact."""
    _frame(log).to_csv(path, index=False)


def write_parquet(log: AnswerLog, path: str | Path) -> None:
    """Write ``log`` as a generic Parquet file (times as UTC timestamps): reads back exact."""
    _frame(log).to_parquet(path, index=False)


def _read(table: Table, mapping: Mapping[str, str] | None) -> AnswerLog:
    detected = {field: (field,) for field in _FIELDS if field in table.frame.columns}
    columns = resolve_columns(table, detected, mapping, ("learner", "item", "skills", "correct"))
    return table_to_log(table, columns, skill_sep=SKILL_SEP, drop_empty_skills=False,
                        group_learners=False)


def _frame(log: AnswerLog) -> pd.DataFrame:
    """The log as a generic table; raises ValueError for skill ids the format cannot separate."""
    for skill in log.skill_ids:
        if SKILL_SEP in skill:
            raise ValueError(f"skill id {skill!r} cannot be written: the generic format separates "
                             f"skills by {SKILL_SEP!r}")
    skills = log.skill_ids[log.skill_codes]
    if len(log.skill_codes) != len(log):  # some answer has several skills
        skills = [SKILL_SEP.join(skills[a:b]) for a, b in
                  zip(log.skill_ptr[:-1], log.skill_ptr[1:], strict=True)]
    return pd.DataFrame({
        "learner": log.learner_ids[log.learner],
        "item": log.item_ids[log.item],
        "skills": skills,
        "correct": log.correct.astype(np.int8),
        "timestamp": pd.to_datetime(log.timestamp_ns.view("datetime64[ns]"), utc=True),
        "response_ms": log.response_ms,
        "attempt": _optional_count(log.attempt),
        "hints": _optional_count(log.hints),
        "session": _optional(log.session),
        "event_id": _optional(log.event_id),
    })


def _optional_count(column: np.ndarray) -> pd.arrays.IntegerArray:
    """A count column (-1 where missing) as nullable Int32: missing values are empty cells."""
    return pd.arrays.IntegerArray(column.astype(np.int32), column < 0)


def _optional(column: np.ndarray) -> pd.Series:
    return pd.Series([None if v is None else str(v) for v in column], dtype="str")
