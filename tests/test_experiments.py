"""engine.experiments: hash assignment (uniform, sticky), always-valid intervals (hand-computed
cases, coverage under daily looks), the sample-ratio-mismatch check, and the A/A simulation."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy import stats

from engine.experiments import (
    Arm,
    Sample,
    assign,
    assign_all,
    bucket,
    check_arms,
    difference_interval,
    mean_interval,
    mixture_radius,
    mixture_variance,
    shares,
    srm_check,
)
from engine.experiments.aa import simulate_aa

LEARNERS = [f"learner-{i}" for i in range(20_000)]


def test_assignment_follows_the_weights() -> None:
    arms = [Arm("control", 1), Arm("low", 1), Arm("high", 2)]
    counts = Counter(assign_all("exp-1", LEARNERS, arms))
    observed = [counts[a.name] for a in arms]
    expected = [5_000, 5_000, 10_000]
    _, p = stats.chisquare(observed, expected)
    assert p > 0.01, (observed, p)


def test_buckets_are_uniform_and_independent_between_experiments() -> None:
    first = np.array([bucket("exp-a", x) for x in LEARNERS])
    second = np.array([bucket("exp-b", x) for x in LEARNERS])
    assert stats.kstest(first, "uniform").pvalue > 0.01
    # the halves of one experiment split the other's halves evenly (chi-square of the 2x2)
    table = np.histogram2d(first < 0.5, second < 0.5, bins=2)[0]
    assert stats.chi2_contingency(table).pvalue > 0.01, table


def test_assignment_is_sticky() -> None:
    arms = [Arm("a", 3), Arm("b", 1)]
    once = assign_all("sticky", LEARNERS[:2000], arms)
    assert once == [assign("sticky", x, arms) for x in LEARNERS[:2000]]
    assert once == assign_all("sticky", LEARNERS[:2000], list(arms))


def test_bad_arms_are_refused() -> None:
    for arms, message in (([Arm("a")], "at least two arms"),
                          ([Arm("a"), Arm("a")], "named twice"),
                          ([Arm("a"), Arm("b", 0)], "weight"),
                          ([Arm("a"), Arm("b", math.nan)], "weight"),
                          ([Arm("a"), Arm("b/c")], "'/'")):
        with pytest.raises(ValueError, match=message):
            assign("e", "x", arms)



def test_extreme_weights_split_without_overflow() -> None:
    """Issue 20: two arms of 1e308 made the weights' sum overflow (OverflowError on every
    assignment); any finite positive weights now give their shares, computed on weights scaled
    by a power of two."""
    learners = LEARNERS[:4000]
    for weights in ((1e308, 1e308), (5e-324, 5e-324), (1e300, 3e300), (1.7e308, 1.7e308,
                                                                         1.7e308)):
        arms = [Arm(f"arm-{k}", w) for k, w in enumerate(weights)]
        want = shares(weights)
        assert math.fsum(want) == pytest.approx(1.0) and all(s > 0 for s in want)
        counts = Counter(assign_all("extreme", learners, arms))
        observed = [counts[a.name] for a in arms]
        assert stats.chisquare(observed, [s * len(learners) for s in want]).pvalue > 0.001
        check = srm_check(observed, weights)
        assert check.expected == pytest.approx([s * len(learners) for s in want])
        assert not check.mismatch
    assert shares([1e308, 1e308]) == [0.5, 0.5]
    assert shares([1, 3]) == [0.25, 0.75]


def test_weights_too_far_apart_for_a_share_are_refused() -> None:
    """An arm whose share of the sum underflows to 0 could never get a learner (and has no
    expected count in the sample-ratio-mismatch check)."""
    for weights in ((1e308, 5e-324), (1e300, 1e-300)):
        arms = [Arm("a", weights[0]), Arm("b", weights[1])]
        with pytest.raises(ValueError, match="too small"):
            check_arms(arms)
        with pytest.raises(ValueError, match="share"):
            srm_check([1, 1], weights)
    check_arms([Arm("a", 1e308), Arm("b", 1e-3)])  # far apart, yet a share > 0


def test_scaling_leaves_ordinary_assignments_as_they_were() -> None:
    """The weights are scaled by a power of two (exact): a learner's arm is the one the raw
    weights' sum gave before, for weights whose sum is finite."""
    def unscaled(experiment: str, learner: str, arms: list[Arm]) -> str:
        point = bucket(experiment, learner) * math.fsum(a.weight for a in arms)
        edge = 0.0
        for arm in arms[:-1]:
            edge += arm.weight
            if point < edge:
                return arm.name
        return arms[-1].name

    for weights in ((1, 1, 1), (0.3, 0.7, 2.5), (1e-3, 1e3), (7, 0.1, 0.1, 3)):
        arms = [Arm(f"arm-{k}", w) for k, w in enumerate(weights)]
        got = assign_all("same", LEARNERS[:3000], arms)
        assert got == [unscaled("same", x, arms) for x in LEARNERS[:3000]]

def test_srm_check_hand_computed_and_skewed() -> None:
    check = srm_check([60, 40], [1, 1])  # expected 50/50: chi2 = (10^2 + 10^2) / 50 = 4
    assert check.chi2 == pytest.approx(4.0)
    assert check.p_value == pytest.approx(stats.chi2.sf(4.0, 1))
    assert not check.mismatch  # p = 0.046: not below 0.001
    skewed = srm_check([5_500, 4_500], [1, 1])
    assert skewed.mismatch and skewed.p_value < 1e-20
    weighted = srm_check([2_510, 7_490], [1, 3])  # right for 1:3, badly wrong for 1:1
    assert not weighted.mismatch
    assert srm_check([2_510, 7_490], [1, 1]).mismatch
    assert not srm_check([0, 0], [1, 1]).mismatch
    with pytest.raises(ValueError, match="one count per arm"):
        srm_check([1, 2, 3], [1, 1])


def test_mixture_boundary_hand_computed() -> None:
    # v = 1, tau^2 = 1, alpha = 0.05: sqrt(1 * 2 / 1 * (2 ln 20 + ln 2))
    assert float(mixture_radius(1.0, 1.0, 0.05)) == pytest.approx(3.6563948713638483)
    # r solves r = 2 ln(1/alpha) + ln(1 + r)
    r = float(mixture_variance(1.0, 0.05))
    assert r == pytest.approx(2 * math.log(20) + math.log1p(r))
    assert math.isinf(float(mixture_radius(0.0, 1.0, 0.05)))
    with pytest.raises(ValueError, match="alpha"):
        mixture_radius(1.0, 1.0, 1.5)


def test_mean_interval_hand_computed() -> None:
    sample = Sample.of([1.0, 2.0, 3.0, 4.0])  # mean 2.5, sample variance 5/3
    got = mean_interval(sample, alpha=0.05, planned_n=4)
    v = (5 / 3) / 4
    tau2 = float(mixture_variance(v, 0.05))  # planned at n = 4: tau^2 = r v
    radius = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(20) + math.log((v + tau2) / v)))
    assert got.estimate == 2.5
    assert (got.low, got.high) == pytest.approx((2.5 - radius, 2.5 + radius))
    # fewer than two values: no interval
    one = mean_interval(Sample.of([1.0]))
    assert math.isinf(one.low) and math.isinf(one.high) and one.p_value == 1.0


def test_binary_values_never_get_a_zero_width_interval() -> None:
    got = mean_interval(Sample.of([1.0] * 5), binary=True)
    assert got.low < 1.0 < got.high


def test_difference_interval_finds_a_real_effect_and_covers_it() -> None:
    rng = np.random.default_rng(3)
    control, treatment = Sample.of(rng.normal(0, 1, 800)), Sample.of(rng.normal(0.4, 1, 800))
    got = difference_interval(control, treatment)
    assert got.excludes_zero and got.low < 0.4 < got.high
    assert got.p_value < 0.05


def test_confidence_sequence_covers_the_truth_at_every_look() -> None:
    """Over 300 streams looked at after every 20 values up to 1,000, the interval misses the
    true mean at some look in at most 5% of streams; a fixed-sample interval misses far more
    often."""
    rng = np.random.default_rng(11)
    missed_cs = missed_fixed = 0
    looks = np.arange(20, 1001, 20)
    for _ in range(300):
        x = rng.exponential(1.0, 1000)  # skewed, true mean 1
        n = looks.astype(float)
        total, total_sq = np.cumsum(x)[looks - 1], np.cumsum(x**2)[looks - 1]
        mean = total / n
        var = (total_sq - total**2 / n) / (n - 1)
        radius = mixture_radius(var / n, mixture_variance(var / 500, 0.05), 0.05)
        missed_cs += bool((np.abs(mean - 1.0) > radius).any())
        missed_fixed += bool((np.abs(mean - 1.0) > 1.96 * np.sqrt(var / n)).any())
    assert missed_cs / 300 <= 0.05
    assert missed_fixed / 300 > 0.15


def test_aa_simulation_sequential_valid_naive_not() -> None:
    result = simulate_aa(runs=200, days=30, seed=5)
    assert result.sequential.value <= 0.05
    assert result.naive_daily.value > 0.15  # peeking at a fixed-sample test
    assert result.naive_final.value < 0.1  # one look: about alpha
    again = simulate_aa(runs=200, days=30, seed=5)
    assert again == result
    other = simulate_aa(runs=200, days=30, seed=6)
    assert other.mean_learners != result.mean_learners


def test_aa_simulation_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="runs"):
        simulate_aa(runs=0, days=3, seed=1)
    with pytest.raises(ValueError, match="days"):
        simulate_aa(runs=3, days=0, seed=1)
