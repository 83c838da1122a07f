"""A tenant's default policy and tracer: served when it configured nothing (the engine's
default policy on its own tracer, with memory, from the pack's parameters: no fit), set in one
call (`PUT /v1/tenant/defaults`, `tutor tenant defaults`), every input validated, and a policy
that needs a tracer with memory refused where the tenant's has none; on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.models import register_model, unregister_model
from api.tenant_defaults import CONTENT_TRACERS
from api.tenants import load_catalog
from engine.selection.registry import DEFAULT_POLICY, POLICIES
from engine.tracing.bkt import BKT
from engine.tracing.registry import MODELS
from tutor.cli import app as tutor_cli

from .conftest import Backend, TenantKey, error_of, new_event_id

URL = "/v1/tenant/defaults"
ENGINE_DEFAULTS = {"policy": DEFAULT_POLICY, "options": {}, "policy_source": "engine default",
                   "tracer": "bkt-memory", "tracer_source": "policy", "memory": True,
                   "target_success": 0.75}


def answer(client, t: TenantKey, learner: str, item: str, correct: bool = True,
           **extra: Any) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                    json={"item_id": item, "correct": correct, "event_id": new_event_id(),
                          **extra})
    assert r.status_code == 200, r.text
    return r.json()


def put(client, t: TenantKey, body: dict[str, Any]) -> Any:
    return client.put(URL, headers=t.headers, json=body)


def test_a_tenant_that_configured_nothing_is_served_the_engines_defaults(
        client, make_tenant) -> None:
    """The registry's default policy chooses, on bkt-memory built from the pack (no model
    was fitted or registered): reviews are scheduled from the first learned skill."""
    t = make_tenant()
    assert client.get(URL, headers=t.headers).json() == ENGINE_DEFAULTS
    for _ in range(6):
        answer(client, t, "ada", "mini.a.hard")
    export = client.get("/v1/learners/ada/export", headers=t.headers).json()
    assert {e["policy"] for e in export["events"]} == {DEFAULT_POLICY}
    reviews = client.get("/v1/learners/ada/reviews", headers=t.headers).json()
    assert reviews["memory"] is True
    assert [r["skill_id"] for r in reviews["reviews"]] == ["mini.a"]


def test_put_sets_policy_options_and_tracer_in_one_call(client, make_tenant) -> None:
    t = make_tenant()
    for _ in range(3):
        answer(client, t, "bo", "mini.a.mid")
    r = put(client, t, {"policy": "target-success", "options": {"target_success": 0.6},
                        "tracer": "bkt"})
    assert r.status_code == 200, r.text
    want = {"policy": "target-success", "options": {"target_success": 0.6},
            "policy_source": "configured", "tracer": "bkt", "tracer_source": "configured",
            "memory": False, "target_success": 0.75}
    assert r.json() == want
    assert client.get(URL, headers=t.headers).json() == want
    # the next exercise: the policy at the target its options set, the learner's state
    # rebuilt by the new tracer from the log (BKT's mastery is the same within a day)
    got = answer(client, t, "bo", "mini.a.mid")
    assert got["next"] is not None and "the target 0.60" in got["next"]["reason"], got
    assert client.get("/v1/learners/bo/reviews", headers=t.headers).json()["memory"] is False
    export = client.get("/v1/learners/bo/export", headers=t.headers).json()
    assert [e["policy"] for e in export["events"]] == [DEFAULT_POLICY] * 3 + ["target-success"]
    # `{}` goes back to the engine's defaults
    back = put(client, t, {})
    assert back.status_code == 200 and back.json() == ENGINE_DEFAULTS, back.text


def test_a_policy_alone_brings_its_own_tracer(client, make_tenant) -> None:
    """`spaced` names `bkt-memory` as its tracer: configured alone, it runs on it."""
    t = make_tenant(policy="target-success")
    assert client.get(URL, headers=t.headers).json()["tracer"] == "bkt"
    r = put(client, t, {"policy": "spaced", "options": {"retention": 0.85}})
    assert r.status_code == 200, r.text
    assert r.json()["tracer"] == "bkt-memory" and r.json()["tracer_source"] == "policy"
    got = answer(client, t, "cy", "mini.a.easy")
    assert got["next"] is not None


@pytest.mark.parametrize(("body", "says"), [
    ({"policy": "nope"}, "unknown policy (policies: " + ", ".join(POLICIES)),
    ({"policy": "target-success", "options": {"retention": 0.9}}, "retention"),
    ({"policy": "target-success", "options": {"target_success": 1.5}}, "target_success"),
    ({"policy": "fixed-curriculum", "options": {"streak": 11}}, "streak"),
    ({"policy": "random", "options": {"seed": "7"}}, "seed"),
    ({"options": {"target_success": 0.6}}, "name the policy they are for"),
    ({"tracer": "dkt"}, "'bkt', 'bkt-forgets' or 'bkt-memory'"),
    ({"policy": "teach", "tracer": "timed"}, "tracer"),
    ({"policy": "teach", "colour": "blue"}, "colour"),
    ({"policy": "spaced", "tracer": "bkt"},
     "policy 'spaced' needs a tracer with memory"),
])
def test_what_cannot_be_is_a_422_naming_it_with_nothing_changed(client, make_tenant, body,
                                                                   says) -> None:
    t = make_tenant()
    err = error_of(put(client, t, body), 422, "validation_error")
    assert says in err["message"], err
    assert client.get(URL, headers=t.headers).json() == ENGINE_DEFAULTS


def test_the_content_tracers_are_the_registrys_bkt_family() -> None:
    """CONTENT_TRACERS names what Catalog.tracer builds (without importing every model)."""
    family = [name for name, spec in MODELS.items()
              if spec.target.startswith("engine.tracing.bkt")
              and issubclass(spec.tracer_class(), BKT)]
    assert list(CONTENT_TRACERS) == family


def test_a_registered_model_serves_instead_and_must_keep_memory_where_needed(
        backend: Backend, client, make_tenant, tmp_path: Path) -> None:
    t = make_tenant()
    catalog = load_catalog(backend.engine, t.tenant.id)
    plain, memory = tmp_path / "bkt.json", tmp_path / "bkt-memory.json"
    catalog.tracer("bkt").save(plain)
    catalog.tracer("bkt-memory").save(memory)
    assert put(client, t, {"policy": "spaced"}).status_code == 200
    # a model without memory under a policy that needs it: refused, nothing registered
    with pytest.raises(ValueError, match="policy 'spaced' needs a tracer with memory"):
        register_model(backend.engine, t.tenant.id, plain, catalog)
    register_model(backend.engine, t.tenant.id, memory, catalog)
    got = client.get(URL, headers=t.headers).json()
    assert (got["tracer"], got["tracer_source"]) == ("bkt-memory", "registered model")
    # a tracer setting would not apply while the model serves: 409, nothing changed
    err = error_of(put(client, t, {"policy": "spaced", "tracer": "bkt-memory"}), 409)
    assert "registered model" in err["message"] and "unregister" in err["message"]
    assert unregister_model(backend.engine, t.tenant.id) == "bkt-memory"
    assert client.get(URL, headers=t.headers).json()["tracer_source"] == "policy"
    # a policy that needs memory, while a model without it serves: the tenant's state stands
    # in the way, not the request (409, nothing changed)
    assert put(client, t, {}).status_code == 200
    register_model(backend.engine, t.tenant.id, plain, catalog)
    err = error_of(put(client, t, {"policy": "spaced"}), 409, "conflict")
    assert "policy 'spaced' needs a tracer with memory" in err["message"], err
    assert client.get(URL, headers=t.headers).json()["policy_source"] == "engine default"


def test_an_arm_that_needs_memory_is_refused_on_a_tracer_without(client,
                                                                  make_tenant) -> None:
    t = make_tenant(tracer="bkt")
    arms = [{"name": "control", "policy": "target-success"},
            {"name": "spacing", "policy": "spaced"}]
    r = client.post("/v1/experiments", headers=t.headers, json={"name": "x", "arms": arms})
    err = error_of(r, 409, "conflict")  # the tenant's tracer, not the request, stands in the way
    assert "arm 'spacing'" in err["message"] and "needs a tracer with memory" in err["message"]
    assert client.get("/v1/experiments", headers=t.headers).json()["experiments"] == []
    # on a tracer with memory it runs; then a tracer without memory is refused while it does
    assert put(client, t, {}).status_code == 200
    r = client.post("/v1/experiments", headers=t.headers, json={"name": "x", "arms": arms})
    assert r.status_code == 201, r.text
    err = error_of(put(client, t, {"tracer": "bkt"}), 409, "conflict")
    assert "arm 'spacing' of experiment 'x'" in err["message"], err
    assert client.post("/v1/experiments/x/stop", headers=t.headers).status_code == 200
    assert put(client, t, {"tracer": "bkt"}).status_code == 200


def test_the_command_shows_and_sets_the_defaults(backend: Backend, client,
                                                 make_tenant) -> None:
    t = make_tenant()
    base = ["tenant", "defaults", t.tenant.name, "--database-url", backend.database_url]
    shown = CliRunner().invoke(tutor_cli, [*base, "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output) == {"tenant": t.tenant.name, **ENGINE_DEFAULTS}
    done = CliRunner().invoke(tutor_cli, [
        *base, "--policy", "target-success:target_success=0.65,avoid_recent=2", "--tracer",
        "bkt-forgets"])
    assert done.exit_code == 0, done.output
    assert "policy target-success (target_success=0.65, avoid_recent=2)" in done.output
    got = client.get(URL, headers=t.headers).json()
    assert (got["policy"], got["options"], got["tracer"]) == (
        "target-success", {"target_success": 0.65, "avoid_recent": 2}, "bkt-forgets")
    for flags, says in ((["--policy", "fixed-curriculum:streak=11"], "streak"),
                        (["--policy", "spaced", "--tracer", "bkt"], "needs a tracer with "
                                                                     "memory"),
                        (["--policy", "nope"], "unknown policy"),
                        (["--tracer", "dkt"], "unknown tracer 'dkt'"),
                        (["--reset", "--tracer", "bkt"], "--reset")):
        refused = CliRunner().invoke(tutor_cli, [*base, *flags])
        assert refused.exit_code == 2 and says in refused.output, (flags, refused.output)
    assert client.get(URL, headers=t.headers).json() == got  # nothing changed
    reset = CliRunner().invoke(tutor_cli, [*base, "--reset", "--json"])
    assert reset.exit_code == 0 and json.loads(reset.output)["policy_source"] == \
        "engine default", reset.output


def test_a_new_tracer_rebuilds_cached_states(backend: Backend, client, make_tenant) -> None:
    """The tracer's change bumps the content version: no state of one model is read by the
    other (bkt-memory's state is four numbers a skill, BKT's one)."""
    t = make_tenant()
    answer(client, t, "di", "mini.a.mid")
    with backend.engine.connect() as conn:
        version = conn.execute(sa.text("SELECT content_version FROM tenants WHERE id = :i"),
                               {"i": t.tenant.id}).scalar_one()
    assert put(client, t, {"policy": DEFAULT_POLICY}).status_code == 200  # same tracer
    assert put(client, t, {"tracer": "bkt"}).status_code == 200
    with backend.engine.connect() as conn:
        after = conn.execute(sa.text("SELECT content_version FROM tenants WHERE id = :i"),
                             {"i": t.tenant.id}).scalar_one()
    assert after == version + 1
    got = answer(client, t, "di", "mini.a.mid")
    assert set(got["mastery"]) == {"mini.a"}
