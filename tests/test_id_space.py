"""A model refuses logs of another id space, also when every id of the log is one it knows.

Integer ids overlap between datasets: a model fitted on statics2011 (question ids 1..1223) knows
every skill id of assist2009 (1..124) and scored it at AUC 0.523 without a word. Two simulated
"datasets" with the same skill names and different parameters are that case with known truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.tracing import IdSpaceError, make_tracer
from engine.tracing.base import MIN_AGREEMENT, skill_agreement
from engine.tracing.simulate import random_params, simulate
from tutor.cli import app

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def datasets():  # type: ignore[no-untyped-def]
    """Dataset A (train and fresh learners) and dataset B: the same 30 skill names, other
    parameters."""
    a = random_params(30, seed=1)
    b = random_params(30, seed=2)
    return (simulate(a, 200, seed=3)[0], simulate(a, 100, seed=4)[0],
            simulate(b, 100, seed=5)[0])


def test_a_model_scores_its_own_kind_of_data(datasets) -> None:  # type: ignore[no-untyped-def]
    train, same, _ = datasets
    model = make_tracer("bkt", num_fits=2).fit(train)
    agreement = skill_agreement(model, same)
    assert agreement is not None and agreement[0] > 0.6 and agreement[1] == 30
    model.check_id_space(same)  # no error


def test_known_ids_that_mean_other_skills_are_refused(datasets) -> None:  # type: ignore[no-untyped-def]
    train, _, other = datasets
    model = make_tracer("bkt", num_fits=2).fit(train)
    assert model.unseen_skills(other) == 0  # every id is known: the old guard saw nothing
    agreement = skill_agreement(model, other)
    assert agreement is not None and agreement[0] < MIN_AGREEMENT
    with pytest.raises(IdSpaceError, match="do not mean the same skills"):
        model.check_id_space(other)


def test_too_little_evidence_is_not_judged(datasets) -> None:  # type: ignore[no-untyped-def]
    train, _, other = datasets
    model = make_tracer("bkt", num_fits=1).fit(train)
    one_learner = other.take(np.flatnonzero(other.learner == 0))
    assert skill_agreement(model, one_learner) is None  # under 20 answers per skill
    model.check_id_space(one_learner)


def test_replay_refuses_a_saved_model_on_another_id_space(datasets, tmp_path: Path,
                                                          ) -> None:  # type: ignore[no-untyped-def]
    from training.readers import write_csv

    train, same, other = datasets
    model = make_tracer("bkt", num_fits=1).fit(train)
    model.save(tmp_path / "m.json")
    write_csv(other, tmp_path / "other.csv")
    write_csv(same, tmp_path / "same.csv")
    run = CliRunner().invoke
    args = ["replay", "--checkpoint", str(tmp_path / "m.json"), "--format", "csv", "--test"]
    refused = run(app, [*args, str(tmp_path / "other.csv")])
    assert refused.exit_code == 2 and "different id spaces" in refused.output
    scored = run(app, [*args, str(tmp_path / "same.csv"), "--json"])
    assert scored.exit_code == 0, scored.output


@pytest.mark.shared_data
def test_statics_model_refuses_assist2009(tmp_path: Path) -> None:
    """The case found by hand: a statics2011 model scoring assist2009 (~20 s)."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared/data not found (looked for {SHARED})")
    run = CliRunner().invoke
    fitted = run(app, ["fit", "--format", "dkt3", "--num-fits", "1", "--out",
                       str(tmp_path / "statics.json"), "--train",
                       str(SHARED / "statics2011" / "STATICS_train.csv")])
    assert fitted.exit_code == 0, fitted.output
    refused = run(app, ["replay", "--checkpoint", str(tmp_path / "statics.json"), "--format",
                        "dkt3", "--test", str(SHARED / "assist2009-dkt" / "builder_test.csv")])
    assert refused.exit_code == 2 and "different id spaces" in refused.output
