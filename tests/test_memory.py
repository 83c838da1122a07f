"""Memory models (engine/memory): hand-computed recall and due times, the calibrated layer,
online = batch, ground-truth recovery of the calibration on simulated reviews, bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.memory import CardMemory, MemoryModel, Reviews, make_memory_model
from engine.memory.calibration import Calibration, fit_calibration
from engine.memory.reviews import REVIEW_HORIZON, as_datetime

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
# FSRS-6's default parameters (py-fsrs), the ones the hand computations use
W = (0.212, 1.2931, 2.3065, 8.2956, 6.4133, 0.8334, 3.0194, 0.001, 1.8722, 0.1666, 0.796,
     1.4835, 0.0614, 0.2629, 1.6483, 0.6014, 1.8729, 0.5425, 0.0912, 0.0658, 0.1542)
DECAY = -W[20]
FACTOR = 0.9 ** (1 / DECAY) - 1


def forgetting_curve(days: float, stability: float) -> float:
    """FSRS-6's R after whole ``days`` since the last review at ``stability``."""
    return (1 + FACTOR * days / stability) ** DECAY


def test_recall_decays_with_time_hand_computed() -> None:
    """One Good review: stability w2 days; R falls with each whole day since (FSRS counts days)."""
    fsrs = make_memory_model("fsrs")
    state = fsrs.update(fsrs.new_state(), 3, T0)
    expected = [forgetting_curve(d, W[2]) for d in (1, 2, 10)]
    got = [fsrs.recall(state, T0 + d * DAY) for d in (1, 2, 10)]
    assert got == pytest.approx(expected, rel=1e-12)
    assert got[0] > got[1] > got[2]
    assert fsrs.recall(state, T0 + 1.5 * DAY) == pytest.approx(expected[0], rel=1e-12)
    assert fsrs.recall(fsrs.new_state(), T0) == 0.0  # never reviewed: nothing to recall


def test_recall_rises_with_spaced_success_hand_computed() -> None:
    """A second success 3 days later grows stability by FSRS's recall formula; a day after it,
    recall is higher than a day after the first review."""
    fsrs = make_memory_model("fsrs")
    once = fsrs.update(fsrs.new_state(), True, T0)
    twice = fsrs.update(once, True, T0 + 3 * DAY)
    d1 = W[4] - math.exp(W[5] * (3 - 1)) + 1  # initial difficulty after Good
    r3 = forgetting_curve(3, W[2])
    s2 = W[2] * (1 + math.exp(W[8]) * (11 - d1) * W[2] ** -W[9]
                 * (math.exp((1 - r3) * W[10]) - 1))
    assert twice.fsrs is not None and twice.fsrs.stability == pytest.approx(s2, rel=1e-12)
    after_second = fsrs.recall(twice, T0 + 4 * DAY)
    assert after_second == pytest.approx(forgetting_curve(1, s2), rel=1e-12)
    assert after_second > fsrs.recall(once, T0 + DAY)
    assert (twice.recalled, twice.forgotten) == (1, 0)  # the first review is not a spaced one


def test_bool_and_rating_updates_agree() -> None:
    fsrs = make_memory_model("fsrs")
    good = fsrs.update(fsrs.new_state(), 3, T0)
    assert fsrs.update(fsrs.new_state(), True, T0) == good
    again = fsrs.update(good, 1, T0 + 2 * DAY)
    assert fsrs.update(good, False, T0 + 2 * DAY) == again
    assert (again.recalled, again.forgotten) == (0, 1)
    same_day = fsrs.update(good, False, T0 + timedelta(hours=2))
    assert (same_day.same_day, same_day.same_day_forgotten, same_day.forgotten) == (1, 1, 0)


def test_calibrated_recall_hand_computed() -> None:
    """P = sigmoid(a + b logit R + c . [log1p recalled, log1p forgotten])."""
    calibration = Calibration(intercept=0.5, slope=2.0, coefs=(0.3, -0.2))
    model = MemoryModel(calibration=calibration)
    fsrs = make_memory_model("fsrs")
    state = model.new_state()
    for rating, at in ((3, T0), (1, T0 + 2 * DAY), (3, T0 + 5 * DAY)):
        state = model.update(state, rating, at)
    assert (state.recalled, state.forgotten) == (1, 1)
    at = T0 + 9 * DAY
    r = fsrs.recall(state, at)
    z = 0.5 + 2.0 * math.log(r / (1 - r)) + 0.3 * math.log(2) - 0.2 * math.log(2)
    assert model.recall(state, at) == pytest.approx(1 / (1 + math.exp(-z)), rel=1e-12)


@pytest.mark.parametrize("calibration", [None, Calibration(0.4, 0.8, (0.1, 0.5))])
@pytest.mark.parametrize("retention", [0.7, 0.9, 0.95])
def test_due_is_the_first_day_recall_reaches_the_target(calibration: Calibration | None,
                                                        retention: float) -> None:
    model = MemoryModel(calibrate=False, calibration=calibration)
    state = model.update(model.update(model.new_state(), 3, T0), 3, T0 + 2 * DAY)
    due = model.due(state, retention)
    assert model.recall(state, due) <= retention
    if due > T0 + 2 * DAY:
        assert model.recall(state, due - DAY) > retention


_CALIBRATIONS = [None, Calibration(0.4, 0.8, (0.1, 0.5)), Calibration(-30.0, 0.05, (0.0, 0.0))]


@settings(max_examples=200, deadline=None)
@given(retention=st.floats(min_value=5e-324, max_value=1.0, exclude_max=True),
       calibration=st.sampled_from(_CALIBRATIONS), reviews=st.integers(1, 6))
def test_due_is_a_date_within_the_horizon_for_any_retention(
        retention: float, calibration: Calibration | None, reviews: int) -> None:
    """Issue 20 #6: a low retention (0.2 and below) or a calibration that lowers the target
    gave a due time past year 9999 (OverflowError) or overflowed the float; now it is a date
    at most the horizon after the last review, or None, and the first day recall reaches the
    retention whenever it is a date."""
    model = MemoryModel(calibrate=False, calibration=calibration)
    state, at = model.new_state(), T0
    for k in range(reviews):  # Good reviews ever further apart: a stability of years
        state = model.update(state, 3, at)
        at += 10 ** k * DAY
    last = state.fsrs.last_review if state.fsrs is not None else None
    assert last is not None
    due = model.due(state, retention)
    if due is not None:
        assert last <= due <= last + REVIEW_HORIZON
        assert model.recall(state, due) <= retention
    short = model.due(state, retention, horizon=30 * DAY)
    assert short == (due if due is not None and due <= last + 30 * DAY else None)


def test_a_due_time_beyond_the_horizon_is_none() -> None:
    """Recall 0.2 of one Good review (stability w2 = 2.3 days) is about 220 years away."""
    fsrs = make_memory_model("fsrs")
    state = fsrs.update(fsrs.new_state(), 3, T0)
    assert fsrs.due(state, 0.2) is None and fsrs.due(state, 1e-300) is None
    days = math.ceil(W[2] / FACTOR * (0.2 ** (1 / DECAY) - 1))
    assert days == 80_250
    assert fsrs.due(state, 0.2, horizon=timedelta(days=100_000)) == T0 + days * DAY


def test_due_after_one_good_review_hand_computed() -> None:
    """FSRS's stability is the interval to 90% recall: w2 = 2.31 days -> due on day 3."""
    fsrs = make_memory_model("fsrs")
    state = fsrs.update(fsrs.new_state(), 3, T0)
    assert fsrs.due(state, 0.9) == T0 + 3 * DAY


def _log(rows: list[tuple[str, int, float]]) -> Reviews:
    """Reviews from (card, rating, days after T0)."""
    start = int(T0.timestamp()) * 10**9
    return Reviews.from_columns([c for c, _, _ in rows], [r for _, r, _ in rows],
                                [start + int(d * 86_400 * 10**9) for _, _, d in rows])


def test_predict_reviews_equals_the_online_api() -> None:
    rng = np.random.default_rng(0)
    rows = sorted(((f"c{rng.integers(6)}", int(rng.choice([1, 3, 3, 4])), float(d))
                   for d in np.cumsum(rng.exponential(0.8, 80))), key=lambda row: row[2])
    reviews = _log(rows)
    model = MemoryModel(calibration=Calibration(0.2, 1.3, (0.05, 0.4)))
    batch = model.predict_reviews(reviews)
    states: dict[str, CardMemory] = {}
    for k in range(len(reviews)):
        card, at = reviews.card[k], as_datetime(reviews.time_ns[k])
        state = states.get(card)
        if state is None:
            assert np.isnan(batch[k])
            state = model.new_state()
        else:
            assert batch[k] == pytest.approx(model.recall(state, at), rel=1e-12)
        states[card] = model.update(state, int(reviews.rating[k]), at)


def test_calibration_recovers_its_parameters_from_simulated_reviews() -> None:
    """Outcomes drawn from a known calibration over FSRS's recall: the fit finds it again."""
    rng = np.random.default_rng(7)
    truth = Calibration(intercept=0.6, slope=0.7, coefs=(0.25, 0.5))
    n = 20_000
    logit_r = rng.normal(1.5, 1.2, n)
    features = np.column_stack([np.log1p(rng.integers(0, 6, n)), np.log1p(rng.integers(0, 4, n))])
    y = (rng.random(n) < truth.apply(logit_r, features)).astype(float)
    fitted = fit_calibration(logit_r, features, y, half_life=None)
    assert fitted.intercept == pytest.approx(truth.intercept, abs=0.12)
    assert fitted.slope == pytest.approx(truth.slope, abs=0.05)
    assert fitted.coefs == pytest.approx(truth.coefs, abs=0.1)


def test_recency_weighting_follows_a_drifting_learner() -> None:
    """A learner whose recall rises over time: the recency-weighted fit's intercept is the
    recent one, the unweighted fit's the average."""
    rng = np.random.default_rng(3)
    n = 6000
    logit_r = rng.normal(1.0, 1.0, n)
    intercept = np.linspace(-1.0, 1.0, n)  # drifts from -1 to +1
    y = (rng.random(n) < 1 / (1 + np.exp(-(intercept + logit_r)))).astype(float)
    none = np.zeros((n, 0))
    recent = fit_calibration(logit_r, none, y, half_life=300)
    flat = fit_calibration(logit_r, none, y, half_life=None)
    assert recent.intercept == pytest.approx(0.85, abs=0.3)
    assert abs(flat.intercept) < 0.3


def test_fit_chooses_a_half_life_and_keeps_forgetting() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for card in range(60):
        day = float(rng.uniform(0, 5))
        for _ in range(6):
            rows.append((f"c{card}", int(rng.choice([1, 3, 3, 3])), day))
            day += float(rng.uniform(0.5, 6))
    reviews = _log(sorted(rows, key=lambda row: row[2]))
    model = make_memory_model("memory").fit(reviews)
    assert model.calibration is not None and model.calibration.slope > 0
    assert model.calibration.half_life in model.half_lives
    state = model.update(model.new_state(), 3, T0)
    assert model.recall(state, T0 + DAY) > model.recall(state, T0 + 10 * DAY)


def test_bad_input_is_refused() -> None:
    model = make_memory_model("fsrs")
    state = model.update(model.new_state(), 3, T0)
    with pytest.raises(ValueError, match="rating must be 1 to 4"):
        model.update(state, 5, T0 + DAY)
    with pytest.raises(ValueError, match="before the card's last review"):
        model.update(state, 3, T0 - DAY)
    with pytest.raises(ValueError, match="never reviewed"):
        model.due(model.new_state())
    with pytest.raises(ValueError, match="between 0 and 1"):
        model.due(state, 1.0)
    with pytest.raises(ValueError, match="unknown memory feature"):
        MemoryModel(features=("counts", "moon"))
    with pytest.raises(ValueError, match="unknown memory model"):
        make_memory_model("sm2")
    with pytest.raises(ValueError, match="slope must be positive"):
        Calibration(0.0, 0.0, ())
    with pytest.raises(ValueError, match="rating must be 1 to 4"):
        Reviews.from_columns(["a"], [0], [0])
    with pytest.raises(ValueError, match="differ in length"):
        Reviews.from_columns(["a", "b"], [3], [0, 1])
