"""pyKT sequence files (``train_valid_sequences.csv``, ``test_sequences.csv``, window variants).

Each row is a window of one learner's answers: a ``uid`` and comma-separated lists (questions,
concepts, responses, optional timestamps and usetimes in ms, selectmasks, is_repeat). pyKT cuts
long sequences into consecutive rows and pads the last with -1, so rows of one uid are joined and
padding dropped. Window files repeat earlier answers as context with selectmask -1; dropping those
too rebuilds each sequence once. pyKT expands a multi-concept question into one entry per concept,
marking the extra ones is_repeat=1; they are folded back into one answer holding every concept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.events import AnswerLog
from training.readers import values
from training.readers.table import Table, read_csv_table

__all__ = ["read_pykt"]

_LISTS = ("questions", "concepts", "responses", "timestamps", "usetimes", "selectmasks",
          "is_repeat")
# what an absent (or "NA") optional list means for each entry
_ABSENT = {"timestamps": "", "usetimes": "", "selectmasks": "1", "is_repeat": "0"}
_PAD = "-1"


def read_pykt(path: Path) -> AnswerLog:
    """Read a pyKT sequence CSV; raises LogFormatError for ragged lists or non-0/1 responses."""
    table = read_csv_table(path)
    names = set(table.frame.columns)
    if not ({"uid", "responses"} <= names and names & {"questions", "concepts"}):
        raise table.error(None, None, "not a pyKT sequence file: expected columns uid, responses "
                                      "and questions or concepts; columns found: "
                                      f"{', '.join(table.frame.columns)}")
    lists, rows, positions = _entries(table)
    keep = (lists["responses"] != _PAD) & (lists["selectmasks"] != _PAD)
    rows, positions = rows[keep], positions[keep]

    def parse(name: str, parser: Callable[[pd.Series], np.ndarray]) -> np.ndarray:
        try:
            return parser(pd.Series(lists[name][keep], dtype=object))
        except values.BadValue as bad:
            raise _error(table, rows, positions, bad.position, name, bad.problem) from None

    try:
        uids = values.ids(table.frame["uid"])
    except values.BadValue as bad:
        raise table.error(bad.position, "uid", bad.problem) from None
    fields = {
        "learner": uids[rows],
        "correct": parse("responses", values.binary),
        "item": parse("questions", values.ids),
        "concepts": parse("concepts", values.ids),
        "starts": parse("is_repeat", values.binary) == 0,
        "timestamp_ns": parse("timestamps", values.timestamp_ns),
        "response_ms": parse("usetimes", values.number),
    }
    # windows of one uid are consecutive in pyKT files; grouping also tolerates any that are not
    rank, _ = pd.factorize(fields["learner"])
    perm = np.argsort(rank, kind="stable")
    rank, rows, positions = rank[perm], rows[perm], positions[perm]
    fields = {name: column[perm] for name, column in fields.items()}

    starts = fields.pop("starts")
    orphans = np.r_[True, rank[1:] != rank[:-1]] & ~starts
    if orphans.any():
        raise _error(table, rows, positions, int(np.flatnonzero(orphans)[0]), "is_repeat",
                     "is_repeat=1 on a learner's first answer: nothing to repeat")
    head = np.flatnonzero(starts)
    correct = fields["correct"]
    differs = correct != correct[head[np.cumsum(starts) - 1]]
    if differs.any():
        raise _error(table, rows, positions, int(np.flatnonzero(differs)[0]), "responses",
                     "an is_repeat=1 entry has another response than the answer it repeats")
    concepts = fields.pop("concepts")
    skills = concepts if starts.all() else [
        tuple(dict.fromkeys(concepts[a:b]))
        for a, b in zip(head, np.r_[head[1:], len(concepts)], strict=True)
    ]
    heads = {name: column[head] for name, column in fields.items()}
    return AnswerLog.from_columns(
        heads.pop("learner"), heads.pop("item"), skills, heads.pop("correct"), **heads
    )


def _entries(table: Table) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Every list entry of every row, in file order: (list name -> entries, row, position)."""
    frame = table.frame
    present = [name for name in _LISTS if name in frame.columns]
    out: dict[str, list[str]] = {name: [] for name in _LISTS}
    rows: list[int] = []
    positions: list[int] = []
    for row, cells in enumerate(zip(*(frame[name] for name in present), strict=True)):
        lists = {name: cell.split(",") for name, cell in zip(present, cells, strict=True)
                 if cell != "NA"}  # pyKT writes NA for a list the dataset does not record
        if "responses" not in lists:
            raise table.error(row, "responses", "NA: a sequence without responses")
        n = len(lists["responses"])
        for name, entries in lists.items():
            if len(entries) != n:
                raise table.error(row, name, f"{len(entries)} entries but 'responses' has {n}")
        if "questions" not in lists and "concepts" not in lists:
            raise table.error(row, "concepts", "neither questions nor concepts are recorded")
        lists.setdefault("questions", lists.get("concepts", []))
        lists.setdefault("concepts", lists["questions"])  # a question is its own concept
        for name, entries in out.items():
            entries.extend(lists.get(name) or [_ABSENT[name]] * n)
        rows += [row] * n
        positions += range(n)
    return ({name: np.array(entries, dtype=object) for name, entries in out.items()},
            np.array(rows, dtype=np.int64), np.array(positions, dtype=np.int64))


def _error(table: Table, rows: np.ndarray, positions: np.ndarray, at: int, name: str,
           problem: str) -> Exception:
    return table.error(int(rows[at]), name, f"entry {int(positions[at]) + 1}: {problem}")
