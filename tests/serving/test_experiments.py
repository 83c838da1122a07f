"""Experiments in the API: definitions, sticky hash assignment at the first served exercise,
consent and opt-out, the policy and arm recorded with every answer, export and erasure, and
results (hand-checked numbers, the sample-ratio-mismatch check), on both backends."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from scipy import stats

from engine.experiments import Arm, Sample, assign, mean_interval

from .conftest import TUTOR, Backend, TenantKey, error_of, new_event_id

ARMS = [{"name": "control", "options": {"target_success": 0.9}},
        {"name": "low", "options": {"target_success": 0.3}}]


def define(client, t: TenantKey, name: str | None = None, arms: list[dict[str, Any]] = ARMS,
           **extra: Any) -> dict[str, Any]:
    name = name or f"exp-{uuid.uuid4().hex[:8]}"
    r = client.post("/v1/experiments", headers=t.headers,
                    json={"name": name, "arms": arms, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def learners_in(experiment: str, arm: str, n: int, prefix: str = "l",
                arms: list[dict[str, Any]] = ARMS) -> list[str]:
    """``n`` learner ids that the hash puts in ``arm``."""
    weights = [Arm(a["name"], a.get("weight", 1.0)) for a in arms]
    found = []
    i = 0
    while len(found) < n:
        learner = f"{prefix}-{i}"
        if assign(experiment, learner, weights) == arm:
            found.append(learner)
        i += 1
    return found


def answer(client, t: TenantKey, learner: str, item: str, correct: bool,
           at: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"item_id": item, "correct": correct, "event_id": new_event_id()}
    if at is not None:
        body["answered_at"] = at.isoformat()
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def assignments(backend: Backend, t: TenantKey) -> dict[str, str]:
    with backend.engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT learner_id, arm FROM experiment_assignments WHERE tenant_id = :t"),
            {"t": t.tenant.id}).all())


def test_define_list_stop_and_refusals(client, make_tenant) -> None:
    t = make_tenant()
    made = define(client, t, "first")
    assert made["status"] == "running" and [a["name"] for a in made["arms"]] == ["control",
                                                                                "low"]
    assert made["arms"][0] == {"name": "control", "weight": 1.0, "policy": "target-success",
                               "options": {"target_success": 0.9}}
    error_of(client.post("/v1/experiments", headers=t.headers,
                         json={"name": "first", "arms": ARMS}), 409, "conflict")
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    overlap = client.post("/v1/experiments", headers=t.headers,
                          json={"name": "second", "arms": ARMS, "starts_at": later})
    assert "one experiment at a time" in error_of(overlap, 409, "conflict")["message"]
    for arms, where in (([ARMS[0]], "arms"),
                        ([ARMS[0], {"name": "x", "policy": "nope"}], "unknown policy"),
                        ([ARMS[0], {"name": "x", "options": {"bogus": 1}}], "bogus"),
                        ([ARMS[0], {"name": "control"}], "named twice"),
                        ([ARMS[0], {"name": "x", "weight": 0}], "weight")):
        r = client.post("/v1/experiments", headers=t.headers, json={"name": "bad", "arms": arms})
        assert where in json.dumps(error_of(r, 422)), r.text
    stopped = client.post("/v1/experiments/first/stop", headers=t.headers)
    assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    define(client, t, "second", starts_at=later)  # no overlap now
    listed = client.get("/v1/experiments", headers=t.headers).json()["experiments"]
    assert [(e["name"], e["status"]) for e in listed] == [("first", "stopped"),
                                                          ("second", "scheduled")]
    error_of(client.post("/v1/experiments/none/stop", headers=t.headers), 404, "not_found")


def test_assignment_sticky_by_hash_recorded_exported_erased(client, backend, make_tenant
                                                            ) -> None:
    t = make_tenant()
    name = define(client, t)["name"]
    learners = [f"s-{i}" for i in range(30)]
    for learner in learners:  # enrolled at the first served exercise
        r = client.get(f"/v1/learners/{learner}/next", headers=t.headers)
        assert r.status_code == 200, r.text
    want = {x: assign(name, x, [Arm("control"), Arm("low")]) for x in learners}
    assert assignments(backend, t) == want
    assert set(want.values()) == {"control", "low"}
    # sticky: more exercises and answers leave the arm as it was
    for learner in learners[:6]:
        first = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()
        got = answer(client, t, learner, first["next"][0]["item"], True)
        target = "0.90" if want[learner] == "control" else "0.30"  # the arm's target
        assert f"the target {target}" in got["next"]["reason"], got
    assert assignments(backend, t) == want
    learner = learners[0]
    export = client.get(f"/v1/learners/{learner}/export", headers=t.headers).json()
    assert [(a["experiment"], a["arm"]) for a in export["experiments"]] == [(name,
                                                                           want[learner])]
    assert [(e["policy"], e["experiment"], e["arm"]) for e in export["events"]] == [
        ("target-success", name, want[learner])]
    assert export["consent"] == {"learner_id": learner, "personalization": True,
                                 "experiments": None, "updated_at": None}
    assert client.delete(f"/v1/learners/{learner}", headers=t.headers).status_code == 204
    assert learner not in assignments(backend, t)
    assert len(assignments(backend, t)) == len(learners) - 1


def test_new_learner_answering_first_is_enrolled_and_recorded(client, backend,
                                                               make_tenant) -> None:
    t = make_tenant()
    name = define(client, t)["name"]
    got = answer(client, t, "fresh", "mini.a.mid", True)
    arm = assign(name, "fresh", [Arm("control"), Arm("low")])
    assert assignments(backend, t) == {"fresh": arm}
    with backend.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT policy, arm FROM events WHERE tenant_id = :t"),
                           {"t": t.tenant.id}).one()
    assert tuple(row) == ("target-success", arm)
    assert got["next"] is not None


def test_opted_out_learners_are_never_enrolled(client, backend, make_tenant) -> None:
    t = make_tenant()
    r = client.put("/v1/learners/out/consent", headers=t.headers,
                   json={"personalization": False})
    assert r.status_code == 200 and r.json()["personalization"] is False, r.text
    r = client.put("/v1/learners/refuses/consent", headers=t.headers,
                   json={"personalization": True, "experiments": False})
    assert r.json()["experiments"] is False
    define(client, t)
    for learner in ("out", "refuses"):
        nxt = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()
        got = answer(client, t, learner, nxt["next"][0]["item"], True)
        answer(client, t, learner, got["next"]["item"], False)
    assert assignments(backend, t) == {}
    export = client.get("/v1/learners/out/export", headers=t.headers).json()
    assert export["experiments"] == []
    assert export["consent"]["personalization"] is False
    assert export["consent"]["updated_at"] is not None
    assert {(e["policy"], e["arm"]) for e in export["events"]} == {("fixed-curriculum", None)}
    assert "in course order" in export["events"][-1]["response"]["next"]["reason"]
    refused = client.get("/v1/learners/refuses/export", headers=t.headers).json()
    assert {(e["policy"], e["arm"]) for e in refused["events"]} == {("target-success", None)}


def test_opting_out_after_answers_switches_to_the_fixed_curriculum(client, make_tenant
                                                                    ) -> None:
    """Also the one-statement answer (PostgreSQL): its statement must not serve an opted-out
    learner with the default policy."""
    t = make_tenant()
    for _ in range(3):
        got = answer(client, t, "switch", "mini.a.mid", True)
    assert "predicted success" in got["next"]["reason"]
    client.put("/v1/learners/switch/consent", headers=t.headers,
               json={"personalization": False})
    got = answer(client, t, "switch", "mini.a.mid", True)
    assert "in course order" in got["next"]["reason"], got
    events = client.get("/v1/learners/switch/export", headers=t.headers).json()["events"]
    assert [e["policy"] for e in events] == ["target-success"] * 3 + ["fixed-curriculum"]


def test_fixed_curriculum_arm_counts_streaks(client, make_tenant) -> None:
    t = make_tenant()
    arms = [{"name": "adaptive"}, {"name": "fixed", "policy": "fixed-curriculum"}]
    name = define(client, t, arms=arms)["name"]
    learner = learners_in(name, "fixed", 1, "fc", arms)[0]
    item = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()["next"][0]
    assert "in course order" in item["reason"]
    for _ in range(3):
        got = answer(client, t, learner, item["item"], True)
        item = got["next"]
    assert "passed" in item["reason"] and "3 correct answers in a row" in item["reason"], item


def test_experiment_requiring_consent_enrols_only_consenting(client, backend,
                                                             make_tenant) -> None:
    t = make_tenant()
    define(client, t, require_consent=True)
    client.put("/v1/learners/yes/consent", headers=t.headers,
               json={"personalization": True, "experiments": True})
    for learner in ("yes", "unasked"):
        assert client.get(f"/v1/learners/{learner}/next", headers=t.headers).status_code == 200
    assert set(assignments(backend, t)) == {"yes"}


def test_results_hand_checked(client, make_tenant) -> None:
    t = make_tenant()
    name = f"exp-{uuid.uuid4().hex[:8]}"
    define(client, t, name)
    control, low = learners_in(name, "control", 3, "c"), learners_in(name, "low", 2, "w")
    days_ago = datetime.now(UTC) - timedelta(days=3)
    # control: (right, wrong) then a return 2 days later; 3 right; (wrong) only
    plans = {control[0]: [(True, 0), (False, 0), (True, 2)],
             control[1]: [(True, 0), (True, 0), (True, 0)],
             control[2]: [(False, 0)],
             low[0]: [(False, 0), (False, 0)],
             low[1]: [(True, 0), (True, 1.5), (True, 1.5)]}
    for learner, plan in plans.items():
        for k, (correct, day) in enumerate(plan):
            answer(client, t, learner, "mini.c.1", correct,
                   at=days_ago + timedelta(days=day, minutes=k))
    r = client.get(f"/v1/experiments/{name}/results", headers=t.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["control"] == "control" and got["status"] == "running"
    arms = {a["arm"]: a for a in got["arms"]}
    assert (arms["control"]["learners"], arms["control"]["answers"]) == (3, 7)
    assert (arms["low"]["learners"], arms["low"]["answers"]) == (2, 5)
    m = arms["control"]["metrics"]
    assert m["answers"]["mean"] == round(7 / 3, 6) and m["answers"]["n"] == 3
    assert m["accuracy"]["mean"] == round((2 / 3 + 1 + 0) / 3, 6)
    assert m["returned"]["mean"] == round(1 / 3, 6) and m["returned"]["n"] == 3
    assert arms["low"]["metrics"]["accuracy"]["mean"] == 0.5
    assert arms["low"]["metrics"]["returned"]["mean"] == 0.5
    # the interval is the engine's always-valid one over the same per-learner values
    want = mean_interval(Sample.of([2 / 3, 1.0, 0.0]))
    assert m["accuracy"]["ci"] == [round(want.low, 6), round(want.high, 6)]
    diff = got["differences"]["low"]["accuracy"]
    assert diff["estimate"] == round(0.5 - 5 / 9, 6) and not diff["significant"]
    # mini.c (prior 0.5, learn 0.1, guess 0.25, slip 0.1) from the prior: right answers take
    # P(mastered) to 0.804, 0.943, 0.985: mastered (>= 0.95) at the third. R, W, R (0.804,
    # 0.419, 0.749) and W alone never get there: one learner per arm, 3 exercises each
    for arm in ("control", "low"):
        assert arms[arm]["metrics"]["exercises_to_mastery"]["mean"] == 3.0
        assert arms[arm]["metrics"]["exercises_to_mastery"]["n"] == 1
    srm = got["srm"]
    assert srm["counts"] == [3, 2] and srm["expected"] == [2.5, 2.5]
    assert srm["p_value"] == stats.chisquare([3, 2]).pvalue and not srm["mismatch"]


def test_sample_ratio_mismatch_is_detected(client, make_tenant) -> None:
    t = make_tenant()
    name = f"exp-{uuid.uuid4().hex[:8]}"
    define(client, t, name)
    # only learners the hash puts in `control` come: a skewed sample (as if `low`'s were lost)
    for learner in learners_in(name, "control", 40, "skew"):
        assert client.get(f"/v1/learners/{learner}/next", headers=t.headers).status_code == 200
    srm = client.get(f"/v1/experiments/{name}/results", headers=t.headers).json()["srm"]
    assert srm["counts"] == [40, 0] and srm["mismatch"] and srm["p_value"] < 1e-9


def test_stopped_experiment_neither_enrols_nor_serves(client, backend, make_tenant) -> None:
    t = make_tenant()
    name = define(client, t)["name"]
    learner = learners_in(name, "low", 1, "stop")[0]
    assert "0.30" in client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()[
        "next"][0]["reason"]
    client.post(f"/v1/experiments/{name}/stop", headers=t.headers)
    got = answer(client, t, learner, "mini.a.mid", True)
    assert "the target 0.75" in got["next"]["reason"]  # the tenant's default again
    client.get("/v1/learners/after-stop/next", headers=t.headers)
    assert set(assignments(backend, t)) == {learner}


def test_report_command(client, backend, make_tenant) -> None:
    t = make_tenant()
    name = define(client, t)["name"]
    answer(client, t, "cli-learner", "mini.a.mid", True)
    done = subprocess.run([str(TUTOR), "experiment", "report", name, "--tenant", t.tenant.name,
                           "--json"], env=backend.env(), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sum(a["answers"] for a in report["arms"]) == 1
    missing = subprocess.run([str(TUTOR), "experiment", "report", "nope", "--tenant",
                              t.tenant.name], env=backend.env(), capture_output=True,
                             text=True, timeout=120)
    assert missing.returncode == 2 and "not found" in missing.stderr
