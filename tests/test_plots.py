"""``tutor plot``: the prerequisite graph and one simulated learner's mastery, their pictures,
their errors, and the simulation's determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from content.packs import bundled_packs, catalog_from_packs, load_pack
from engine.events import AnswerEvent
from engine.tracing import make_tracer
from engine.tracing.simulate import random_params, simulate
from training.plots import find_pack, graph_layout, simulate_learner
from tutor.cli import app

runner = CliRunner()
PNG = b"\x89PNG\r\n\x1a\n"


def math_catalog():
    return catalog_from_packs([load_pack(find_pack("math"))])


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 1000


@pytest.mark.parametrize("pack", ["math", "vocab", "math-basics"])
def test_graph_writes_a_png(tmp_path: Path, pack: str) -> None:
    out = tmp_path / "pictures" / "graph.png"  # a folder that does not exist yet
    result = runner.invoke(app, ["plot", "graph", pack, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_png(out)


def test_graph_of_a_pack_file(tmp_path: Path) -> None:
    out = tmp_path / "graph.png"
    result = runner.invoke(app, ["plot", "graph", str(bundled_packs()["spanish-vocab-a1"]),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_png(out)


def test_layout_puts_prerequisites_in_rows_above() -> None:
    catalog = math_catalog()
    layout = graph_layout(catalog)
    assert set(layout) == set(catalog.skills)
    for skill in catalog.skills.values():
        if not skill.requires:
            assert layout[skill.id][1] == 0
        else:  # one row below its deepest prerequisite
            assert layout[skill.id][1] == 1 + max(layout[r][1] for r in skill.requires)
    places = [(x, y) for x, y in layout.values()]
    assert len(set(places)) == len(places)


def test_mastery_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "mastery.png"
    result = runner.invoke(app, ["plot", "mastery", "--out", str(out), "--answers", "15",
                                 "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "15 answers" in result.stdout
    assert_png(out)


def test_mastery_with_a_saved_model(tmp_path: Path) -> None:
    model = tmp_path / "model.json"
    math_catalog().tracer().save(model)
    out = tmp_path / "mastery.png"
    result = runner.invoke(app, ["plot", "mastery", "--pack", "math", "--model-file", str(model),
                                 "--answers", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert_png(out)


def test_mastery_refuses_a_model_of_other_skills(tmp_path: Path) -> None:
    log, _ = simulate(random_params(2, seed=1), 30, seed=2)
    model = tmp_path / "other.json"
    make_tracer("bkt", num_fits=1).fit(log).save(model)
    out = tmp_path / "mastery.png"
    result = runner.invoke(app, ["plot", "mastery", "--model-file", str(model), "--out",
                                 str(out)])
    assert result.exit_code == 2
    assert "does not know" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("args", [["graph", "algebra"], ["mastery", "--pack", "algebra"]])
def test_unknown_pack(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["plot", *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "no pack 'algebra'" in result.stderr and "math" in result.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [["graph", "math"], ["mastery"]])
def test_unwritable_out(tmp_path: Path, command: list[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = tmp_path / "pictures.png"
    folder.mkdir()
    cases = {blocker / "x.png": "a-file", folder: "is a directory",  # a file in the way
             tmp_path / "x.txt": "must end in"}
    for out, message in cases.items():
        result = runner.invoke(app, ["plot", *command, "--out", str(out)])
        assert result.exit_code == 2, (out, result.output)
        assert "--out" in result.stderr and message in result.stderr


def test_bad_answers_count(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plot", "mastery", "--answers", "0", "--out",
                                 str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "--answers" in result.stderr


def test_simulation_is_deterministic_for_a_seed() -> None:
    catalog = math_catalog()
    tracer = catalog.tracer()
    first = simulate_learner(tracer, catalog, 40, seed=11)
    again = simulate_learner(tracer, catalog, 40, seed=11)
    other = simulate_learner(tracer, catalog, 40, seed=12)
    assert len(first) == 40 and not first.stopped
    assert first.items == again.items and first.skills == again.skills
    np.testing.assert_array_equal(first.correct, again.correct)
    np.testing.assert_array_equal(first.mastery, again.mastery)
    assert (first.items, first.correct.tolist()) != (other.items, other.correct.tolist())


def test_simulation_follows_the_tracer() -> None:
    catalog = math_catalog()
    tracer = catalog.tracer()
    run = simulate_learner(tracer, catalog, 25, seed=5)
    assert run.mastery.shape == (26, len(run.skills))
    # row 0 is the prior; each row is the tracer's mastery after folding the answers so far
    state = tracer.new_state()
    for n, (item, skills, right) in enumerate(zip(run.items, run.answer_skills, run.correct,
                                                  strict=True)):
        assert run.p_correct[n] == pytest.approx(tracer.predict_correct(state, item, skills))
        np.testing.assert_allclose(
            run.mastery[n], [tracer.mastery(state, run.skills)[s] for s in run.skills])
        state = tracer.update(state, AnswerEvent("x", item, skills, bool(right)))
    # the first skill practised has no prerequisites; every item's skills are in the pack
    assert not catalog.skills[run.skills[0]].requires
    assert all(i in catalog.items for i in run.items)
