"""A trained DKT checkpoint serving a tenant, on both backends: registration and its checks,
one recurrent step per answer, served predictions equal to batch evaluation, rebuilds, and
going back to BKT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.models import register_model, unregister_model
from api.tenants import import_pack, load_catalog
from engine.catalog import ContentError
from engine.events import AnswerEvent, AnswerLog
from engine.tracing.dkt import DKT
from engine.tracing.simulate import simulate

from .conftest import (
    MINI_PACK,
    TenantKey,
    assert_same_mastery,
    full_history,
    pack_document,
    replay,
    state_mastery,
    tracer_for,
)
from .test_answers import answer

ANSWERS = [("mini.a.easy", True), ("mini.a.mid", False), ("mini.ac", True),
           ("mini.c.1", True), ("mini.a.hard", True), ("mini.b.1", False)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DKT trained on learners simulated from the mini pack's BKT parameters."""
    params = tracer_for(["mini"]).params_
    assert params is not None
    log, _ = simulate(params, 120, answers_per_skill=(3, 8), seed=11)
    folder = tmp_path_factory.mktemp("dkt") / "ckpt"
    DKT(hidden=16, embed=8, epochs=3, window=20, seed=3, checkpoint=folder).fit(log)
    return folder


def _register(backend, t: TenantKey, checkpoint: Path) -> DKT:
    register_model(backend.engine, t.tenant.id, checkpoint,
                   load_catalog(backend.engine, t.tenant.id))
    return DKT.load(checkpoint)


def _offline(model: DKT, history: list[dict]) -> tuple[AnswerLog, object]:
    events = [AnswerEvent("x", e["item_id"], tuple(e["skills"]), bool(e["correct"]))
              for e in history]
    state = model.new_state()
    for event in events:
        state = model.update(state, event)
    return AnswerLog.from_events(events), state


def test_dkt_serves_answers_with_one_step_each(backend, make_tenant, client: TestClient,
                                              checkpoint: Path) -> None:
    t = make_tenant(["mini"])
    model = _register(backend, t, checkpoint)
    for item, correct in ANSWERS:
        body = answer(client, t, "dee", item, correct)
    history = full_history(client, "dee", t.headers)
    log, state = _offline(model, history)
    # the answer's response and /state report DKT's knowledge state after the same answers
    want = model.mastery(state)
    assert body["mastery"] == pytest.approx({s: want[s] for s in body["mastery"]}, abs=1e-6)
    served = state_mastery(client.get("/v1/learners/dee/state", headers=t.headers).json())
    assert_same_mastery(served, want)
    assert served != pytest.approx(replay(t.packs, history, "dee"), abs=1e-3)  # not BKT's

    # P(correct) of every recommended item equals batch evaluation of that next answer
    recommended = client.get("/v1/learners/dee/next?n=5", headers=t.headers).json()["next"]
    assert recommended
    for choice in recommended:
        extended = AnswerLog.from_events([*log.events(), AnswerEvent(
            "x", choice["item"], tuple(choice["skills"]), True)])
        batch = model.predict_log(extended)[-1]
        assert choice["p_correct"] == pytest.approx(batch, abs=2e-6)


def test_states_rebuild_from_the_log_with_the_registered_model(
        backend, make_tenant, make_client, checkpoint: Path) -> None:
    t = make_tenant(["mini"])
    bkt_client = make_client()
    for item, correct in ANSWERS[:3]:
        answer(bkt_client, t, "eve", item, correct)  # cached as BKT states
    model = _register(backend, t, checkpoint)
    client = make_client()  # another worker: sees the new content version
    for item, correct in ANSWERS[3:]:
        answer(client, t, "eve", item, correct)
    history = full_history(client, "eve", t.headers)
    _, state = _offline(model, history)  # all six answers through DKT
    served = state_mastery(client.get("/v1/learners/eve/state", headers=t.headers).json())
    assert_same_mastery(served, model.mastery(state))

    assert unregister_model(backend.engine, t.tenant.id)
    back = state_mastery(make_client().get("/v1/learners/eve/state", headers=t.headers).json())
    assert_same_mastery(back, replay(t.packs, history, "eve"))


def test_a_model_must_know_every_skill_of_the_content(backend, make_tenant,
                                                      checkpoint: Path) -> None:
    bigger = make_tenant(["mini", "math"])
    with pytest.raises(ContentError, match="not fitted on"):
        _register(backend, bigger, checkpoint)

    t = make_tenant(["mini"])
    _register(backend, t, checkpoint)
    extra = pack_document(MINI_PACK)
    extra["name"] = "mini-extra"
    extra["skills"] = [{"id": "extra.s", "name": "New skill"}]
    extra["items"] = [{"id": "extra.i", "skill": "extra.s"}]
    extra["courses"] = []
    with pytest.raises(ContentError, match="not fitted on 1 skill"):
        import_pack(backend.engine, t.tenant.id, extra, "extra pack")
    assert "extra.s" not in load_catalog(backend.engine, t.tenant.id).skills


def test_register_refuses_what_is_not_a_checkpoint(backend, make_tenant,
                                                   tmp_path: Path, checkpoint: Path) -> None:
    t = make_tenant(["mini"])
    catalog = load_catalog(backend.engine, t.tenant.id)
    with pytest.raises(FileNotFoundError, match="not found"):
        register_model(backend.engine, t.tenant.id, tmp_path / "nothing", catalog)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text((checkpoint / "model.json").read_text())
    (broken / "weights.pt").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="not a readable state dict"):
        register_model(backend.engine, t.tenant.id, broken, catalog)
    assert not unregister_model(backend.engine, t.tenant.id)  # nothing was registered


def test_served_dkt_state_bytes_round_trip(checkpoint: Path) -> None:
    model = DKT.load(checkpoint)
    state = model.update(model.new_state(), AnswerEvent("x", "mini.ac", ("mini.a", "mini.c"),
                                                        True))
    again = model.state_from_bytes(model.state_to_bytes(state))
    np.testing.assert_array_equal(again.logits, state.logits)


def test_cli_exports_the_log_trains_and_registers(backend, make_tenant, make_client,
                                                  tmp_path: Path, monkeypatch) -> None:
    """The documented loop: tutor export-log, tutor train dkt, tutor model register."""
    from typer.testing import CliRunner

    from tutor.cli import app as tutor_cli

    for name, value in backend.env().items():
        if name.startswith("TUTOR_"):
            monkeypatch.setenv(name, value)
    t = make_tenant(["mini"])
    client = make_client()
    for learner in ("l1", "l2", "l3", "l4"):
        for item, correct in ANSWERS:
            answer(client, t, learner, item, correct)
    run = CliRunner().invoke
    name = t.tenant.name
    done = run(tutor_cli, ["export-log", "--tenant", name, "--out", str(tmp_path / "log.csv")])
    assert done.exit_code == 0, done.output
    assert "24 answers of 4 learners" in done.stdout
    done = run(tutor_cli, ["train", "dkt", "--format", "csv", "--train",
                           str(tmp_path / "log.csv"), "--out", str(tmp_path / "m"),
                           "--hidden", "8", "--embed", "4", "--epochs", "2"])
    assert done.exit_code == 0, done.output
    done = run(tutor_cli, ["model", "register", str(tmp_path / "m"), "--tenant", name])
    assert done.exit_code == 0, done.output
    model = DKT.load(tmp_path / "m")
    client = make_client()  # a worker that has not cached the tenant's previous version
    _, state = _offline(model, full_history(client, "l1", t.headers))
    served = state_mastery(client.get("/v1/learners/l1/state", headers=t.headers).json())
    assert_same_mastery(served, model.mastery(state))
    done = run(tutor_cli, ["model", "unregister", "--tenant", name])
    assert done.exit_code == 0 and "served by its content's bkt-memory again" in done.stdout, \
        done.output
    done = run(tutor_cli, ["model", "unregister", "--tenant", name])
    assert done.exit_code == 2 and "no registered model" in done.output
