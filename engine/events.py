"""The one answer-event type, and its columnar batch.

Every part of the engine speaks in :class:`AnswerEvent`: the readers produce them, the API will
produce them, the answer log stores them and replay consumes them. A research log holds hundreds of
thousands of answers, so batches travel as an :class:`AnswerLog`: the same fields as columns (ids
encoded as integer codes into vocabularies), which models can fit and predict on without touching
one Python object per answer. ``AnswerLog.from_events`` and ``AnswerLog.events`` convert both ways
losslessly, so the two are one concept in two shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike

__all__ = ["NO_TIMESTAMP", "AnswerEvent", "AnswerLog"]

_NS_PER_S = 1_000_000_000
#: "no timestamp" in :attr:`AnswerLog.timestamp_ns` (int64 ns since the epoch, UTC)
NO_TIMESTAMP = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class AnswerEvent:
    """One learner's answer to one item.

    ``skills`` is a tuple because multi-skill items are normal (an equation item can practise both
    fractions and negative numbers). Optional fields are ``None`` when the source does not record
    them; models that need them say so.
    """

    learner: str
    item: str
    skills: tuple[str, ...]
    correct: bool
    timestamp: datetime | None = None
    response_ms: float | None = None
    attempt: int | None = None
    hints: int | None = None
    session: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        if not self.learner:
            raise ValueError("AnswerEvent.learner must be a non-empty string")
        if not self.item:
            raise ValueError("AnswerEvent.item must be a non-empty string")
        if not isinstance(self.skills, tuple):
            object.__setattr__(self, "skills", tuple(self.skills))
        if not self.skills or any(not s for s in self.skills):
            raise ValueError(f"AnswerEvent for item {self.item!r} needs at least one skill id")
        if self.timestamp is not None and self.timestamp.tzinfo is None:
            object.__setattr__(self, "timestamp", self.timestamp.replace(tzinfo=UTC))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps as ISO 8601)."""
        return {
            "learner": self.learner,
            "item": self.item,
            "skills": list(self.skills),
            "correct": self.correct,
            "timestamp": None if self.timestamp is None else self.timestamp.isoformat(),
            "response_ms": self.response_ms,
            "attempt": self.attempt,
            "hints": self.hints,
            "session": self.session,
            "event_id": self.event_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnswerEvent:
        """Inverse of :meth:`to_dict`."""
        ts = data.get("timestamp")
        return cls(
            learner=str(data["learner"]),
            item=str(data["item"]),
            skills=tuple(str(s) for s in data["skills"]),
            correct=bool(data["correct"]),
            timestamp=None if ts is None else datetime.fromisoformat(ts),
            response_ms=data.get("response_ms"),
            attempt=data.get("attempt"),
            hints=data.get("hints"),
            session=data.get("session"),
            event_id=data.get("event_id"),
        )


def _codes(values: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encode ids as (vocabulary, int32 codes), the vocabulary in order of first appearance.

    pandas' hash-based factorize is O(n), where sorting strings with np.unique is not; ids are
    turned into strings after factorizing, so only the (small) vocabulary is converted.
    """
    codes, vocab = pd.factorize(np.asarray(values))
    names = np.asarray(vocab).astype(str).astype(object)
    if len(set(names)) < len(names):  # e.g. 1 and "1": merge ids that print the same
        codes, vocab = pd.factorize(names[codes])
        names = np.asarray(vocab, dtype=object)
    return names, codes.astype(np.int32)


@dataclass(frozen=True, eq=False, init=False)
class AnswerLog:
    """A batch of answer events as columns, in log order.

    Log order is chronological within each learner: one-step-ahead prediction walks it row by row.
    Ids are stored as int32 codes into the ``*_ids`` vocabularies; skills are a CSR list
    (``skill_ptr[i]:skill_ptr[i+1]`` indexes ``skill_codes`` for row ``i``). Missing optional values
    are NaN (floats), -1 (integers), :data:`NO_TIMESTAMP` (``timestamp_ns``) or None (object
    columns); the constructor fills an optional column it is not given with them.
    """

    learner_ids: np.ndarray
    item_ids: np.ndarray
    skill_ids: np.ndarray
    learner: np.ndarray
    item: np.ndarray
    correct: np.ndarray
    skill_ptr: np.ndarray
    skill_codes: np.ndarray
    timestamp_ns: np.ndarray
    response_ms: np.ndarray
    attempt: np.ndarray
    hints: np.ndarray
    session: np.ndarray
    event_id: np.ndarray

    def __init__(
        self,
        learner_ids: np.ndarray,
        item_ids: np.ndarray,
        skill_ids: np.ndarray,
        learner: np.ndarray,
        item: np.ndarray,
        correct: np.ndarray,
        skill_ptr: np.ndarray,
        skill_codes: np.ndarray,
        timestamp_ns: np.ndarray | None = None,
        response_ms: np.ndarray | None = None,
        attempt: np.ndarray | None = None,
        hints: np.ndarray | None = None,
        session: np.ndarray | None = None,
        event_id: np.ndarray | None = None,
    ) -> None:
        """The columns as given; an optional column left out (``None``) is all missing values."""
        n = len(correct)
        columns = {
            "learner_ids": learner_ids, "item_ids": item_ids, "skill_ids": skill_ids,
            "learner": learner, "item": item, "correct": correct,
            "skill_ptr": skill_ptr, "skill_codes": skill_codes,
            "timestamp_ns": _or_missing(timestamp_ns, n, NO_TIMESTAMP, np.int64),
            "response_ms": _or_missing(response_ms, n, np.nan, np.float64),
            "attempt": _or_missing(attempt, n, -1, np.int32),
            "hints": _or_missing(hints, n, -1, np.int32),
            "session": _or_missing(session, n, None, object),
            "event_id": _or_missing(event_id, n, None, object),
        }
        for name, column in columns.items():
            object.__setattr__(self, name, column)  # the dataclass is frozen
        self._validate()

    def _validate(self) -> None:
        n = len(self.correct)
        if self.skill_ptr.shape != (n + 1,) or self.skill_ptr[-1] != len(self.skill_codes):
            raise ValueError("AnswerLog.skill_ptr must have n+1 offsets ending at len(skill_codes)")
        for name in ("learner", "item", "timestamp_ns", "response_ms", "attempt", "hints",
                     "session", "event_id"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"AnswerLog column {name!r} has {len(getattr(self, name))} rows, "
                                 f"expected {n}")
        if n and np.any(np.diff(self.skill_ptr) < 1):
            raise ValueError("every answer in an AnswerLog needs at least one skill")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_columns(
        cls,
        learner: Sequence[Any] | np.ndarray,
        item: Sequence[Any] | np.ndarray,
        skills: Sequence[Sequence[Any]] | Sequence[Any] | np.ndarray,
        correct: Sequence[Any] | np.ndarray,
        *,
        timestamp_ns: np.ndarray | None = None,
        response_ms: np.ndarray | None = None,
        attempt: np.ndarray | None = None,
        hints: np.ndarray | None = None,
        session: np.ndarray | None = None,
        event_id: np.ndarray | None = None,
    ) -> AnswerLog:
        """Build a log from plain columns; ``skills`` holds one id or a sequence of ids per row."""
        n = len(correct)
        flat: Sequence[Any] | np.ndarray
        if n and isinstance(skills[0], (list, tuple)):
            counts = np.fromiter((len(s) for s in skills), dtype=np.int64, count=n)
            flat = [s for row in skills for s in row]
        else:
            counts = np.ones(n, dtype=np.int64)
            flat = list(skills) if not isinstance(skills, np.ndarray) else skills
        ptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        learner_ids, learner_codes = _codes(learner)
        item_ids, item_codes = _codes(item)
        skill_ids, skill_codes = _codes(flat) if len(flat) else (np.empty(0, object),
                                                                   np.empty(0, np.int32))
        corr = np.asarray(correct)
        if corr.dtype != np.bool_:
            bad = ~np.isin(corr, (0, 1))
            if np.any(bad):
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"correct must be 0/1 or boolean; row {row} has {corr[row].item()!r}")
        return cls(
            learner_ids=learner_ids, item_ids=item_ids, skill_ids=skill_ids,
            learner=learner_codes, item=item_codes, correct=corr.astype(np.int8),
            skill_ptr=ptr, skill_codes=skill_codes,
            timestamp_ns=timestamp_ns, response_ms=response_ms, attempt=attempt, hints=hints,
            session=session, event_id=event_id,
        )

    @classmethod
    def from_events(cls, events: Iterable[AnswerEvent]) -> AnswerLog:
        """Columnar copy of ``events``, kept in the order given."""
        evs = list(events)
        return cls.from_columns(
            [e.learner for e in evs],
            [e.item for e in evs],
            [e.skills for e in evs] if evs else [],
            np.array([e.correct for e in evs], dtype=bool),
            timestamp_ns=np.array(
                [NO_TIMESTAMP if e.timestamp is None else _to_ns(e.timestamp) for e in evs],
                dtype=np.int64,
            ),
            response_ms=np.array(
                [np.nan if e.response_ms is None else e.response_ms for e in evs], dtype=float
            ),
            attempt=np.array([-1 if e.attempt is None else e.attempt for e in evs], np.int32),
            hints=np.array([-1 if e.hints is None else e.hints for e in evs], np.int32),
            session=np.array([e.session for e in evs], dtype=object),
            event_id=np.array([e.event_id for e in evs], dtype=object),
        )

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.correct)

    @property
    def n_learners(self) -> int:
        return len(self.learner_ids)

    def skills_of(self, row: int) -> tuple[str, ...]:
        lo, hi = self.skill_ptr[row], self.skill_ptr[row + 1]
        return tuple(self.skill_ids[self.skill_codes[lo:hi]])

    def __getitem__(self, row: int) -> AnswerEvent:
        if not -len(self) <= row < len(self):
            raise IndexError(f"row {row} out of range for a log of {len(self)} answers")
        row %= len(self)
        ts = int(self.timestamp_ns[row])
        rms = float(self.response_ms[row])
        att, hin = int(self.attempt[row]), int(self.hints[row])
        return AnswerEvent(
            learner=str(self.learner_ids[self.learner[row]]),
            item=str(self.item_ids[self.item[row]]),
            skills=self.skills_of(row),
            correct=bool(self.correct[row]),
            timestamp=None if ts == NO_TIMESTAMP
            else datetime.fromtimestamp(ts / _NS_PER_S, tz=UTC),
            response_ms=None if np.isnan(rms) else rms,
            attempt=None if att < 0 else att,
            hints=None if hin < 0 else hin,
            session=self.session[row],
            event_id=self.event_id[row],
        )

    def events(self) -> Iterator[AnswerEvent]:
        """The rows as :class:`AnswerEvent` objects, in log order."""
        for row in range(len(self)):
            yield self[row]

    def __iter__(self) -> Iterator[AnswerEvent]:
        return self.events()

    # ------------------------------------------------------------------ subsets
    def take(self, rows: np.ndarray) -> AnswerLog:
        """The rows ``rows`` (indices or a boolean mask), keeping the vocabularies."""
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        lo, hi = self.skill_ptr[rows], self.skill_ptr[rows + 1]
        counts = hi - lo
        ptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=ptr[1:])
        # positions lo..hi-1 for every selected row, without a Python loop
        pos = np.repeat(lo - ptr[:-1], counts) + np.arange(ptr[-1])
        return AnswerLog(
            learner_ids=self.learner_ids, item_ids=self.item_ids, skill_ids=self.skill_ids,
            learner=self.learner[rows], item=self.item[rows], correct=self.correct[rows],
            skill_ptr=ptr, skill_codes=self.skill_codes[pos],
            timestamp_ns=self.timestamp_ns[rows], response_ms=self.response_ms[rows],
            attempt=self.attempt[rows], hints=self.hints[rows], session=self.session[rows],
            event_id=self.event_id[rows],
        )

    def select_learners(self, learner_codes: np.ndarray) -> AnswerLog:
        """The answers of the given learners (codes into ``learner_ids``), in log order."""
        return self.take(np.isin(self.learner, learner_codes))

    def in_learner_order(self) -> AnswerLog:
        """Rows grouped by learner (in order of first appearance), chronological within each.

        When every row has a timestamp, rows are ordered by it; ties, and logs without complete
        timestamps, keep file order, which is how research formats encode sequence order.
        """
        timed = len(self) > 0 and bool(np.all(self.timestamp_ns != NO_TIMESTAMP))
        keys = (self.timestamp_ns, self.learner) if timed else (self.learner,)
        order = np.lexsort(keys)
        if np.array_equal(order, np.arange(len(self))):
            return self
        return self.take(order)


def _or_missing(column: np.ndarray | None, n: int, missing: Any, dtype: DTypeLike) -> np.ndarray:
    """``column``, or ``n`` missing values of ``dtype`` when it is not given."""
    return np.full(n, missing, dtype=dtype) if column is None else column


def _to_ns(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000
