"""The runner: the batched (lockstep) path equals the one-learner path, runs are deterministic
for a seed and paired across policies, and the metrics agree with hand computations."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from scipy import stats

import engine.simulation  # noqa: F401  (registers the families)
from engine.selection import make_policy
from engine.selection.registry import POLICIES
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.metrics import learner_auc, mean_ci, paired_ci, share_ci
from engine.simulation.run import METRICS, Schedule, compare, run_policy

CATALOG = generated_catalog(6, seed=2, items_per_skill=3)
SHORT = Schedule(days=4, per_session=6)


@pytest.mark.parametrize(("family", "model"), [("prereq-forget", "bkt"),
                                               ("irt-memory", "bkt-memory")])
@pytest.mark.parametrize("name", sorted(POLICIES))
def test_lockstep_run_equals_the_one_learner_run(name: str, family: str, model: str) -> None:
    """The batched path (choose_many, complete_many) and journey.choose learner by learner,
    on a tracer without memory and one whose reviews fall due again after a course is
    complete."""
    runs = [run_policy(family, CATALOG, GENERATED_COURSE, make_policy(name), n=25, seed=3,
                       schedule=SHORT, tracer=CATALOG.tracer(model), lockstep=lockstep)
            for lockstep in (True, False)]
    for metric in METRICS:
        np.testing.assert_array_equal(runs[0].outcomes[metric], runs[1].outcomes[metric])
    np.testing.assert_array_equal(runs[0].mastery_curve, runs[1].mastery_curve)


def _summary(seed: int) -> Mapping[str, object]:
    policies = {"fixed-curriculum": make_policy("fixed-curriculum"),
                "target-success": make_policy("target-success")}
    return compare(["prereq-forget"], CATALOG, GENERATED_COURSE, policies, n=40, seed=seed,
                   schedule=SHORT, tracer=CATALOG.tracer).summary()


def test_runs_are_deterministic_for_a_seed_and_differ_between_seeds() -> None:
    assert _summary(1) == _summary(1)
    assert _summary(1) != _summary(2)


def test_every_policy_meets_the_same_learners() -> None:
    """Paired: with no practice at all the outcomes of two policies would be identical; with
    practice, the learners' starting knowledge (drawn from the seed) is the same."""
    runs = compare(["prereq-forget"], CATALOG, GENERATED_COURSE,
                   {"a": make_policy("random"), "b": make_policy("lowest-mastery")}, n=30,
                   seed=4, schedule=Schedule(days=1, per_session=1), tracer=CATALOG.tracer)
    before = [run.outcomes["retention_30d"] for run in runs.runs["prereq-forget"].values()]
    assert np.corrcoef(before[0], before[1])[0, 1] > 0.8


def test_summary_reports_every_metric_with_an_interval_and_paired_differences() -> None:
    summary = _summary(1)["prereq-forget"]
    assert isinstance(summary, dict)
    for policy, metrics in summary.items():
        for metric in METRICS:
            low, high = metrics[metric]["ci95"]
            assert low <= metrics[metric]["mean"] <= high
            assert ("vs_baseline" in metrics[metric]) == (policy != "fixed-curriculum")


def test_mean_ci_and_paired_ci_match_scipy_by_hand() -> None:
    x = np.array([1.0, 2.0, 4.0, np.nan, 7.0])
    summary = mean_ci(x)
    half = stats.t.ppf(0.975, 3) * np.std([1, 2, 4, 7], ddof=1) / 2.0
    assert summary["mean"] == 3.5 and summary["n"] == 4
    assert summary["ci95"] == pytest.approx([3.5 - half, 3.5 + half])
    paired = paired_ci(np.array([2.0, 3.0, 5.0]), np.array([1.0, 1.0, 2.0]))
    assert paired["mean"] == pytest.approx(2.0)
    assert paired["p_value"] == pytest.approx(stats.ttest_1samp([1.0, 2.0, 3.0], 0).pvalue)


def test_share_ci_is_wilsons_interval() -> None:
    summary = share_ci(np.array([True] * 3 + [False] * 7))
    assert summary["mean"] == pytest.approx(0.3)
    # Wilson: (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964
    z, n, p = 1.959964, 10, 0.3
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert summary["ci95"] == pytest.approx([(centre - half) / (1 + z * z / n),
                                             (centre + half) / (1 + z * z / n)], abs=1e-6)


def test_learner_auc_by_hand() -> None:
    scores = np.array([[0.1, 0.4, 0.35, 0.8], [0.5, 0.5, 0.5, 0.5], [0.2, 0.3, 0.4, 0.5]])
    truth = np.array([[False, True, False, True], [True, False, True, False],
                      [True, True, True, True]])
    auc = learner_auc(scores, truth)
    assert auc[0] == pytest.approx(1.0)  # positives 0.4, 0.8 above negatives 0.1, 0.35
    assert auc[1] == pytest.approx(0.5)  # all tied
    assert np.isnan(auc[2])  # one class only


def test_bad_arguments_say_what_to_fix() -> None:
    with pytest.raises(ValueError, match="days must be an integer >= 1"):
        Schedule(days=0)
    with pytest.raises(ValueError, match="unknown course 'nope'"):
        run_policy("prereq-forget", CATALOG, "nope", make_policy("random"), n=2, seed=0,
                   schedule=SHORT, tracer=CATALOG.tracer())
    with pytest.raises(ValueError, match="unknown learner model 'nope'"):
        run_policy("nope", CATALOG, None, make_policy("random"), n=2, seed=0, schedule=SHORT,
                   tracer=CATALOG.tracer())
    with pytest.raises(ValueError, match="baseline 'x' is not among the policies"):
        compare(["prereq-forget"], CATALOG, None, {"r": make_policy("random")}, n=2, seed=0,
                schedule=SHORT, tracer=CATALOG.tracer, baseline="x")
