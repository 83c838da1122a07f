"""training.metrics: scores() and evaluate() against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.events import AnswerLog
from training.metrics import evaluate, scores


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 1, 0, 1])
    s = scores(y, y.astype(float))
    assert s["auc"] == 1.0
    assert s["rmse"] == 0.0
    assert s["accuracy"] == 1.0
    assert s["log_loss"] == pytest.approx(-math.log(1 - 1e-7), rel=1e-6)  # clipped at 1e-7


def test_constant_predictions() -> None:
    y = np.array([1, 0, 1, 1])
    s = scores(y, np.full(4, 0.7))
    assert s["auc"] == 0.5
    assert s["rmse"] == pytest.approx(math.sqrt((3 * 0.3**2 + 0.7**2) / 4), rel=1e-12)
    assert s["accuracy"] == 0.75
    assert s["log_loss"] == pytest.approx(-(3 * math.log(0.7) + math.log(0.3)) / 4, rel=1e-12)


def test_hand_computed_scores() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.8, 0.6, 0.4, 0.2])
    s = scores(y, p)
    # positive/negative pairs: (.8,.6) (.8,.2) (.4,.2) ranked right, (.4,.6) wrong -> 3/4
    assert s["auc"] == pytest.approx(0.75, rel=1e-12)
    assert s["rmse"] == pytest.approx(math.sqrt((0.04 + 0.36 + 0.36 + 0.04) / 4), rel=1e-12)
    assert s["accuracy"] == 0.5  # .8 right, .6 wrong, .4 wrong, .2 right
    assert s["log_loss"] == pytest.approx(
        -(math.log(0.8) + math.log(0.4) + math.log(0.4) + math.log(0.8)) / 4, rel=1e-12)


def test_auc_undefined_with_one_outcome() -> None:
    s = scores(np.ones(3), np.array([0.2, 0.5, 0.9]))
    assert math.isnan(s["auc"])
    assert math.isfinite(s["rmse"]) and math.isfinite(s["log_loss"])


@pytest.mark.parametrize(
    ("y", "p", "match"),
    [
        ([1, 0, 1], [0.5, 0.5], "3 outcomes but 2 predictions"),
        ([], [], "no answers"),
        ([1, 0], [0.5, np.nan], "NaN or infinity"),
        ([1, 0], [np.inf, 0.5], "NaN or infinity"),
    ],
)
def test_scores_rejects_bad_input(y: list, p: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        scores(np.array(y, dtype=float), np.array(p, dtype=float))


def test_evaluate_per_skill_means_with_multi_skill_answers() -> None:
    log = AnswerLog.from_columns(
        ["u1", "u1", "u2", "u2", "u3"],
        ["i0", "i1", "i2", "i3", "i4"],
        [("a",), ("a", "b"), ("b",), ("a",), ("b", "c")],
        [1, 0, 0, 1, 1],
    )
    p = np.array([0.9, 0.3, 0.2, 0.4, 0.6])
    out = evaluate(log, p)
    # pooled over rows: y = 1 0 0 1 1
    assert out["auc"] == pytest.approx(1.0)  # positives .9 .4 .6 above negatives .3 .2
    assert out["rmse"] == pytest.approx(
        math.sqrt((0.01 + 0.09 + 0.04 + 0.36 + 0.16) / 5), rel=1e-12)
    # a: rows 0,1,3 (y 1 0 1, p .9 .3 .4); b: rows 1,2,4 (y 0 0 1, p .3 .2 .6); c: row 4
    rmse_a = math.sqrt((0.01 + 0.09 + 0.36) / 3)
    rmse_b = math.sqrt((0.09 + 0.04 + 0.16) / 3)
    rmse_c = 0.4
    assert out["rmse_per_skill"] == pytest.approx((rmse_a + rmse_b + rmse_c) / 3, rel=1e-12)
    # AUC: a = 1, b = 1, c undefined (one answer) and left out of the mean
    assert out["auc_per_skill"] == pytest.approx(1.0)
    acc_a, acc_b, acc_c = 2 / 3, 1.0, 1.0  # a: .4 for y=1 is wrong
    assert out["accuracy_per_skill"] == pytest.approx((acc_a + acc_b + acc_c) / 3, rel=1e-12)
    ll_a = -(math.log(0.9) + math.log(0.7) + math.log(0.4)) / 3
    ll_b = -(math.log(0.7) + math.log(0.8) + math.log(0.6)) / 3
    ll_c = -math.log(0.6)
    assert out["log_loss_per_skill"] == pytest.approx((ll_a + ll_b + ll_c) / 3, rel=1e-12)


def test_evaluate_per_skill_auc_mixed() -> None:
    log = AnswerLog.from_columns(
        ["u", "u", "u", "u", "u", "u"], ["i"] * 6,
        ["a", "a", "a", "b", "b", "b"], [1, 0, 1, 0, 1, 0],
    )
    p = np.array([0.9, 0.2, 0.4, 0.2, 0.3, 0.6])
    out = evaluate(log, p)
    # a: 1; b: positive .3 beats .2, loses to .6 -> 0.5
    assert out["auc_per_skill"] == pytest.approx(0.75, rel=1e-12)


def test_evaluate_skips_skills_without_answers() -> None:
    log = AnswerLog.from_columns(["u", "u", "u"], ["i", "j", "k"], ["a", "b", "a"], [1, 0, 0])
    sub = log.take(np.array([0, 2]))  # keeps skill "b" in the vocabulary, with no answers
    out = evaluate(sub, np.array([0.8, 0.3]))
    assert out["rmse_per_skill"] == pytest.approx(math.sqrt((0.04 + 0.09) / 2), rel=1e-12)
    assert out["auc_per_skill"] == 1.0
