"""A logistic layer over FSRS's recall probability, fitted with more weight on recent reviews.

Why: FSRS-6 predicts each card alone from its ratings and intervals; what it cannot see is what a
learner's whole log says about it. On the review log benchmarked here, FSRS under-predicts cards
that have been recalled several times and the learner's recall rises over the months, so
FSRS's parameters optimized on the older reviews do worse on the newer ones than the defaults.
The layer ``P = sigmoid(a + b * logit(R_fsrs) + c . features)`` corrects both: ``b`` stays
positive (enforced by a bound), so predicted recall still falls with time since the last review,
and the fit weights each scored review by ``0.5 ** (age / half_life)`` (age in scored reviews
before the end of the training part), so the learner's recent behaviour counts most. The
half-life is chosen on the last 30% of the training part, never on the reviews being predicted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

__all__ = ["Calibration", "fit_calibration", "logit", "select_half_life"]

_EPS = 1e-6
_MIN_SLOPE = 1e-3


def logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6] (FSRS says R = 1 right after a review)."""
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.asarray(np.log(p / (1 - p)))


@dataclass(frozen=True)
class Calibration:
    """``P = sigmoid(intercept + slope * logit(R) + coefs . features)``; ``slope > 0``.

    ``half_life`` is the recency weighting it was fitted with (None: all reviews alike), kept to
    say how it was made.
    """

    intercept: float
    slope: float
    coefs: tuple[float, ...]
    half_life: float | None = None

    def __post_init__(self) -> None:
        if not self.slope > 0:
            raise ValueError(f"the calibration's slope must be positive (recall must fall with "
                             f"time), got {self.slope}")

    def apply(self, logit_r: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Recall probabilities for rows of ``logit(R)`` and ``features`` (n x len(coefs))."""
        z = self.intercept + self.slope * logit_r + features @ np.asarray(self.coefs)
        return np.asarray(expit(z))

    def recall(self, r: float, features: Sequence[float]) -> float:
        """:meth:`apply` for one card, in scalars (the online path: no arrays to build)."""
        p = min(max(r, _EPS), 1 - _EPS)
        z = (self.intercept + self.slope * math.log(p / (1 - p))
             + sum(c * f for c, f in zip(self.coefs, features, strict=True)))
        return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))

    def logit_r_for(self, target: float, features: Sequence[float]) -> float:
        """The ``logit(R)`` at which the calibrated recall equals ``target`` (0 < target < 1):
        the inverse of :meth:`recall` for one card."""
        z = math.log(target / (1 - target))
        evidence = sum(c * f for c, f in zip(self.coefs, features, strict=True))
        return (z - self.intercept - evidence) / self.slope


def fit_calibration(logit_r: np.ndarray, features: np.ndarray, y: np.ndarray,
                    half_life: float | None, *, l2: float = 1.0) -> Calibration:
    """Weighted logistic regression of ``y`` on ``[logit(R), features]`` with an intercept.

    The objective is scikit-learn's ``LogisticRegression(C=1/l2)``: ``l2/2 * |w|^2`` plus the
    weighted sum of log losses; L-BFGS-B with the exact gradient, the slope bounded below so that
    the fitted model keeps forgetting. Reviews are in time order; the last has weight 1.
    """
    n = len(y)
    if n == 0:
        raise ValueError("no scored reviews to fit the calibration on")
    age = np.arange(n)[::-1].astype(float)
    weight = np.ones(n) if half_life is None else 0.5 ** (age / half_life)
    design = np.column_stack([np.ones(n), logit_r, features])

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = design @ theta
        # log(1 + e^z) - y z, stable for large |z|
        value = float(np.sum(weight * (np.logaddexp(0.0, z) - y * z)))
        grad = design.T @ (weight * (expit(z) - y))
        penalty = theta.copy()
        penalty[0] = 0.0  # the intercept is not penalized
        return value + 0.5 * l2 * float(penalty @ penalty), grad + l2 * penalty

    start = np.zeros(design.shape[1])
    start[1] = 1.0  # FSRS as it is
    bounds = [(None, None), (_MIN_SLOPE, None)] + [(None, None)] * features.shape[1]
    result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    theta = result.x
    return Calibration(float(theta[0]), float(theta[1]), tuple(float(c) for c in theta[2:]),
                       half_life)


def select_half_life(logit_r: np.ndarray, features: np.ndarray, y: np.ndarray,
                     candidates: Sequence[float | None], *, holdout: float = 0.3) -> float | None:
    """The candidate half-life whose calibration, fitted on the first ``1 - holdout`` of the
    scored reviews, has the lowest log loss on the rest (ties: the first candidate)."""
    if len(candidates) == 1:
        return candidates[0]
    cut = int((1 - holdout) * len(y))
    if cut == 0 or cut == len(y):
        raise ValueError(f"too few scored reviews ({len(y)}) to choose a half-life")
    losses = []
    for half_life in candidates:
        fitted = fit_calibration(logit_r[:cut], features[:cut], y[:cut], half_life)
        p = np.clip(fitted.apply(logit_r[cut:], features[cut:]), _EPS, 1 - _EPS)
        held = y[cut:]
        losses.append(-float(np.mean(held * np.log(p) + (1 - held) * np.log(1 - p))))
    return candidates[int(np.argmin(losses))]
