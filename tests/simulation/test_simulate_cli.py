"""``tutor simulate``: the JSON interface users' scripts rely on, determinism for a seed, the
plot, and errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.selection.registry import DEFAULT_POLICY
from engine.simulation.base import FAMILIES
from engine.simulation.run import METRICS
from tutor.cli import app

runner = CliRunner()
ARGS = ["simulate", "--course", "generated:5", "--learners", "20", "--days", "2",
        "--per-session", "5", "--seed", "3", "--learner-model", "prereq-forget"]


def _json(*extra: str) -> dict:
    result = runner.invoke(app, [*ARGS, *extra, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_maps_learner_model_policy_metric_to_mean_and_interval() -> None:
    doc = _json()
    policies = doc["results"]["prereq-forget"]
    assert set(policies) == {"fixed-curriculum", "random", "lowest-mastery", "target-success",
                             "spaced", DEFAULT_POLICY, "oracle"}
    assert doc["default_policy"] == DEFAULT_POLICY
    for metrics in policies.values():
        for metric in METRICS:
            assert set(metrics[metric]) >= {"mean", "ci95"}
            assert len(metrics[metric]["ci95"]) == 2
    assert doc["baseline"] == "fixed-curriculum"
    assert len(doc["curves"]["prereq-forget"]["random"]["mastery_by_day"]) == 2


def test_the_same_seed_gives_the_same_numbers() -> None:
    one, two = _json(), _json()
    assert one["results"] == two["results"]


def test_policy_options_baseline_and_plot(tmp_path: Path) -> None:
    picture = tmp_path / "curves.png"
    result = runner.invoke(app, [*ARGS, "--policy", "random", "--policy",
                                 "target-success:target_success=0.6", "--baseline", "random",
                                 "--plot", str(picture)])
    assert result.exit_code == 0, result.output
    assert picture.stat().st_size > 1000
    assert "target-success:target_success=0.6" in result.output


def test_errors_say_what_to_fix() -> None:
    cases = [(["--course", "nope"], "unknown course 'nope'"),
             (["--course", "generated:x"], "generated:N"),
             (["--policy", "nope"], "unknown policy 'nope'"),
             (["--learner-model", "nope"], "unknown learner model 'nope'"),
             (["--baseline", "nope"], "--baseline 'nope' is not among the policies"),
             (["--known-share", "1.5"], "known share of the course must be in [0, 1]"),
             (["--policy", "oracle"], "unknown policy 'oracle'"),
             (["--server", "http://x", "--known-share", "0.5"], "--known-share go with")]
    for extra, message in cases:
        result = runner.invoke(app, [*ARGS, *extra])
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output, (extra, result.output)


def test_a_pack_course_stands_alone_with_outside_prerequisites_taken_as_known() -> None:
    from training.simulate_cli import load_course

    catalog, course = load_course("math.course.fractions")
    assert set(catalog.skills) == set(catalog.courses[course].skills)
    assert all(set(s.requires) <= set(catalog.skills) for s in catalog.skills.values())
    assert catalog.items and all(set(i.skills) <= set(catalog.skills)
                                 for i in catalog.items.values())


def test_json_has_the_oracle_row_its_gain_shares_and_the_new_measures() -> None:
    doc = _json()
    assert doc["oracle"] is True and doc["known_share"] == 0.0 and doc["course_skills"] == 5
    rows = doc["results"]["prereq-forget"]
    for name, metrics in rows.items():
        assert ("share_of_oracle_gain" in metrics) == (name not in ("fixed-curriculum",
                                                                    "oracle"))
        per_skill = metrics["exercises_to_complete_per_skill"]["mean"]
        assert per_skill == pytest.approx(metrics["exercises_to_complete"]["mean"] / 5)
        assert 0 <= metrics["exercises_on_known"]["mean"] <= \
            metrics["exercises_to_complete"]["mean"]
    share = rows["random"]["share_of_oracle_gain"]
    assert set(share) >= {"mean", "ci95", "n", "method"} and share["n"] == 20
    assert rows["oracle"]["diagnostic_auc"]["mean"] == 1.0  # its belief is the truth
    without = _json("--no-oracle")
    assert "oracle" not in without["results"]["prereq-forget"]
    assert all("share_of_oracle_gain" not in m
               for m in without["results"]["prereq-forget"].values())


def test_learners_who_know_the_course_are_mastered_at_once_and_counted_per_skill() -> None:
    doc = _json("--known-share", "1.0")
    assert doc["known_skills"] == doc["course_skills"] == 5
    for metrics in doc["results"]["prereq-forget"].values():
        assert metrics["exercises_to_mastery"]["mean"] == 0.0  # known from the start
    # the oracle knows it and releases them at once; every exercise of a policy is wasted
    oracle = doc["results"]["prereq-forget"]["oracle"]
    assert oracle["exercises_to_complete"]["mean"] == 0.0
    fixed = doc["results"]["prereq-forget"]["fixed-curriculum"]
    assert fixed["exercises_on_known"]["mean"] == fixed["exercises_to_complete"]["mean"] > 0


def test_known_share_leaves_out_the_learner_models_that_cannot_start_knowing() -> None:
    args = [a for a in ARGS if a not in ("--learner-model", "prereq-forget")]
    result = runner.invoke(app, [*args, "--known-share", "0.4", "--policy", "fixed-curriculum",
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert "fitted-bkt" in doc["skipped_learner_models"]
    assert "fitted-bkt" not in doc["results"] and doc["known_skills"] == 2
    named = runner.invoke(app, [*ARGS[:-1], "fitted-bkt", "--known-share", "0.4"])
    assert named.exit_code == 2 and "cannot be made to know" in named.output


@pytest.mark.parametrize("course", ["generated:60", "math.course.whole-numbers"])
def test_the_issue_21_courses_run(course: str) -> None:
    result = runner.invoke(app, ["simulate", "--course", course, "--learners", "3", "--days",
                                 "1", "--per-session", "3", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc["learner_models"]) == set(FAMILIES)
    assert all("oracle" in rows for rows in doc["results"].values())
