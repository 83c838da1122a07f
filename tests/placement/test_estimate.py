"""Ability estimation: EAP against a hand-computed posterior and numerical integration; MAP and
ML, and ML's fallback when all answers agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import expit

from engine.placement import Grid, ItemBank, estimate


def test_eap_on_a_three_point_grid_matches_the_hand_computed_posterior() -> None:
    """Grid -1, 0, 1 with prior weights e^-1/2, 1, e^-1/2; one Rasch item (b = 0) answered
    right: posterior ∝ (e^-1/2 s(-1), 1/2, e^-1/2 s(1)) with s the logistic, s(1) + s(-1) = 1,
    so the mean is e^-1/2 (s(1) - s(-1)) / (e^-1/2 + 1/2) and E[θ²] = e^-1/2 / (e^-1/2 + 1/2)."""
    grid = Grid.normal(lo=-1, hi=1, n=3)
    bank = ItemBank.build([1.0], [0.0])
    e = math.exp(-0.5)
    s1 = 1 / (1 + math.exp(-1))
    norm = e + 0.5
    mean = e * (s1 - (1 - s1)) / norm
    second = e / norm
    result = estimate(bank, np.array([0]), np.array([True]), grid)
    assert result.theta == pytest.approx(mean, rel=1e-12)  # 0.2533...
    assert result.se == pytest.approx(math.sqrt(second - mean ** 2), rel=1e-12)
    wrong = estimate(bank, np.array([0]), np.array([False]), grid)
    assert wrong.theta == pytest.approx(-mean, rel=1e-12)


def test_eap_on_the_default_grid_matches_the_integral() -> None:
    bank = ItemBank.build([1.2, 0.8, 2.0, 1.5], [-0.5, 0.3, 1.0, 0.0], [0.2, 0, 0.1, 0])
    items = np.arange(4)
    correct = np.array([True, True, False, True])

    def likelihood(t: float) -> float:
        p = bank.c + (1 - bank.c) * expit(bank.a * (t - bank.b))
        return float(np.prod(np.where(correct, p, 1 - p)) * math.exp(-t * t / 2))

    z = quad(likelihood, -10, 10)[0]
    mean = quad(lambda t: t * likelihood(t), -10, 10)[0] / z
    var = quad(lambda t: (t - mean) ** 2 * likelihood(t), -10, 10)[0] / z
    result = estimate(bank, items, correct, Grid.normal())
    assert result.theta == pytest.approx(mean, abs=1e-4)
    assert result.se == pytest.approx(math.sqrt(var), abs=1e-4)


def test_ml_of_a_symmetric_pattern_is_the_centre_and_its_se_the_information() -> None:
    """Rasch items at -1 and +1, the easy one right and the hard one wrong: the likelihood is
    symmetric about 0, so θ̂ = 0 and SE = 1 / sqrt(2 s(1) s(-1))."""
    bank = ItemBank.build([1.0, 1.0], [-1.0, 1.0])
    result = estimate(bank, np.array([0, 1]), np.array([True, False]), Grid.normal(), "ml")
    assert result.theta == pytest.approx(0.0, abs=1e-5)
    s = 1 / (1 + math.exp(-1))
    assert result.se == pytest.approx(1 / math.sqrt(2 * s * (1 - s)), rel=1e-6)


def test_map_shrinks_ml_towards_the_prior_mean() -> None:
    bank = ItemBank.build([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0])
    correct = np.array([True, True, False])
    ml = estimate(bank, np.arange(3), correct, Grid.normal(), "ml")
    map_ = estimate(bank, np.arange(3), correct, Grid.normal(), "map")
    assert 0 < map_.theta < ml.theta
    assert map_.se < ml.se  # the prior adds information


def test_ml_falls_back_to_eap_while_all_answers_agree() -> None:
    bank = ItemBank.build([1.0, 1.4], [0.0, 0.5])
    grid = Grid.normal()
    for answers in ([True, True], [False, False]):
        correct = np.array(answers)
        ml = estimate(bank, np.arange(2), correct, grid, "ml")
        assert ml == estimate(bank, np.arange(2), correct, grid, "eap")
        assert abs(ml.theta) < 3  # finite, not the grid's edge


def test_bad_estimator_and_grid_are_refused() -> None:
    bank = ItemBank.build([1.0], [0.0])
    with pytest.raises(ValueError, match="unknown estimator 'wle'"):
        estimate(bank, np.array([0]), np.array([True]), Grid.normal(), "wle")
    with pytest.raises(ValueError, match="sd > 0"):
        Grid.normal(sd=0)
