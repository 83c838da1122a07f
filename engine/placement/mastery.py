"""From a placement's ability posterior to each skill's starting P(mastered) for the tracers.

**The rule.** A learner has mastered a skill when they would answer its items correctly, by
knowledge rather than by guessing, with probability at least ``level`` (0.5 by default): on the
items' latent curves logistic(a (θ - b)), i.e. without the 3PL/4PL asymptotes, which model guessing
and slips, as BKT's guess and slip do. That defines one ability threshold per skill,

    θ*_s  solving  mean over the skill's items of logistic(a_i (θ - b_i)) = level

(for one item, θ* = b at level 0.5), and the starting mastery is the posterior probability
that the learner is above it:

    P(mastered s) = P(θ >= θ*_s | placement answers)

so an uncertain placement gives hedged masteries and a precise one confident masteries; a
learner who took no placement gets the prior's values. The result is clipped to [0.01, 0.99]:
a placement is evidence, and a tracer must still be able to move a mastery it got from one.

Where the data supports one θ per course area (a bank's content groups), call
:func:`starting_mastery` once per area with that area's posterior and skills. The numbers go to
a tracer's starting state (BKT's per-skill prior, DKT's and the memory model's initial
mastery); wiring them into the API is the placement endpoint's job.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.optimize import brentq
from scipy.special import expit

__all__ = ["skill_threshold", "starting_mastery"]

#: how far a starting mastery stays from certainty (see the module)
CLIP = (0.01, 0.99)


def skill_threshold(a: np.ndarray, b: np.ndarray, level: float = 0.5) -> float:
    """θ*: where the mean latent P(correct) of the items (discriminations ``a``, difficulties
    ``b``) reaches ``level``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(a) != len(b):
        raise ValueError("a skill threshold needs at least one item, with a and b each")
    if not 0 < level < 1:
        raise ValueError(f"the mastery level must be in (0, 1), got {level}")
    lo = float(b.min() - 40 / a.min())
    hi = float(b.max() + 40 / a.min())
    return float(brentq(lambda t: float(expit(a * (t - b)).mean()) - level, lo, hi,
                        xtol=1e-9))


def starting_mastery(points: np.ndarray, weights: np.ndarray,
                     skills: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     level: float = 0.5) -> dict[str, float]:
    """P(mastered) per skill from the posterior ``weights`` on the grid ``points`` (equally
    spaced); ``skills`` maps each skill to its items' (a, b) arrays.

    Each grid point stands for the cell of width h around it, so the posterior mass above a
    threshold inside a cell is taken in proportion (a smooth function of θ*).
    """
    points = np.asarray(points, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if points.shape != weights.shape or len(points) < 2:
        raise ValueError("points and weights must be equally long, with at least 2 points")
    h = points[1] - points[0]
    edges = np.concatenate([[points[0] - h / 2], points + h / 2])
    cdf = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])
    result = {}
    for skill, (a, b) in skills.items():
        above = 1.0 - float(np.interp(skill_threshold(a, b, level), edges, cdf))
        result[skill] = float(np.clip(above, *CLIP))
    return result
