"""Flashcard review logs (py-fsrs's review-log export): ``card_id, review_rating, review_time,
review_duration``.

One learner's reviews, one row each: the card, the rating (1 Again, 2 Hard, 3 Good, 4 Easy;
rating >= 2 counts as recalled), when (ISO 8601, UTC; or epoch milliseconds) and how long the
review took (milliseconds; a blank cell is unknown). Errors name the file, line and column, as
every reader's do.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from engine.events import NO_TIMESTAMP
from engine.memory.reviews import AGAIN, EASY, Reviews
from training.readers import values
from training.readers.table import read_csv_table

__all__ = ["REVIEW_COLUMNS", "read_reviews"]

REVIEW_COLUMNS = ("card_id", "review_rating", "review_time", "review_duration")


def read_reviews(path: str | os.PathLike[str]) -> Reviews:
    """Read a review log, sorted by time; a LogFormatError names the first bad cell."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"review log not found: {path}")
    table = read_csv_table(path)
    missing = [name for name in REVIEW_COLUMNS if name not in table.frame.columns]
    if missing:
        raise table.error(None, None, f"no column {missing}; a review log has the columns "
                                      f"{', '.join(REVIEW_COLUMNS)}; found "
                                      f"{', '.join(map(str, table.frame.columns))}")
    if table.frame.empty:
        raise table.error(None, None, "no reviews: the file has a header but no rows")

    def parse(column: str, parser: Callable[[pd.Series], np.ndarray]) -> np.ndarray:
        try:
            return parser(table.frame[column])
        except values.BadValue as bad:
            raise table.error(bad.position, column, bad.problem) from None

    card = parse("card_id", values.ids)
    rating = parse("review_rating", _rating)
    time_ns = parse("review_time", _time)
    duration = parse("review_duration", _duration)
    return Reviews.from_columns(card, rating, time_ns, duration)


def _rating(cells: pd.Series) -> np.ndarray:
    numbers = values.number(cells)
    bad = ~np.isin(numbers, np.arange(AGAIN, EASY + 1))
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raise values.BadValue(position, f"expected a rating 1, 2, 3 or 4, got "
                                        f"{str(values.text(cells).iloc[position])!r}")
    return numbers.astype(np.int8)


def _time(cells: pd.Series) -> np.ndarray:
    stamps = values.timestamp_ns(cells)
    blank = stamps == NO_TIMESTAMP
    if blank.any():
        raise values.BadValue(int(np.flatnonzero(blank)[0]), "expected the review's time, got "
                                                             "an empty cell")
    return stamps


def _duration(cells: pd.Series) -> np.ndarray:
    ms = values.number(cells)
    negative = ms < 0
    if negative.any():
        position = int(np.flatnonzero(negative)[0])
        raise values.BadValue(position, f"expected milliseconds >= 0, got "
                                        f"{str(values.text(cells).iloc[position])!r}")
    return ms
