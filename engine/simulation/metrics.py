"""Per-learner outcomes summarized with 95% confidence intervals, alone and paired.

Every policy runs on the same simulated learners (same seed), so the comparison that matters is
paired: the per-learner difference against a baseline policy, whose interval is far narrower
than the two separate intervals suggest. Intervals are Student-t intervals of a mean over
learners (scipy.stats), which at hundreds of learners are as good as a bootstrap and cost
nothing; learners whose value is undefined (NaN, e.g. a diagnostic AUC with one class) are left
out and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

__all__ = ["learner_auc", "mean_ci", "paired_ci", "share_ci"]


def mean_ci(values: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """``{"mean", "ci95": [low, high], "n"}`` over the defined (non-NaN) values."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if not len(x):
        return {"mean": None, "ci95": [None, None], "n": 0}
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return {"mean": mean, "ci95": [mean, mean], "n": len(x)}
    low, high = stats.t.interval(level, len(x) - 1, loc=mean, scale=stats.sem(x))
    return {"mean": mean, "ci95": [float(low), float(high)], "n": len(x)}


def paired_ci(values: np.ndarray, baseline: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """:func:`mean_ci` of the per-learner differences ``values - baseline``, with the paired
    t-test's p-value (learners where either is undefined are left out)."""
    diff = np.asarray(values, dtype=float) - np.asarray(baseline, dtype=float)
    summary = mean_ci(diff, level)
    defined = diff[~np.isnan(diff)]
    summary["p_value"] = (float(stats.ttest_1samp(defined, 0.0).pvalue)
                          if len(defined) > 1 and np.any(defined != defined[0]) else None)
    return summary


def share_ci(flags: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """``{"mean", "ci95", "n"}`` of the share of True ``flags``, with Wilson's score interval
    (a t-interval of 0/1 values can leave [0, 1] near the ends)."""
    flags = np.asarray(flags, dtype=bool)
    if not len(flags):
        return {"mean": None, "ci95": [None, None], "n": 0}
    interval = stats.binomtest(int(flags.sum()), len(flags)).proportion_ci(level, "wilson")
    return {"mean": float(flags.mean()), "ci95": [float(interval.low), float(interval.high)],
            "n": len(flags)}


def learner_auc(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per learner (row), the AUC of ``scores`` against the boolean ``truth`` over the
    columns (Mann-Whitney, ties counted half); NaN for a learner with one class only."""
    ranks = stats.rankdata(scores, axis=1)
    positives = truth.sum(axis=1)
    negatives = truth.shape[1] - positives
    rank_sum = np.where(truth, ranks, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)
