"""Flashcard reviews: one learner's log of (card, rating, time, duration), as columns.

A review log is the memory models' counterpart of the answer log: Anki and FSRS record a rating
from 1 (Again: forgotten) to 4 (Easy), and a rating of 2 or more counts as recalled. Reviews are
kept in time order, because every memory model reads a card's history forwards and the
evaluation protocol splits by time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = ["AGAIN", "EASY", "NS_PER_DAY", "REVIEW_HORIZON", "Reviews", "as_datetime"]

#: the lowest rating (forgotten) and the highest (easy), as Anki and FSRS number them
AGAIN, EASY = 1, 4
NS_PER_DAY = 86_400 * 1_000_000_000
#: how far ahead a review is scheduled: a due time later than this (from the moment asked
#: for) is not given, only that the review is not due within it. A memory's due time grows
#: without bound as the target retention falls (recall 0.3 of a well-practised skill is
#: centuries away) and past year 9999 it is no date at all; ten years is beyond any plan an
#: app makes, and keeps every date given within the calendar for any moment of 2000-2099
REVIEW_HORIZON = timedelta(days=3650)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_datetime(time_ns: int) -> datetime:
    """Nanoseconds since the epoch as an aware UTC datetime (to the microsecond)."""
    return _EPOCH + timedelta(microseconds=int(time_ns) // 1000)


@dataclass(frozen=True)
class Reviews:
    """Reviews in time order: ``card`` ids (str), ``rating`` 1-4, ``time_ns`` (int64 ns since the
    epoch, UTC) and ``duration_ms`` (float, NaN where unknown).

    Build with :meth:`from_columns`, which checks the columns and sorts them by time (stably, so
    reviews logged at the same instant keep their order).
    """

    card: np.ndarray
    rating: np.ndarray
    time_ns: np.ndarray
    duration_ms: np.ndarray

    @classmethod
    def from_columns(cls, card: np.ndarray | list[str], rating: np.ndarray | list[int],
                     time_ns: np.ndarray | list[int],
                     duration_ms: np.ndarray | list[float] | None = None) -> Reviews:
        """Checked columns, sorted by time; a ValueError names the first bad value."""
        cards = np.asarray(card, dtype=object)
        ratings = np.asarray(rating)
        times = np.asarray(time_ns, dtype=np.int64)
        durations = (np.full(len(cards), np.nan) if duration_ms is None
                     else np.asarray(duration_ms, dtype=float))
        if not len(cards) == len(ratings) == len(times) == len(durations):
            raise ValueError(f"review columns differ in length: {len(cards)} cards, "
                             f"{len(ratings)} ratings, {len(times)} times, {len(durations)} "
                             "durations")
        bad = np.flatnonzero(~np.isin(ratings, np.arange(AGAIN, EASY + 1)))
        if len(bad):
            raise ValueError(f"review {bad[0]}: rating must be 1 to 4, got {ratings[bad[0]]!r}")
        negative = np.flatnonzero(durations < 0)
        if len(negative):
            raise ValueError(f"review {negative[0]}: duration must be >= 0 ms, got "
                             f"{durations[negative[0]]}")
        order = np.argsort(times, kind="stable")
        return cls(cards[order], ratings[order].astype(np.int8), times[order], durations[order])

    def __len__(self) -> int:
        return len(self.card)

    @property
    def recalled(self) -> np.ndarray:
        """Whether each review was recalled (rating >= 2), as 0/1 floats."""
        return (self.rating > AGAIN).astype(float)

    def head(self, n: int) -> Reviews:
        """The first ``n`` reviews (in time order)."""
        return Reviews(self.card[:n], self.rating[:n], self.time_ns[:n], self.duration_ms[:n])

    def elapsed_ns(self) -> np.ndarray:
        """Time since the same card's previous review (ns); -1 for a card's first review."""
        codes = self.card_codes()
        order = np.argsort(codes, kind="stable")  # each card's reviews together, in time order
        times = self.time_ns[order]
        first = np.r_[True, codes[order][1:] != codes[order][:-1]]
        gaps = np.where(first, -1, times - np.r_[times[0], times[:-1]])
        out = np.empty(len(self), dtype=np.int64)
        out[order] = gaps
        return out

    def card_codes(self) -> np.ndarray:
        """Each review's card as an integer, numbering cards in sorted id order."""
        return np.unique(self.card.astype(str), return_inverse=True)[1]
