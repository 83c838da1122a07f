"""pyBKT-style CSV logs, with the column names of either convention pyBKT understands.

ASSISTments exports (``user_id``, ``skill_name``, ``correct``, ...) and Cognitive Tutor / KDD Cup
2010 exports (``Anon Student Id``, ``KC(...)``, ``Correct First Attempt``, ...) are detected from
the header, as pyBKT does, so a downloaded file loads without configuration; ``mapping`` names the
columns of anything else, or overrides single fields of a detected convention.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from engine.events import AnswerLog
from training.readers.table import Columns, read_csv_table, resolve_columns
from training.readers.tabular import table_to_log

__all__ = ["read_pybkt"]

_KDD_SKILLS = "~~"  # KDD Cup cells list a step's several KCs separated by "~~"
_KC_COLUMN = re.compile(r"KC\(.+\)")
_EXPECTED = (
    "ASSISTments (user_id, skill_name or skill_id, correct; optional order_id, problem_id or "
    "template_id, ms_first_response, attempt_count, hint_count) or Cognitive Tutor / KDD Cup "
    "(Anon Student Id, KC(...), Correct First Attempt; optional Row, Problem Name, Step Name, "
    "First Transaction Time or Step Start Time, Problem View, Hints)"
)


def read_pybkt(path: Path, mapping: Mapping[str, str] | None) -> AnswerLog:
    """Read a pyBKT-style CSV; rows without a skill are dropped with a warning, as pyBKT does."""
    table = read_csv_table(path)
    detected = detect_columns(list(table.frame.columns))
    if detected is None and not mapping:
        raise table.error(None, None, f"unknown column convention; columns found: "
                                      f"{', '.join(table.frame.columns)}; expected {_EXPECTED}, "
                                      "or pass mapping={field: column}")
    columns = resolve_columns(table, detected or {}, mapping, ("learner", "skills", "correct"))
    columns.setdefault("item", columns["skills"])  # pyBKT needs no item: the skill stands in
    return table_to_log(table, columns, skill_sep=_KDD_SKILLS, drop_empty_skills=True,
                        group_learners=True)


def detect_columns(names: list[str]) -> Columns | None:
    """The fields found under ASSISTments or KDD Cup names, or None if neither matches."""
    present = set(names)
    kcs = [name for name in names if _KC_COLUMN.fullmatch(name)]
    if {"user_id", "correct"} <= present and present & {"skill_name", "skill_id"}:
        found = {
            "learner": ("user_id",),
            "skills": _first(present, "skill_name", "skill_id"),
            "correct": ("correct",),
            "item": _first(present, "problem_id", "template_id"),
            "order": _first(present, "order_id"),
            "response_ms": _first(present, "ms_first_response"),
            "attempt": _first(present, "attempt_count"),
            "hints": _first(present, "hint_count"),
        }
    elif {"Anon Student Id", "Correct First Attempt"} <= present and kcs:
        found = {
            "learner": ("Anon Student Id",),
            "skills": _first(present, "KC(Default)") or (kcs[0],),
            "correct": ("Correct First Attempt",),
            # "problem;step": a KDD step is only an item within its problem
            "item": tuple(name for name in ("Problem Name", "Step Name") if name in present),
            "order": _first(present, "Row"),
            "timestamp": _first(present, "First Transaction Time", "Step Start Time"),
            "attempt": _first(present, "Problem View"),
            "hints": _first(present, "Hints"),
        }
    else:
        return None
    return {field: columns for field, columns in found.items() if columns}


def _first(present: set[str], *names: str) -> tuple[str, ...]:
    """The first of ``names`` in the file, as a one-column tuple; () if none is."""
    return next(((name,) for name in names if name in present), ())
