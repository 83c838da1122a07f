"""Any saved model serves a tenant, not only DKT checkpoints: a BKT parameter file written by
`tutor fit`, and pyBKT's ``coef_`` as JSON, registered with `tutor model register` and used by
answers and selection alike, on both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.models import register_model, unregister_model
from api.tenants import load_catalog
from engine.events import AnswerEvent
from engine.tracing import Tracer, load_tracer
from engine.tracing.registry import to_pybkt
from engine.tracing.simulate import simulate
from training.readers import write_csv
from tutor.cli import app as tutor_cli

from .conftest import TenantKey, assert_same_mastery, full_history, state_mastery, tracer_for
from .test_answers import answer

ANSWERS = [("mini.a.easy", True), ("mini.a.mid", False), ("mini.ac", True),
           ("mini.c.1", True), ("mini.a.hard", True), ("mini.b.1", False)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """BKT+forgetting fitted by `tutor fit` on learners simulated from the mini pack, saved as
    this engine's parameter file and as pyBKT's coef_ JSON."""
    params = tracer_for(["mini"]).params_
    assert params is not None
    log, _ = simulate(params, 150, answers_per_skill=(3, 8), seed=21)
    folder = tmp_path_factory.mktemp("fitted")
    write_csv(log, folder / "log.csv")
    files = {"tutor-bkt": folder / "bkt.json", "pybkt": folder / "coef.json"}
    base = ["fit", "--format", "csv", "--train", str(folder / "log.csv"), "--model",
            "bkt-forgets", "--num-fits", "2"]
    for flags, path in (([], files["tutor-bkt"]), (["--pybkt"], files["pybkt"])):
        done = CliRunner().invoke(tutor_cli, [*base, *flags, "--out", str(path)])
        assert done.exit_code == 0, done.output
    return files


def _served_equals_offline(client: TestClient, t: TenantKey, learner: str,
                           model: Tracer) -> None:  # type: ignore[type-arg]
    """The served state after the learner's answers is the model's own fold of them, and the
    recommendation's P(correct) is the model's prediction from that state."""
    history = full_history(client, learner, t.headers)
    state = model.fold(AnswerEvent(learner, e["item_id"], tuple(e["skills"]), e["correct"])
                       for e in history)
    served = state_mastery(client.get(f"/v1/learners/{learner}/state", headers=t.headers).json())
    assert_same_mastery(served, model.mastery(state))
    (choice,) = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()["next"]
    assert choice["p_correct"] == pytest.approx(
        model.predict_correct(state, choice["item"], choice["skills"]), abs=1e-6)


@pytest.mark.parametrize("kind", ["tutor-bkt", "pybkt"])
def test_a_fitted_bkt_file_serves_answers_and_selection(kind: str, backend, make_tenant,
                                                        make_client,
                                                        fitted: dict[str, Path]) -> None:
    t = make_tenant(["mini"])
    register_model(backend.engine, t.tenant.id, fitted[kind],
                   load_catalog(backend.engine, t.tenant.id))
    client = make_client()
    for item, correct in ANSWERS:
        body = answer(client, t, "fay", item, correct)
    model = load_tracer(fitted[kind])
    assert model.name == "bkt-forgets"
    _served_equals_offline(client, t, "fay", model)
    # and not the content's own parameters
    content = tracer_for(["mini"])
    state = content.fold(AnswerEvent("fay", i, ("mini.a",), c) for i, c in ANSWERS[:1])
    assert body["mastery"] != pytest.approx(content.mastery(state, list(body["mastery"])))


def test_the_pybkt_export_and_the_parameter_file_are_the_same_model(
        fitted: dict[str, Path]) -> None:
    ours, theirs = load_tracer(fitted["tutor-bkt"]), load_tracer(fitted["pybkt"])
    assert json.loads(json.dumps(to_pybkt(ours))) == json.loads(fitted["pybkt"].read_text())
    assert to_pybkt(theirs) == to_pybkt(ours)


def test_cli_registers_a_bkt_file_and_unregisters_it(backend, make_tenant, make_client,
                                                     fitted: dict[str, Path],
                                                     monkeypatch) -> None:
    for name, value in backend.env().items():
        if name.startswith("TUTOR_"):
            monkeypatch.setenv(name, value)
    t = make_tenant(["mini"])
    run = CliRunner().invoke
    done = run(tutor_cli, ["model", "register", str(fitted["pybkt"]), "--tenant",
                           t.tenant.name])
    assert done.exit_code == 0, done.output
    assert "served by bkt-forgets (3 skills)" in done.stdout
    client = make_client()
    for item, correct in ANSWERS:
        answer(client, t, "gil", item, correct)
    _served_equals_offline(client, t, "gil", load_tracer(fitted["pybkt"]))
    assert unregister_model(backend.engine, t.tenant.id)
    bad = run(tutor_cli, ["model", "register", str(fitted["pybkt"].parent / "log.csv"),
                          "--tenant", t.tenant.name])
    assert bad.exit_code == 2 and "not a model file" in bad.output
