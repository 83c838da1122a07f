"""Simulated A/A experiments: how often daily looks declare a difference that is not there.

Each run is one experiment with two arms running the same policy: learners arrive over
``days`` days (a Poisson number a day), are assigned by the real hash (:func:`assign`), and
each brings one outcome drawn from the same distribution in both arms: the share of their
answers that were right, for a learner of random ability (Beta(2, 1.5)) answering a random
number of exercises (1 + Poisson(6)): a lumpy, bounded value like the API's per-learner
accuracy. At the end of each day the arms' mean outcomes are compared twice:

* sequentially: the always-valid interval of the difference (:mod:`.sequential`) excludes 0;
* naively: the fixed-sample z-test (Welch's standard error) rejects at ``alpha``, as if that
  day's look were the only one.

A run is a false positive when any of its looks declares a difference; the false-positive
rate's interval is Clopper-Pearson's (exact binomial). Learners' outcomes are counted the day
they arrive (what matters is how the evidence accumulates over looks, not how each learner's
answers spread over days). Every number is a function of the seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

from engine.experiments.assignment import Arm, assign_all
from engine.experiments.sequential import (
    PLANNED_N,
    mixture_radius,
    mixture_variance,
    unit_variance,
)

#: the two arms of every A/A run: one policy, equal weights
AA_ARMS = (Arm("a"), Arm("b"))


@dataclass(frozen=True, slots=True)
class Rate:
    """A share of runs, with its exact 95% interval."""

    events: int
    runs: int

    @property
    def value(self) -> float:
        return self.events / self.runs

    @property
    def ci95(self) -> tuple[float, float]:
        ci = stats.binomtest(self.events, self.runs).proportion_ci(0.95, method="exact")
        return float(ci.low), float(ci.high)

    def to_json(self) -> dict[str, object]:
        low, high = self.ci95
        return {"rate": round(self.value, 6), "ci95": [round(low, 6), round(high, 6)],
                "false_positives": self.events, "runs": self.runs}


@dataclass(frozen=True, slots=True)
class AaResult:
    """What :func:`simulate_aa` found."""

    runs: int
    days: int
    seed: int
    learners_per_day: float
    alpha: float
    planned_n: int
    sequential: Rate  # any daily look's always-valid interval excluded 0
    naive_daily: Rate  # any daily look's fixed-sample test rejected
    naive_final: Rate  # the fixed-sample test on the last day only (should be ~alpha)
    mean_learners: float  # learners per run, on average


def simulate_aa(runs: int, days: int, seed: int, learners_per_day: float = 40.0,
                alpha: float = 0.05, planned_n: int = PLANNED_N,
                on_run: Callable[[int], None] | None = None) -> AaResult:
    """Run ``runs`` A/A experiments of ``days`` daily looks (``on_run(i)`` after each)."""
    for name, value in (("runs", runs), ("days", days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not learners_per_day > 0:
        raise ValueError(f"learners_per_day must be > 0, got {learners_per_day!r}")
    z = float(stats.norm.ppf(1 - alpha / 2))
    sequential = naive_daily = naive_final = 0
    learners = 0
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(runs)):
        rng = np.random.default_rng(child)
        day = np.repeat(np.arange(days), rng.poisson(learners_per_day, days))
        n = day.size
        names = [f"learner-{j}" for j in range(n)]
        arm_b = np.array([a == "b" for a in assign_all(f"aa-{seed}-{i}", names, AA_ARMS)],
                         dtype=bool)
        answers = 1 + rng.poisson(6.0, n)
        outcome = rng.binomial(answers, rng.beta(2.0, 1.5, n)) / answers
        cum = {arm: [np.cumsum(np.bincount(day[mask], weights, minlength=days))
                     for weights in (None, outcome[mask], outcome[mask] ** 2)]
               for arm, mask in (("a", ~arm_b), ("b", arm_b))}
        (n_a, s_a, q_a), (n_b, s_b, q_b) = cum["a"], cum["b"]
        var_a, var_b = unit_variance(n_a, s_a, q_a), unit_variance(n_b, s_b, q_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = s_b / n_b - s_a / n_a
            v = var_a / n_a + var_b / n_b
        radius = mixture_radius(v, mixture_variance((var_a + var_b) / planned_n, alpha), alpha)
        seen = np.isfinite(v) & (v > 0)
        sequential += bool((np.abs(diff) > radius)[seen].any())
        rejects = np.zeros(days, dtype=bool)
        rejects[seen] = np.abs(diff[seen]) > z * np.sqrt(v[seen])
        naive_daily += bool(rejects.any())
        naive_final += bool(rejects[-1])
        learners += n
        if on_run is not None:
            on_run(i)
    return AaResult(runs, days, seed, learners_per_day, alpha, planned_n,
                    Rate(sequential, runs), Rate(naive_daily, runs), Rate(naive_final, runs),
                    learners / runs)
