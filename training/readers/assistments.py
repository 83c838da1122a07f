"""The raw ASSISTments skill-builder export (``skill_builder_data.csv``).

Its columns are fixed, so nothing is detected; what it adds to the pyBKT reading is that a
multi-skill answer appears as several rows with the same ``order_id``, one per skill. Those rows
are one answer: they become one event holding each skill once, so that models do not count one
answer several times (one source of the inflated DKT results of Xiong et al. 2016).
"""

from __future__ import annotations

from pathlib import Path

from engine.events import AnswerLog
from training.readers.table import read_csv_table, resolve_columns
from training.readers.tabular import table_to_log

__all__ = ["read_assistments"]

_COLUMNS = {
    "learner": ("user_id",),
    "item": ("problem_id",),
    "skills": ("skill_id",),
    "correct": ("correct",),
    "order": ("order_id",),
    "response_ms": ("ms_first_response",),
    "attempt": ("attempt_count",),
    "hints": ("hint_count",),
    "session": ("assignment_id",),
}


def read_assistments(path: Path) -> AnswerLog:
    """Read ``skill_builder_data.csv``; rows without a skill_id are dropped with a warning."""
    table = read_csv_table(path)
    columns = resolve_columns(table, _COLUMNS, None, tuple(_COLUMNS))
    return table_to_log(table, columns, skill_sep=None, drop_empty_skills=True,
                        group_learners=True, merge_on="order_id")
