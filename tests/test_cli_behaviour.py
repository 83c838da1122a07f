"""The research command line as a new user meets it: threads, progress in logs, bad validation
sets, unwritable outputs found before the work, documented and renamable CSV columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from engine.events import AnswerLog
from engine.tracing.simulate import random_params, simulate
from training.readers import write_csv
from tutor.cli import app
from tutor.console import default_threads

runner = CliRunner()
SMALL_DKT = ["--model", "dkt", "--hidden", "8", "--embed", "4", "--members", "1",
             "--window", "20", "--batch-size", "8"]


@pytest.fixture(scope="module")
def log() -> AnswerLog:
    return simulate(random_params(3, seed=1), 60, answers_per_skill=(3, 8), seed=2)[0]


@pytest.fixture(scope="module")
def csv(log: AnswerLog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "log.csv"
    write_csv(log, path)
    return path


def test_threads_default_to_half_the_cores_and_follow_the_option(csv: Path,
                                                                  tmp_path: Path) -> None:
    torch.set_num_threads(max(2, 2 * default_threads()))  # what PyTorch would pick
    done = runner.invoke(app, ["fit", "--format", "csv", "--train", str(csv), "--out",
                               str(tmp_path / "a"), "--epochs", "1", *SMALL_DKT])
    assert done.exit_code == 0, done.output
    assert torch.get_num_threads() == default_threads()
    done = runner.invoke(app, ["fit", "--format", "csv", "--train", str(csv), "--out",
                               str(tmp_path / "b"), "--epochs", "1", "--threads", "1",
                               *SMALL_DKT])
    assert done.exit_code == 0, done.output
    assert torch.get_num_threads() == 1
    bad = runner.invoke(app, ["replay", "--train", str(csv), "--folds", "2", "--threads", "0"])
    assert bad.exit_code == 2 and "--threads must be at least 1" in bad.output


def test_training_prints_a_line_per_epoch_when_stderr_is_not_a_terminal(
        csv: Path, tmp_path: Path) -> None:
    done = runner.invoke(app, ["fit", "--format", "csv", "--train", str(csv), "--out",
                               str(tmp_path / "m"), "--epochs", "3", "--patience", "5",
                               *SMALL_DKT])
    assert done.exit_code == 0, done.output
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in done.stderr
    assert "valid auc" in done.stderr  # the history stays readable in the log
    assert "best validation AUC" in done.stdout


def test_a_validation_set_with_one_class_is_an_error(log: AnswerLog, csv: Path,
                                                     tmp_path: Path) -> None:
    right = log.take(np.flatnonzero(log.correct))
    write_csv(right, tmp_path / "right.csv")
    done = runner.invoke(app, ["fit", "--format", "csv", "--train", str(csv), "--valid",
                               str(tmp_path / "right.csv"), "--out", str(tmp_path / "m"),
                               "--epochs", "1", *SMALL_DKT])
    assert done.exit_code == 2
    assert "validation answers are all correct" in done.output
    assert "0.0000" not in done.output


@pytest.mark.parametrize("command", ["replay-plot", "fit-out", "dkt-out"])
def test_unwritable_output_fails_before_the_work(command: str, csv: Path,
                                                 tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = str(blocker / "inside" / "x.png")
    args = {
        "replay-plot": ["replay", "--format", "csv", "--train", str(csv), "--folds", "2",
                        "--plot", target],
        "fit-out": ["fit", "--format", "csv", "--train", str(csv), "--out", target],
        "dkt-out": ["fit", "--format", "csv", "--train", str(csv), "--out", target,
                    *SMALL_DKT],
    }[command]
    done = runner.invoke(app, args)
    assert done.exit_code == 2, done.output
    assert "cannot create the folder" in done.output
    assert "fitting" not in done.output and "reading" not in done.output  # nothing ran
    assert len(done.output.strip().splitlines()) == 1


def test_csv_columns_are_documented_and_can_be_renamed(log: AnswerLog, tmp_path: Path) -> None:
    shown = runner.invoke(app, ["replay", "--help"], terminal_width=200)
    for column in ("learner", "item", "skills", "correct", "timestamp"):
        assert column in shown.output
    assert "--column" in shown.output
    write_csv(log, tmp_path / "log.csv")
    frame = pd.read_csv(tmp_path / "log.csv").rename(
        columns={"learner": "user_id", "skills": "skill_name"})
    frame.to_csv(tmp_path / "renamed.csv", index=False)
    base = ["replay", "--format", "csv", "--folds", "2", "--num-fits", "1", "--json"]
    plain = runner.invoke(app, [*base, "--train", str(tmp_path / "log.csv")])
    renamed = runner.invoke(app, [*base, "--train", str(tmp_path / "renamed.csv"),
                                  "--column", "learner=user_id", "--column",
                                  "skills=skill_name"])
    assert renamed.exit_code == 0, renamed.output
    got, want = json.loads(renamed.stdout), json.loads(plain.stdout)
    for key in ("auc", "rmse", "n_test", "n_test_learners"):
        assert got[key] == want[key], key
    bad = runner.invoke(app, [*base, "--train", str(tmp_path / "renamed.csv"), "--column",
                              "learner"])
    assert bad.exit_code == 2 and "FIELD=NAME" in bad.output
