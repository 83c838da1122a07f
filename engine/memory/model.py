"""Memory models for flashcard reviews: FSRS-6 (py-fsrs) and the engine's calibrated memory model.

One class, three variants (built by name in :mod:`engine.memory`): ``fsrs`` is py-fsrs's
scheduler with its default parameters, ``fsrs-optimized`` fits those parameters with py-fsrs's
Optimizer, and ``memory`` (recommended) puts a recency-weighted logistic layer
(:mod:`engine.memory.calibration`) over FSRS's recall with the card's counts of recalls and
lapses as evidence (Half-Life-Regression's features). All three share the card state and the
online API the selection uses, per (learner, card):

* :meth:`MemoryModel.new_state`, :meth:`~MemoryModel.update` with a rating (1-4) or a bool
  (recalled: Good, forgotten: Again) at a time;
* :meth:`~MemoryModel.recall`: P(recall) at a time, falling with time since the last review;
* :meth:`~MemoryModel.due`: the first time predicted recall is at or below a target retention
  (None beyond a horizon: :data:`~engine.memory.reviews.REVIEW_HORIZON`).

Batch prediction (:meth:`~MemoryModel.predict_reviews`) runs this same online API over a log, so
online and batch agree by construction. The FSRS state machine (stability, difficulty, learning
steps) is py-fsrs's own, reused rather than rewritten: it is the reference implementation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from fsrs import Card, Rating, ReviewLog, Scheduler
from fsrs.scheduler import DEFAULT_PARAMETERS

from engine.memory.calibration import Calibration, fit_calibration, logit, select_half_life
from engine.memory.reviews import AGAIN, NS_PER_DAY, REVIEW_HORIZON, Reviews, as_datetime
from engine.tracing.base import FitProgress

__all__ = ["FEATURES", "CardMemory", "MemoryModel"]

_GOOD = 3
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CardMemory:
    """One learner's memory of one card.

    ``fsrs`` is py-fsrs's card (stability, difficulty, last review; None before the first
    review). The counts are the evidence the calibrated model adds: reviews at least a day after
    the previous one that were recalled or forgotten, and same-day (learning-step) reviews and
    lapses; ``last_duration_ms`` is how long the last review took (NaN: unknown).
    """

    fsrs: Card | None = None
    recalled: int = 0
    forgotten: int = 0
    same_day: int = 0
    same_day_forgotten: int = 0
    last_duration_ms: float = math.nan


def _counts(state: CardMemory) -> tuple[float, ...]:
    return math.log1p(state.recalled), math.log1p(state.forgotten)


def _same_day(state: CardMemory) -> tuple[float, ...]:
    return math.log1p(state.same_day), math.log1p(state.same_day_forgotten)


def _duration(state: CardMemory) -> tuple[float, ...]:
    known = not math.isnan(state.last_duration_ms)
    return (math.log1p(state.last_duration_ms / 1000) if known else 0.0,)


#: the card evidence the calibrated model can use, by option name
FEATURES = {"counts": _counts, "same_day": _same_day, "duration": _duration}


class MemoryModel:
    """FSRS-6's recall, optionally with optimized parameters and a calibration layer.

    ``optimize_fsrs``: fit FSRS's 21 parameters on the training reviews (py-fsrs Optimizer).
    ``calibrate``: fit the logistic layer; ``features`` (names of :data:`FEATURES`) are its card
    evidence and ``half_lives`` the recency weightings tried (in scored reviews; None: no
    weighting), the best chosen on the last 30% of the training part. ``parameters`` and
    ``calibration`` give a model ready to use without fitting.
    """

    def __init__(self, *, name: str = "memory", optimize_fsrs: bool = False,
                 calibrate: bool = True, features: Sequence[str] = ("counts",),
                 half_lives: Sequence[float | None] = (100, 300, 1000, 3000, None),
                 parameters: Sequence[float] | None = None,
                 calibration: Calibration | None = None) -> None:
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown memory feature(s) {unknown}; valid: {', '.join(FEATURES)}")
        if not half_lives or any(h is not None and h <= 0 for h in half_lives):
            raise ValueError(f"half_lives must be positive numbers or None, got {half_lives}")
        self.name = name
        self.optimize_fsrs = optimize_fsrs
        self.calibrate = calibrate
        self.features = tuple(features)
        self.half_lives = tuple(half_lives)
        self.scheduler = Scheduler(parameters or DEFAULT_PARAMETERS, enable_fuzzing=False)
        self.calibration = calibration
        if calibration is not None and len(calibration.coefs) != self._n_features:
            raise ValueError(f"the calibration has {len(calibration.coefs)} feature "
                             f"coefficients; features {self.features} make {self._n_features}")

    # ------------------------------------------------------------------ online, one card
    def new_state(self) -> CardMemory:
        """A card the learner has never reviewed."""
        return CardMemory()

    def update(self, state: CardMemory, rating: int | bool, at: datetime,
               duration_ms: float | None = None) -> CardMemory:
        """The state after a review at ``at`` (aware datetime) rated 1-4, or True (recalled,
        rated Good) / False (forgotten, Again). Pure: ``state`` is unchanged."""
        grade = (_GOOD if rating else AGAIN) if isinstance(rating, bool) else int(rating)
        if not AGAIN <= grade <= 4:
            raise ValueError(f"a review's rating must be 1 to 4 (or a bool), got {rating!r}")
        card = state.fsrs if state.fsrs is not None else Card(card_id=0, due=at)
        if card.last_review is not None and at < card.last_review:
            raise ValueError(f"review at {at.isoformat()} is before the card's last review "
                             f"({card.last_review.isoformat()}): give reviews in time order")
        spaced = card.last_review is not None and at - card.last_review >= _DAY
        forgot = grade == AGAIN
        reviewed, _ = self.scheduler.review_card(card, Rating(grade), at)
        counts = (dict(recalled=state.recalled + (not forgot), forgotten=state.forgotten + forgot)
                  if spaced else dict(same_day=state.same_day + (state.fsrs is not None),
                                      same_day_forgotten=state.same_day_forgotten
                                      + (forgot and state.fsrs is not None)))
        return replace(state, fsrs=reviewed, **counts,
                       last_duration_ms=math.nan if duration_ms is None else float(duration_ms))

    def recall(self, state: CardMemory, at: datetime) -> float:
        """P(the learner recalls the card at ``at``); 0 for a card never reviewed."""
        if state.fsrs is None:
            return 0.0
        r = float(self.scheduler.get_card_retrievability(state.fsrs, at))
        if self.calibration is None:
            return r
        return self.calibration.recall(r, self._features(state))

    def due(self, state: CardMemory, retention: float = 0.9,
            horizon: timedelta = REVIEW_HORIZON) -> datetime | None:
        """The first time (a whole number of days after the last review, as FSRS counts them)
        at which :meth:`recall` is at or below ``retention``; None when that is more than
        ``horizon`` after the last review: a low retention (or a calibration that lowers the
        target) puts it centuries away, past any date, or nowhere (a float's overflow)."""
        if not 0 < retention < 1:
            raise ValueError(f"target retention must be between 0 and 1, got {retention}")
        if state.fsrs is None or state.fsrs.last_review is None or state.fsrs.stability is None:
            raise ValueError("a card never reviewed has no due time: it is new material")
        target = retention
        if self.calibration is not None:
            z = self.calibration.logit_r_for(retention, self._features(state))
            target = 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))
        decay = -self.scheduler.parameters[20]
        factor = 0.9 ** (1 / decay) - 1
        try:
            days = state.fsrs.stability / factor * (target ** (1 / decay) - 1)
        except (OverflowError, ZeroDivisionError):  # a target of (about) 0: never reached
            return None
        if not days <= horizon / _DAY:
            return None
        return state.fsrs.last_review + timedelta(days=max(0, math.ceil(days)))

    # ------------------------------------------------------------------ batch
    def predict_reviews(self, reviews: Reviews) -> np.ndarray:
        """P(recall) before each review from the card's earlier reviews (NaN for a card's first
        review), by the online API: each card's state sees every earlier review of it."""
        r, features, seen = self._walk(reviews)
        p = np.full(len(reviews), np.nan)
        if self.calibration is None:
            p[seen] = r[seen]
        else:
            p[seen] = self.calibration.apply(logit(r[seen]), features[seen])
        return p

    def fit(self, reviews: Reviews, *, progress: FitProgress | None = None) -> MemoryModel:
        """Fit on ``reviews`` (one learner's training part): FSRS's parameters if
        ``optimize_fsrs``, then the calibration if ``calibrate``. Returns self."""
        report = progress or (lambda done, total, what, metrics: None)
        steps = int(self.optimize_fsrs) + int(self.calibrate)
        if self.optimize_fsrs:
            report(0, steps, f"optimizing FSRS's parameters on {len(reviews):,} reviews "
                             "(py-fsrs Optimizer)", {})
            self.scheduler = Scheduler(_optimized_parameters(reviews), enable_fuzzing=False)
        if self.calibrate:
            report(steps - 1, steps, f"calibrating on {len(reviews):,} reviews", {})
            self.calibration = None
            r, features, seen = self._walk(reviews)
            scored = seen & (reviews.elapsed_ns() >= NS_PER_DAY)
            y = reviews.recalled[scored]
            lr, x = logit(r[scored]), features[scored]
            half_life = select_half_life(lr, x, y, self.half_lives)
            self.calibration = fit_calibration(lr, x, y, half_life)
        return self

    def describe(self) -> Mapping[str, Any]:
        """What was fitted, for reports: FSRS's parameters and the calibration."""
        out: dict[str, Any] = {"fsrs_parameters": [round(w, 4) for w in self.scheduler.parameters]}
        if self.calibration is not None:
            c = self.calibration
            out["calibration"] = {"intercept": round(c.intercept, 4), "slope": round(c.slope, 4),
                                  "features": dict(zip(self._feature_names, [round(v, 4) for v
                                                                              in c.coefs],
                                                       strict=True)),
                                  "half_life_reviews": c.half_life}
        return out

    # ------------------------------------------------------------------ internals
    @property
    def _n_features(self) -> int:
        return len(self._feature_names)

    @property
    def _feature_names(self) -> list[str]:
        probe = CardMemory()
        return [f"{name}[{k}]" for name in self.features
                for k in range(len(FEATURES[name](probe)))]

    def _features(self, state: CardMemory) -> tuple[float, ...]:
        return tuple(v for name in self.features for v in FEATURES[name](state))

    def _walk(self, reviews: Reviews) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(FSRS's R before each review, the card features then, whether the card had been
        reviewed before), running every card's state through the reviews in time order."""
        n = len(reviews)
        r = np.full(n, np.nan)
        features = np.zeros((n, self._n_features))
        seen = np.zeros(n, dtype=bool)
        states: dict[str, CardMemory] = {}
        for k in range(n):
            card = reviews.card[k]
            state = states.get(card) or self.new_state()
            at = as_datetime(reviews.time_ns[k])
            if state.fsrs is not None:
                r[k] = self.scheduler.get_card_retrievability(state.fsrs, at)
                features[k] = self._features(state)
                seen[k] = True
            duration = reviews.duration_ms[k]
            states[card] = self.update(state, int(reviews.rating[k]), at,
                                       None if np.isnan(duration) else float(duration))
        return r, features, seen


def _optimized_parameters(reviews: Reviews) -> list[float]:
    """FSRS's parameters fitted by py-fsrs's Optimizer (PyTorch, seeded: deterministic)."""
    from fsrs import Optimizer

    codes = reviews.card_codes()
    logs = [ReviewLog(card_id=int(codes[k]), rating=Rating(int(reviews.rating[k])),
                      review_datetime=as_datetime(reviews.time_ns[k]), review_duration=None)
            for k in range(len(reviews))]
    return [float(w) for w in Optimizer(logs).compute_optimal_parameters()]
