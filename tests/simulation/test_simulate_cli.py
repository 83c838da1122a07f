"""``tutor simulate``: the JSON interface users' scripts rely on, determinism for a seed, the
plot, and errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from engine.selection.registry import DEFAULT_POLICY
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
             (["--baseline", "nope"], "--baseline 'nope' is not among the policies")]
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
