"""IRT models: probabilities and Fisher information against their closed forms and the
definition I = P'^2 / (P (1 - P))."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from engine.placement import ItemBank, information, probability

THETA = np.linspace(-3, 3, 13)


def test_probability_is_midway_between_the_asymptotes_at_the_difficulty() -> None:
    bank = ItemBank.build([1.7, 0.6], [0.4, -1.0], [0.2, 0.1], [0.95, 1.0])
    p = probability(bank, np.array([0.4, -1.0]))
    assert p[0, 0] == pytest.approx((0.2 + 0.95) / 2)
    assert p[1, 1] == pytest.approx((0.1 + 1.0) / 2)


def test_two_pl_information_is_a_squared_p_q() -> None:
    bank = ItemBank.build([0.8, 2.0], [0.0, 1.0])
    for theta in (-1.0, 0.0, 2.5):
        for i, (a, b) in enumerate([(0.8, 0.0), (2.0, 1.0)]):
            p = 1 / (1 + math.exp(-a * (theta - b)))
            assert information(bank, theta)[0, i] == pytest.approx(a * a * p * (1 - p))


def test_three_pl_information_is_birnbaums_formula() -> None:
    a, b, c = 1.3, -0.5, 0.25
    bank = ItemBank.build([a], [b], [c])
    for theta in (-2.0, -0.5, 1.0):
        p = c + (1 - c) / (1 + math.exp(-a * (theta - b)))
        expected = a * a * (1 - p) / p * ((p - c) / (1 - c)) ** 2
        assert information(bank, theta)[0, 0] == pytest.approx(expected)


def test_four_pl_information_matches_the_definition() -> None:
    """I(θ) = P'(θ)² / (P (1 - P)), with P' by central differences."""
    bank = ItemBank.build([1.1, 2.4, 0.7], [0.3, -1.2, 1.5], [0.15, 0.0, 0.3], [0.9, 0.97, 1.0])
    h = 1e-5
    slope = (probability(bank, THETA + h) - probability(bank, THETA - h)) / (2 * h)
    p = probability(bank, THETA)
    np.testing.assert_allclose(information(bank, THETA), slope ** 2 / (p * (1 - p)), rtol=1e-6)


def test_one_pl_information_peaks_at_the_difficulty_with_a_quarter() -> None:
    bank = ItemBank.build([1.0, 1.0], [-1.0, 2.0])
    assert bank.model == "1pl"
    assert information(bank, -1.0)[0, 0] == pytest.approx(0.25)
    assert information(bank, 2.0)[0, 1] == pytest.approx(0.25)
    assert np.argmax(information(bank, THETA)[:, 0]) == np.argmin(np.abs(THETA + 1.0))


@pytest.mark.parametrize(("a", "c", "d", "message"), [
    (0.0, 0.0, 1.0, "a (discrimination)"), (1.0, 1.0, 1.0, "c (guessing)"),
    (1.0, 0.3, 0.2, "d (upper asymptote)")])
def test_bad_parameters_name_the_item_and_the_parameter(a: float, c: float, d: float,
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"item 'x2': {message}")):
        ItemBank.build([1.0, a], [0.0, 0.0], [0.0, c], [1.0, d], ids=["x1", "x2"])


def test_model_names_the_smallest_model_that_holds_the_bank() -> None:
    assert ItemBank.build([1.0, 1.5], [0, 0]).model == "2pl"
    assert ItemBank.build([1.0, 1.5], [0, 0], [0.2, 0]).model == "3pl"
    assert ItemBank.build([1.0, 1.5], [0, 0], [0.2, 0], [1, 0.9]).model == "4pl"
