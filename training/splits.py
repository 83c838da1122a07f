"""How a log is split into a training and a test part, parsed in one place.

``--split chrono:FRACTION`` is shared by every replay that has time (answer logs, review logs):
the earliest FRACTION of the events train, the rest are predicted. One parser, so that the syntax
and its errors are the same for every command that takes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ChronoSplit", "parse_split", "train_rows"]


@dataclass(frozen=True)
class ChronoSplit:
    """Chronological split: the first ``fraction`` of the events (in time order) train."""

    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"the chronological split's fraction must be between 0 and 1 "
                             f"(exclusive), got {self.fraction}")

    def cut(self, n: int) -> int:
        """How many of ``n`` time-ordered events train (the rest are tested): floor(fraction*n)."""
        return int(self.fraction * n)

    def __str__(self) -> str:
        return f"chrono:{self.fraction:g}"


def parse_split(text: str) -> ChronoSplit:
    """``chrono:FRACTION`` (e.g. ``chrono:0.7``) as a :class:`ChronoSplit`; a ValueError that
    shows the syntax otherwise."""
    kind, sep, value = text.strip().partition(":")
    if kind != "chrono" or not sep:
        raise ValueError(f"--split takes chrono:FRACTION (e.g. chrono:0.7), got {text!r}")
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"--split chrono:FRACTION needs a number between 0 and 1, got "
                         f"{value!r}") from None
    return ChronoSplit(fraction)


def train_rows(split: ChronoSplit, learner: np.ndarray) -> np.ndarray:
    """Boolean mask of the training answers of a log whose rows are chronological within each
    learner (``learner``: each row's learner code): per learner, the first ``split.cut(n)`` of
    its ``n`` answers."""
    learner = np.asarray(learner, dtype=np.int64)
    counts = np.bincount(learner)
    order = np.argsort(learner, kind="stable")
    rank = np.empty(len(learner), dtype=np.int64)
    rank[order] = np.arange(len(learner)) - np.repeat(np.cumsum(counts) - counts, counts)
    cuts = np.array([split.cut(int(n)) for n in counts], dtype=np.int64)
    return rank < cuts[learner]
