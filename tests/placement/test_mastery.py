"""From a placement's posterior to starting masteries: the stated rule, computed exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import norm

from engine.placement import Grid, skill_threshold, starting_mastery


def test_one_item_skill_threshold_is_its_difficulty_and_levels_move_it() -> None:
    assert skill_threshold(np.array([1.7]), np.array([0.4])) == pytest.approx(0.4)
    # level 0.8 on one item: a (θ - b) = log 4
    assert skill_threshold(np.array([2.0]), np.array([0.0]), 0.8) == pytest.approx(
        np.log(4) / 2)
    a, b = np.array([1.0, 2.0, 0.5]), np.array([-1.0, 0.5, 2.0])
    t = skill_threshold(a, b, 0.6)
    assert expit(a * (t - b)).mean() == pytest.approx(0.6)


def test_mastery_is_the_posterior_mass_above_the_threshold() -> None:
    """A normal posterior N(0.3, 0.4²) on a fine grid: P(θ >= b) is the normal tail."""
    grid = Grid.normal(lo=-5, hi=5, n=2001)
    weights = norm.pdf(grid.points, 0.3, 0.4)
    skills = {"easy": (np.array([1.0]), np.array([-0.5])),
              "hard": (np.array([1.0]), np.array([0.9]))}
    mastery = starting_mastery(grid.points, weights, skills)
    assert mastery["easy"] == pytest.approx(norm.sf(-0.5, 0.3, 0.4), abs=1e-4)
    assert mastery["hard"] == pytest.approx(norm.sf(0.9, 0.3, 0.4), abs=1e-4)


def test_mastery_is_clipped_away_from_certainty() -> None:
    grid = Grid.normal()
    weights = np.zeros(len(grid.points))
    weights[-1] = 1.0  # all mass at θ = 5
    mastery = starting_mastery(grid.points, weights, {"s": (np.array([1.0]), np.array([0.0]))})
    assert mastery == {"s": 0.99}


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one item"):
        skill_threshold(np.array([]), np.array([]))
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        skill_threshold(np.array([1.0]), np.array([0.0]), 1.0)
