"""The sample-ratio-mismatch (SRM) check: are the arms' learner counts what the weights say?

A split that drifts from its weights (a bug in assignment, learners lost by one arm's policy
before they are counted, bots) biases every comparison between the arms, whatever their
intervals say; a chi-square goodness-of-fit test of the counts against the weights is the
standard alarm (Fabijan et al. 2019, "Diagnosing sample ratio mismatch in online controlled
experiments", KDD). The threshold is strict (p < 0.001 by default) because the check is run
on every look at an experiment: a real mismatch grows with the counts and is caught anyway.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from engine.experiments.assignment import shares as weight_shares

#: p-value below which the counts are taken as a mismatch
SRM_ALPHA = 0.001


@dataclass(frozen=True, slots=True)
class SrmCheck:
    """The chi-square test of the arms' counts against their weights."""

    counts: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float
    mismatch: bool  # p_value < alpha (False while there are no learners)


def srm_check(counts: Sequence[int], weights: Sequence[float],
              alpha: float = SRM_ALPHA) -> SrmCheck:
    """Chi-square goodness of fit of ``counts`` (learners per arm) against the shares
    ``weights`` / sum(weights) (:func:`~engine.experiments.assignment.shares`: no overflow
    for any finite weights); ``mismatch`` when p < ``alpha``."""
    if len(counts) != len(weights) or len(counts) < 2:
        raise ValueError(f"need one count per arm and at least two arms, got {len(counts)} "
                         f"counts for {len(weights)} weights")
    observed = np.asarray(counts, dtype=float)
    if (observed < 0).any() or not all(math.isfinite(w) and w > 0 for w in weights):
        raise ValueError("counts must be >= 0 and weights finite and > 0")
    shares = np.asarray(weight_shares(weights))
    if not (shares > 0).all():
        raise ValueError("every weight needs a share > 0 of the sum")
    total = float(observed.sum())
    expected = shares * total
    if total == 0:
        return SrmCheck(tuple(int(c) for c in counts), tuple(expected.tolist()), 0.0, 1.0,
                        False)
    chi2, p = stats.chisquare(observed, expected)
    return SrmCheck(tuple(int(c) for c in counts), tuple(expected.tolist()), float(chi2),
                    float(p), bool(p < alpha))
