"""`tutor calibrate` and `tutor placement simulate`: the JSON contract, round trip, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from content.packs import bundled_packs, load_pack
from engine.events import AnswerLog
from engine.placement import ItemBank, probability, read_bank, write_bank
from training.readers import write_csv
from tutor.cli import app

runner = CliRunner()
KEYS = {"theta_rmse", "bias", "corr", "mean_length", "max_exposure", "unused_share",
        "step_ms_p99"}


@pytest.fixture(scope="module")
def bank_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    g = np.random.default_rng(0)
    bank = ItemBank.build(g.lognormal(0.3, 0.2, 120), g.normal(0, 1, 120),
                          groups=[("a", "b")[i % 2] for i in range(120)])
    path = tmp_path_factory.mktemp("banks") / "bank.tsv"
    write_bank(bank, path)
    return path


def simulate_json(*args: str) -> dict:
    result = runner.invoke(app, ["placement", "simulate", *args, "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout must be exactly one JSON object"
    return json.loads(lines[0])


def test_fixed_length_simulation(bank_file: Path) -> None:
    summary = simulate_json("--bank", str(bank_file), "--examinees", "200", "--seed", "3",
                            "--length", "8")
    assert set(summary) >= KEYS
    assert summary["mean_length"] == 8
    assert summary["corr"] > 0.85 and summary["theta_rmse"] < 0.5
    again = simulate_json("--bank", str(bank_file), "--examinees", "200", "--seed", "3",
                          "--length", "8")
    assert {k: again[k] for k in KEYS - {"step_ms_p99"}} == {
        k: summary[k] for k in KEYS - {"step_ms_p99"}}


def test_se_stop_with_exposure_control_and_balance(bank_file: Path) -> None:
    summary = simulate_json("--bank", str(bank_file), "--examinees", "150", "--seed", "1",
                            "--stop-se", "0.4", "--max-length", "30", "--exposure", "0.4",
                            "--balance", "--selection", "kl")
    assert summary["mean_length"] < 30
    assert summary["mean_se"] <= 0.41
    assert summary["max_exposure"] <= 0.4 + 4 * np.sqrt(0.4 * 0.6 / 150)


@pytest.mark.parametrize(("args", "message"), [
    (["--length", "5", "--stop-se", "0.3"], "either --length"),
    ([], "either --length"),
    (["--length", "5", "--exposure", "1.5"], "--exposure must be in"),
])
def test_simulate_refuses_bad_options(bank_file: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["placement", "simulate", "--bank", str(bank_file), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_simulate_names_the_bad_line_of_a_bank(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("a\tb\tc\td\tGroup\n1\t0\t0\t1\tA\n1\t0\t0.4\t0.3\tA\n")
    result = runner.invoke(app, ["placement", "simulate", "--bank", str(path), "--length", "2"])
    assert result.exit_code == 2
    assert f"{path}:3: field 'd'" in result.output.replace("\n", "")


def test_calibrate_writes_a_bank_that_placement_reads(tmp_path: Path) -> None:
    g = np.random.default_rng(5)
    true = ItemBank.build(g.lognormal(0, 0.25, 20), g.normal(0, 1, 20))
    correct = g.random((800, 20)) < probability(true, g.normal(size=800))
    learner, item = np.meshgrid(np.arange(800), np.arange(20), indexing="ij")
    items = [f"q{i}" for i in item.ravel()]
    log = AnswerLog.from_columns([f"u{i}" for i in learner.ravel()], items,
                                 [f"skill{int(i[1:]) % 4}" for i in items], correct.ravel())
    write_csv(log, tmp_path / "log.csv")
    out = tmp_path / "bank.tsv"
    result = runner.invoke(app, ["calibrate", "--format", "csv", "--train",
                                 str(tmp_path / "log.csv"), "--model", "2pl", "--out", str(out),
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["fitted"] == 20 and summary["converged"]
    assert summary["prior"] == "empirical"
    assert set(summary["hyperparameters"]) == {"mu_log_a", "sd_log_a", "mu_b", "sd_b"}
    bank = read_bank(out)
    order = [int(i[1:]) for i in bank.ids]
    assert np.sqrt(np.mean((bank.b - true.b[order]) ** 2)) < 0.15
    assert bank.groups[0] == f"skill{order[0] % 4}"
    header = out.read_text().splitlines()[0].split("\t")
    assert header == ["item", "a", "b", "c", "d", "Group", "se_a", "se_b", "answers", "source"]
    simulated = simulate_json("--bank", str(out), "--examinees", "50", "--length", "5")
    assert simulated["mean_length"] == 5


def test_calibrate_without_priors_is_maximum_likelihood(tmp_path: Path) -> None:
    g = np.random.default_rng(6)
    true = ItemBank.build(g.lognormal(0, 0.25, 8), g.normal(0, 1, 8))
    correct = g.random((300, 8)) < probability(true, g.normal(size=300))
    learner, item = np.meshgrid(np.arange(300), np.arange(8), indexing="ij")
    log = AnswerLog.from_columns([f"u{i}" for i in learner.ravel()],
                                 [f"q{i}" for i in item.ravel()], ["s"] * correct.size,
                                 correct.ravel())
    write_csv(log, tmp_path / "log.csv")
    result = runner.invoke(app, ["calibrate", "--format", "csv", "--train",
                                 str(tmp_path / "log.csv"), "--prior", "none", "--out",
                                 str(tmp_path / "bank.tsv"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["prior"] == "none" and summary["hyperparameters"] is None
    refused = runner.invoke(app, ["calibrate", "--format", "csv", "--train",
                                  str(tmp_path / "log.csv"), "--prior", "bilog", "--out",
                                  str(tmp_path / "bank.tsv")])
    assert refused.exit_code != 0 and "bilog" in refused.output


def test_calibrate_refuses_a_missing_log(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--format", "csv", "--train",
                                 str(tmp_path / "none.csv"), "--out", str(tmp_path / "b.tsv")])
    assert result.exit_code == 2
    assert "answer log not found" in result.output


def test_calibrate_keeps_a_packs_values_for_items_with_too_few_answers(tmp_path: Path) -> None:
    """Five math-pack items answered by 300 learners are fitted; one answered by 5 keeps the
    pack's values, as do the pack's items the log never saw."""
    pack_path = bundled_packs()["math-basics"]
    pack = load_pack(pack_path)
    used = pack.items[:6]
    g = np.random.default_rng(2)
    theta = g.normal(size=300)
    rows = [(f"u{n}", item, bool(g.random() < 1 / (1 + np.exp(-(theta[n] - item.difficulty)))))
            for n in range(300) for k, item in enumerate(used) if k < 5 or n < 5]
    log = AnswerLog.from_columns([r[0] for r in rows], [r[1].id for r in rows],
                                 [r[1].skills for r in rows], [r[2] for r in rows])
    write_csv(log, tmp_path / "log.csv")
    out = tmp_path / "bank.tsv"
    result = runner.invoke(app, ["calibrate", "--format", "csv", "--train",
                                 str(tmp_path / "log.csv"), "--pack", str(pack_path),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["fitted"], summary["kept"], summary["dropped"]) == (5, len(pack.items) - 5,
                                                                        [])
    bank = read_bank(out)
    sixth = bank.ids.index(used[5].id)
    assert (bank.b[sixth], bank.a[sixth]) == (used[5].difficulty, used[5].discrimination)


def test_course_mode_reports_per_skill_classification_accuracy() -> None:
    args = ("--course", "generated:16", "--examinees", "120", "--length", "8", "--seed", "2",
            "--learner-model", "prereq-forget")
    summary = simulate_json(*args)
    assert {k: summary[k] for k in ("course", "skills", "learners", "items", "known_share")} \
        == {"course": "generated:16", "skills": 16, "learners": 120, "items": 8,
            "known_share": 0.5}
    arms = summary["families"]["prereq-forget"]
    assert set(arms) == {"skills", "theta", "prior"}
    assert all(arm["n"] == 120 for arm in arms.values())
    # learners know half the course, or a little more (the family's own prior knowledge):
    # the prior (nothing known) is right about half the time at most
    assert 0.4 < arms["prior"]["mean"] <= 0.5
    assert arms["skills"]["mean"] > 0.8
    assert arms["skills"]["mean"] > arms["theta"]["mean"]
    assert simulate_json(*args) == summary


@pytest.mark.parametrize(("args", "message"), [
    ([], "give either --bank FILE"),
    (["--course", "generated:5", "--stop-se", "0.3"], "--course runs fixed-length tests"),
    (["--course", "generated:5", "--learner-model", "fitted-bkt"], "supports irt-memory"),
    (["--course", "generated:5", "--known-share", "2"], r"known share .* \[0, 1\]"),
    (["--course", "nowhere"], "unknown course 'nowhere'"),
])
def test_course_mode_errors(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["placement", "simulate", *args])
    assert result.exit_code != 0
    assert re.search(message, result.output), result.output
