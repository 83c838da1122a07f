"""Confidence intervals that stay valid under repeated looks (confidence sequences).

A fixed-sample 95% interval, recomputed every day and acted on the first day it excludes
zero, declares a difference between two identical arms far more often than 5% of the time
(each look is another chance; ``tutor experiment simulate-aa`` measures it). A *confidence
sequence* holds at every look at once: P(the true value is ever outside) <= alpha.

The one used here is the normal-mixture boundary (Robbins 1970; Howard, Ramdas, McAuliffe &
Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", Ann. Statist.,
eq. (14)), the same one as the mixture SPRT of Johari, Koomen, Pekelis & Walsh 2017, "Peeking
at A/B tests" (KDD; Operations Research 2022, section 4). For an estimate ``theta_hat`` of
``theta`` with variance ``V`` (``sigma^2 / n`` for a mean, ``sigma_a^2 / n_a + sigma_b^2 /
n_b`` for a difference of two arms' means), ``(theta_hat - theta) / V`` is, at information
``1 / V``, approximately a Brownian motion, and mixing its exponential martingales over a drift
``~ N(0, tau^2)`` gives the martingale

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta)^2 / (2 V (V + tau^2))),

so by Ville's inequality P(Lambda ever >= 1 / alpha) <= alpha, and the set where
``Lambda < 1 / alpha`` is the interval

    theta_hat +- sqrt(V (V + tau^2) / tau^2 * (2 log(1 / alpha) + log((V + tau^2) / V))).

The variances are plugged in from the data, which makes the sequence valid asymptotically
(Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas 2023, "Time-uniform central limit theory and
asymptotic confidence sequences", Ann. Statist.), as for the fixed-sample t-interval; the A/A
simulation checks the error rate at the sizes experiments have. ``tau^2`` only trades width
early against width late: it is set so that the interval is narrowest when each arm has
``planned_n`` values (:func:`mixture_variance`).

No maintained Python library fits: ``confseq`` (Howard's) ships only a C++ source needing Boost
and CMake to build, its last release from 2023; ``savvi`` brings cvxpy along and covers
multinomial and regression models, not a difference of two means. The formulas are short.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

#: each arm's number of values at which the interval is narrowest, unless told otherwise
PLANNED_N = 500


@dataclass(frozen=True, slots=True)
class Interval:
    """An estimate and its always-valid interval (``low``/``high`` infinite: no interval yet,
    fewer than two values or no spread); ``p_value``: the always-valid p-value of "the true
    value is 0" at this look, ``min(1, 1 / Lambda)``."""

    estimate: float
    low: float
    high: float
    p_value: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True, slots=True)
class Sample:
    """What the intervals need of one arm's values: how many, their sum and sum of squares."""

    n: int
    total: float
    total_sq: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Sample:
        x = np.fromiter(values, dtype=float)
        return cls(int(x.size), float(x.sum()), float(np.square(x).sum()))

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan


def mixture_variance(planned_v: np.ndarray | float, alpha: float) -> np.ndarray:
    """``tau^2`` that makes the interval narrowest where the estimate's variance is
    ``planned_v``: ``r * planned_v``, where ``r`` minimizes ``(1 + 1/r)(2 log(1/alpha) +
    log(1 + r))``, i.e. solves ``r = 2 log(1/alpha) + log(1 + r)`` (a contraction: iterated)."""
    _check_alpha(alpha)
    two_l = 2 * math.log(1 / alpha)
    r = two_l
    for _ in range(60):
        r = two_l + math.log1p(r)
    return r * np.asarray(planned_v, dtype=float)


def mixture_radius(v: np.ndarray | float, tau2: np.ndarray | float,
                   alpha: float) -> np.ndarray:
    """Half-width of the normal-mixture interval for an estimate of variance ``v`` (arrays
    allowed); infinite where ``v`` or ``tau2`` is not a positive finite number."""
    _check_alpha(alpha)
    v = np.asarray(v, dtype=float)
    tau2 = np.asarray(tau2, dtype=float)
    ok = (v > 0) & np.isfinite(v) & (tau2 > 0) & np.isfinite(tau2)
    v_ok, t_ok = np.where(ok, v, 1.0), np.where(ok, tau2, 1.0)
    radius = np.sqrt(v_ok * (v_ok + t_ok) / t_ok
                     * (2 * math.log(1 / alpha) + np.log((v_ok + t_ok) / v_ok)))
    return np.where(ok, radius, np.inf)


def mixture_p_value(estimate: np.ndarray | float, v: np.ndarray | float,
                    tau2: np.ndarray | float) -> np.ndarray:
    """``min(1, 1 / Lambda)`` of "the true value is 0" (1 where there is no interval)."""
    est = np.asarray(estimate, dtype=float)
    v = np.asarray(v, dtype=float)
    tau2 = np.asarray(tau2, dtype=float)
    ok = (v > 0) & np.isfinite(v) & (tau2 > 0) & np.isfinite(tau2) & np.isfinite(est)
    v_ok, t_ok, e_ok = np.where(ok, v, 1.0), np.where(ok, tau2, 1.0), np.where(ok, est, 0.0)
    log_lambda = (0.5 * np.log(v_ok / (v_ok + t_ok))
                  + t_ok * e_ok**2 / (2 * v_ok * (v_ok + t_ok)))
    return np.where(ok, np.minimum(1.0, np.exp(-log_lambda)), 1.0)


def unit_variance(n: np.ndarray | float, total: np.ndarray | float,
                  total_sq: np.ndarray | float, binary: bool = False) -> np.ndarray:
    """The variance of one value, estimated (arrays allowed; NaN below two values). Binary
    values (0/1) use the smoothed share ``(k + 1) / (n + 2)``, so that an arm whose first
    values are all 1 (or 0) does not get an interval of zero width; other values the sample
    variance."""
    n = np.asarray(n, dtype=float)
    total = np.asarray(total, dtype=float)
    enough = n >= 2
    n_ok = np.where(enough, n, 2.0)
    if binary:
        share = (total + 1) / (n_ok + 2)
        var = share * (1 - share)
    else:
        var = np.maximum((np.asarray(total_sq, dtype=float) - total**2 / n_ok) / (n_ok - 1), 0)
    return np.where(enough, var, np.nan)


def mean_interval(sample: Sample, alpha: float = 0.05, planned_n: int = PLANNED_N,
                  binary: bool = False) -> Interval:
    """The always-valid interval of one arm's mean."""
    var = unit_variance(sample.n, sample.total, sample.total_sq, binary)
    v = var / max(sample.n, 1)
    return _interval(sample.mean, v, var / _checked_planned(planned_n), alpha)


def difference_interval(control: Sample, treatment: Sample, alpha: float = 0.05,
                        planned_n: int = PLANNED_N, binary: bool = False) -> Interval:
    """The always-valid interval of ``treatment``'s mean minus ``control``'s."""
    var_c = unit_variance(control.n, control.total, control.total_sq, binary)
    var_t = unit_variance(treatment.n, treatment.total, treatment.total_sq, binary)
    v = var_c / max(control.n, 1) + var_t / max(treatment.n, 1)
    planned_v = (var_c + var_t) / _checked_planned(planned_n)
    return _interval(treatment.mean - control.mean, v, planned_v, alpha)


def _interval(estimate: float, v: np.ndarray, planned_v: np.ndarray, alpha: float) -> Interval:
    tau2 = mixture_variance(planned_v, alpha)
    radius = float(mixture_radius(v, tau2, alpha))
    p = float(mixture_p_value(estimate, v, tau2))
    if not math.isfinite(radius) or not math.isfinite(estimate):
        return Interval(estimate, -math.inf, math.inf, 1.0)
    return Interval(estimate, estimate - radius, estimate + radius, p)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")


def _checked_planned(planned_n: int) -> int:
    if isinstance(planned_n, bool) or not isinstance(planned_n, int) or planned_n < 1:
        raise ValueError(f"planned_n must be an integer >= 1, got {planned_n!r}")
    return planned_n
