"""One row per answer -> AnswerLog: the machinery shared by the pyBKT, ASSISTments and generic
table readers, which differ only in which columns hold which field.

The steps, each in one place: drop rows without a skill (the one drop pyBKT makes, and which is
announced), parse and validate every field, merge rows that repeat one answer for another skill,
and put each learner's answers together in order.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from engine.events import AnswerLog
from training.readers import values
from training.readers.table import Columns, Table

__all__ = ["table_to_log"]

# optional fields: (parser, AnswerLog.from_columns keyword)
_OPTIONAL: dict[str, tuple[Callable[[pd.Series], np.ndarray], str]] = {
    "timestamp": (values.timestamp_ns, "timestamp_ns"),
    "response_ms": (values.number, "response_ms"),
    "attempt": (values.count, "attempt"),
    "hints": (values.count, "hints"),
    "session": (values.optional_text, "session"),
    "event_id": (values.optional_text, "event_id"),
}


def table_to_log(
    table: Table,
    columns: Columns,
    *,
    skill_sep: str | None,
    drop_empty_skills: bool,
    group_learners: bool,
    merge_on: str | None = None,
) -> AnswerLog:
    """Parse ``table`` into an AnswerLog, reading each field from ``columns``.

    ``skill_sep`` splits a cell into several skills. ``drop_empty_skills`` drops rows without a
    skill with a warning (pyBKT's convention) instead of raising. ``merge_on`` names a column whose
    repeated values are one answer listed once per skill (ASSISTments' order_id): those rows become
    one event holding each skill once. Rows are sorted by (learner's first appearance, ``order``
    column) when there is one, else grouped by learner if ``group_learners``, else kept in file
    order (a generic file written from an AnswerLog is already in log order).
    """
    used = dict.fromkeys([name for names in columns.values() for name in names]
                         + ([merge_on] if merge_on else []))
    frame = table.frame[list(used)]  # raw exports have ~30 columns; copy only the ones read
    rows = np.arange(len(frame))
    (skill_column,) = columns["skills"]
    empty = values.text(frame[skill_column]).str.strip().eq("").to_numpy()
    if drop_empty_skills and empty.any():  # else values.ids reports the first one
        warnings.warn(
            f"{table.path}: dropped {int(empty.sum())} of {len(frame)} rows with an empty "
            f"{skill_column!r} (as pyBKT does)",
            stacklevel=4,  # the caller of read_log
        )
        rows = rows[~empty]
        frame = frame.iloc[rows].reset_index(drop=True)

    def parse(names: tuple[str, ...], parser: Callable[[pd.Series], np.ndarray]) -> np.ndarray:
        cells = frame[names[0]] if len(names) == 1 else _joined(frame, names)
        try:
            return parser(cells)
        except values.BadValue as bad:
            raise table.error(int(rows[bad.position]), " + ".join(names), bad.problem) from None

    learner = parse(columns["learner"], values.ids)
    correct = parse(columns["correct"], values.binary)
    skill_cells = parse(columns["skills"], values.ids)
    try:
        skills = values.skill_lists(skill_cells, skill_sep)
    except values.BadValue as bad:
        raise table.error(int(rows[bad.position]), skill_column, bad.problem) from None

    if merge_on is not None:
        key = parse((merge_on,), values.ids)
        codes, _ = pd.factorize(key)
        keep = np.unique(codes, return_index=True)[1]  # codes number keys by first appearance
        for name, column in (("learner", learner), ("correct", correct)):
            differs = column != column[keep[codes]]
            if differs.any():
                row = int(np.flatnonzero(differs)[0])
                raise table.error(int(rows[row]), columns[name][0],
                                  f"rows with {merge_on} {key[row]!r} are one answer but "
                                  f"disagree on {name}")
        skills = _merged_skills(codes, keep, skills)
        rows, frame = rows[keep], frame.iloc[keep].reset_index(drop=True)
        learner, correct = learner[keep], correct[keep]

    extra = {keyword: parse(columns[field], parser)
             for field, (parser, keyword) in _OPTIONAL.items() if field in columns}
    item = parse(columns["item"], values.ids)

    rank, _ = pd.factorize(learner)
    if "order" in columns:
        perm = np.lexsort((parse(columns["order"], values.order), rank))
    elif group_learners:
        perm = np.argsort(rank, kind="stable")
    else:
        perm = np.arange(len(rows))
    return AnswerLog.from_columns(
        learner[perm], item[perm], [skills[i] for i in perm], correct[perm],
        **{keyword: column[perm] for keyword, column in extra.items()},
    )


def _joined(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.Series:
    """Several columns as one id: the non-empty parts joined by ``;`` (KDD's problem;step)."""
    parts = [values.text(frame[name]) for name in names]
    return pd.Series([";".join(p for p in cells if p) for cells in zip(*parts, strict=True)],
                     dtype=object)


def _merged_skills(codes: np.ndarray, first: np.ndarray,
                   skills: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Each answer's skills: the union over its rows (``codes``), each once, in row order."""
    merged = [skills[row] for row in first]
    repeats = np.ones(len(codes), dtype=bool)
    repeats[first] = False
    for row in np.flatnonzero(repeats):  # only the rows that repeat an answer: few
        code = codes[row]
        merged[code] = tuple(dict.fromkeys(merged[code] + skills[row]))
    return merged
