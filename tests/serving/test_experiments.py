"""Experiments in the API: definitions, sticky hash assignment at the first served exercise,
consent and opt-out, the policy and arm recorded with every answer, export and erasure, and
results (hand-checked numbers, the sample-ratio-mismatch check), on both backends."""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
import sqlalchemy as sa
from scipy import stats

from api.db import experiments as experiment_rows
from api.experiments import CACHE_SECONDS
from engine.experiments import Arm, Sample, assign, mean_interval
from engine.selection.registry import DEFAULT_POLICY, POLICIES

from .conftest import TUTOR, Backend, TenantKey, error_of, new_event_id

ARMS = [{"name": "control", "policy": "target-success", "options": {"target_success": 0.9}},
        {"name": "low", "policy": "target-success", "options": {"target_success": 0.3}}]


@pytest.fixture
def make_tenant(make_tenant: Callable[..., TenantKey]) -> Callable[..., TenantKey]:
    """Tenants served by target-success outside experiments: these tests tell the arms from
    the tenant's default by the targets the reasons name (the arms' 0.9 and 0.3, the tenant's
    0.75), and read the default's name in the answer log."""
    return functools.partial(make_tenant, policy="target-success")


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


def test_an_arm_naming_no_policy_is_the_engines_default(client, make_tenant) -> None:
    """The default is named in the stored definition: a later default does not change it."""
    made = define(client, make_tenant(), arms=[{"name": "a"}, {"name": "b", "weight": 2}])
    assert [a["policy"] for a in made["arms"]] == [DEFAULT_POLICY] * 2


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



def test_fixed_curriculum_arm_counts_its_own_streak(client, make_tenant) -> None:
    """An arm's streak longer than the opted-out learners' 3 is counted in full (only 3
    outcomes were read: a streak of 5 stuck at "4 of 5" forever); one longer than the answers
    the service remembers (10) could never pass, and 2**53 made every exercise of the arm a
    500: refused, nothing stored."""
    t = make_tenant()
    for streak in (11, 10**6, 2**53):
        arms = [{"name": "a", "policy": "fixed-curriculum", "options": {"streak": streak}},
                {"name": "b"}]
        r = client.post("/v1/experiments", headers=t.headers, json={"name": "s", "arms": arms})
        assert "streak" in error_of(r, 422, "validation_error")["message"], r.text
    assert client.get("/v1/experiments", headers=t.headers).json()["experiments"] == []
    arms = [{"name": "adaptive"}, {"name": "fixed", "policy": "fixed-curriculum",
                                   "options": {"streak": 5}}]
    name = define(client, t, arms=arms)["name"]
    learner = learners_in(name, "fixed", 1, "fc5", arms)[0]
    item = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()["next"][0]
    for k in range(1, 5):
        item = answer(client, t, learner, item["item"], True)["next"]
        assert f"{k} of 5 correct in a row" in item["reason"], item
    item = answer(client, t, learner, item["item"], True)["next"]
    assert "passed" in item["reason"] and "5 correct answers in a row" in item["reason"], item

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


# ====================================================================== issue 20: hardening
def listed(client, t: TenantKey) -> list[dict[str, Any]]:
    r = client.get("/v1/experiments", headers=t.headers)
    assert r.status_code == 200, r.text
    return r.json()["experiments"]


def store_as_before(backend: Backend, t: TenantKey, name: str,
                    arms: list[dict[str, Any]]) -> None:
    """Store a running definition directly, as the API did before it refused it."""
    now = datetime.now(UTC)
    with backend.engine.begin() as conn:
        conn.execute(sa.insert(experiment_rows).values(
            tenant_id=t.tenant.id, name=name, require_consent=False, starts_at=now,
            stops_at=None, created_at=now,
            arms=[{"weight": 1.0, "policy": "target-success", "options": {}, **a} for a in arms]))


def test_weights_out_of_range_are_refused_with_nothing_stored(client, make_tenant) -> None:
    """Issue 20: two arms of 1e308 were accepted and every later exercise of the tenant was a
    500 (the weights' sum overflowed); tiny weights were accepted too."""
    t = make_tenant()
    for weights in ((1e308, 1e308), (5e-324, 1.0), (1e300, 1.0), (1e-300, 1.0), (1.0, 1000.5),
                    (1.0, 0.0009), (1.0, 0), (1.0, -1), (1.0, True), (1.0, "2")):
        arms = [{"name": "a", "weight": weights[0]}, {"name": "b", "weight": weights[1]}]
        r = client.post("/v1/experiments", headers=t.headers, json={"name": "w", "arms": arms})
        assert "weight" in json.dumps(error_of(r, 422, "validation_error")), (weights, r.text)
    assert listed(client, t) == []
    # the bounds themselves: a split of 1 to a million, served
    define(client, t, "w", arms=[{"name": "a", "weight": 0.001}, {"name": "b", "weight": 1000}])
    for i in range(5):
        assert client.get(f"/v1/learners/w-{i}/next", headers=t.headers).status_code == 200


def test_stored_huge_weights_are_served_by_their_shares(client, backend, make_tenant) -> None:
    """A definition stored before the bounds (two arms of 1e308) serves: the engine scales the
    weights before summing them, so the tenant's exercises are no longer 500s."""
    t = make_tenant()
    store_as_before(backend, t, "w-inf", [{"name": "a", "weight": 1e308},
                                          {"name": "b", "weight": 1e308}])
    learners = [f"inf-{i}" for i in range(15)]
    for learner in learners:
        r = client.get(f"/v1/learners/{learner}/next", headers=t.headers)
        assert r.status_code == 200, r.text
    want = {x: assign("w-inf", x, [Arm("a", 1e308), Arm("b", 1e308)]) for x in learners}
    assert assignments(backend, t) == want and set(want.values()) == {"a", "b"}


def test_stored_definition_that_cannot_be_served_falls_back_to_the_default(
        client, backend, make_tenant) -> None:
    """Weights too far apart for a share (the second arm's rounds to 0), stored before the
    API refused them: the tenant's learners get its default policy, the listing and the stop
    work, the results say why there are none (409), never a 500."""
    t = make_tenant()
    store_as_before(backend, t, "apart", [
        {"name": "a", "weight": 1e308, "options": {"target_success": 0.9}},
        {"name": "b", "weight": 5e-324, "options": {"target_success": 0.3}}])
    for i in range(4):
        r = client.get(f"/v1/learners/apart-{i}/next", headers=t.headers)
        assert r.status_code == 200, r.text
        assert "the target 0.75" in r.json()["next"][0]["reason"]  # the tenant's, no arm's
    assert assignments(backend, t) == {}
    assert [(e["name"], e["status"]) for e in listed(client, t)] == [("apart", "running")]
    r = client.get("/v1/experiments/apart/results", headers=t.headers)
    assert "cannot be served" in error_of(r, 409, "conflict")["message"]
    r = client.post("/v1/experiments/apart/stop", headers=t.headers)
    assert r.status_code == 200 and r.json()["status"] == "stopped", r.text


def test_option_values_are_bounded_with_nothing_stored(client, make_tenant) -> None:
    """Issue 20: a 100-bit seed gave a 500 on creation (orjson renders no integer beyond 64
    bits), yet the experiment was stored and ran, and every later listing was a 500. Option
    numbers are within +-2**53 now, nothing stored otherwise."""
    t = make_tenant()
    random_arms = [{"name": "a", "policy": "random"}, {"name": "b"}]
    for options in ({"seed": 10**30}, {"seed": 2**63}, {"seed": 2**53 + 1},
                    {"seed": -(2**53) - 1}, {"target_success": 1e300},
                    {"target_success": "0.7"}, {"target_success": None},
                    {"target_success": [0.7]}, {"target_success": {"v": 0.7}},
                    {"Seed": 1}, {f"o{k}": 1 for k in range(17)}):
        arms = [{**random_arms[0], "options": options}, random_arms[1]]
        r = client.post("/v1/experiments", headers=t.headers, json={"name": "o", "arms": arms})
        error_of(r, 422, "validation_error")
    for number in (b"1e400", b"-1e400", b"NaN", b"Infinity"):  # what json.loads reads as floats
        body = (b'{"name": "o", "arms": [{"name": "a", "options": {"target_success": '
                + number + b'}}, {"name": "b"}]}')
        r = client.post("/v1/experiments", headers={**t.headers,
                                                    "Content-Type": "application/json"},
                        content=body)
        error_of(r, 422, "validation_error")
    assert listed(client, t) == []
    # the bounds themselves: stored, listed exactly, served, stopped
    arms = [{"name": "a", "policy": "random", "options": {"seed": 2**53}},
            {"name": "b", "policy": "random", "options": {"seed": -(2**53)}}]
    made = define(client, t, "o", arms=arms)
    assert [a["options"] for a in made["arms"]] == [{"seed": 2**53}, {"seed": -(2**53)}]
    assert [a["options"] for a in listed(client, t)[0]["arms"]] == [a["options"] for a in arms]
    assert client.get("/v1/learners/o-1/next", headers=t.headers).status_code == 200
    assert client.post("/v1/experiments/o/stop", headers=t.headers).status_code == 200


def test_stored_wide_integer_option_lists_and_stops(client, backend, make_tenant) -> None:
    """A 100-bit seed stored before the bound: the listing shows it as its digits, the stop
    answers 200 (both were 500s forever), and the arm serves."""
    t = make_tenant()
    store_as_before(backend, t, "wide", [{"name": "a", "policy": "random",
                                          "options": {"seed": 10**30}}, {"name": "b"}])
    assert listed(client, t)[0]["arms"][0]["options"] == {"seed": str(10**30)}
    assert client.get("/v1/learners/wide-1/next", headers=t.headers).status_code == 200
    r = client.post("/v1/experiments/wide/stop", headers=t.headers)
    assert r.status_code == 200 and r.json()["status"] == "stopped", r.text
    assert listed(client, t)[0]["status"] == "stopped"


def test_concurrent_creations_leave_one_running(make_client, backend, make_tenant) -> None:
    """Issue 20: 8 creations at once, with different names, left 1, 4 and 3 running in three
    tries, and learners of a stopped one were enrolled again in another, with another arm.
    Four apps (like four worker processes: each its own writer lock) and 8 threads, three
    rounds: always exactly one created, seven 409s."""
    clients = [make_client() for _ in range(4)]
    n = 8
    for _ in range(3):
        t = make_tenant()
        start = threading.Barrier(n, timeout=60)

        def create(k: int, t: TenantKey = t, start: threading.Barrier = start) -> Any:
            start.wait()
            return clients[k % len(clients)].post(
                "/v1/experiments", headers=t.headers, json={"name": f"race-{k}", "arms": ARMS})

        with ThreadPoolExecutor(max_workers=n) as pool:
            responses = list(pool.map(create, range(n), timeout=120))
        got = sorted(r.status_code for r in responses)
        assert got == [201] + [409] * (n - 1), [(r.status_code, r.text[:150])
                                                for r in responses]
        winner = next(r.json()["name"] for r in responses if r.status_code == 201)
        assert [(e["name"], e["status"]) for e in listed(clients[0], t)] == [(winner,
                                                                             "running")]
    # the last round's learners: enrolled once, and after the stop enrolled nowhere else
    learners = [f"race-l{i}" for i in range(30)]
    for k, learner in enumerate(learners):
        assert clients[k % 4].get(f"/v1/learners/{learner}/next",
                                  headers=t.headers).status_code == 200
    enrolled = assignments(backend, t)
    assert enrolled == {x: assign(winner, x, [Arm("control"), Arm("low")]) for x in learners}
    assert clients[0].post(f"/v1/experiments/{winner}/stop", headers=t.headers).json()[
        "status"] == "stopped"
    time.sleep(CACHE_SECONDS)  # every app's copy of the definitions is read again
    for k, learner in enumerate(learners):
        nxt = clients[k % 4].get(f"/v1/learners/{learner}/next", headers=t.headers)
        assert "the target 0.75" in nxt.json()["next"][0]["reason"], nxt.text
    assert assignments(backend, t) == enrolled


#: (policy or None for the default, options, whether the server takes them): each policy takes
#: its own options only, each within the range the policy checks (issue 20, finding 13)
OPTION_CASES: list[tuple[str | None, dict[str, Any], bool]] = [
    ("target-success", {"b": 0.5, "w4": True}, False),  # schemathesis' case: documented, 422
    ("target-success", {"target_success": 0.7, "mastery_threshold": 1, "avoid_recent": 0,
                        "seed": -5}, True),
    ("target-success", {"target_success": 1}, False),
    ("target-success", {"avoid_recent": 3.0}, True),  # JSON Schema's integer: 3.0 is 3
    ("target-success", {"avoid_recent": 2.5}, False),
    ("target-success", {"retention": 0.9}, False),  # spaced's, not target-success's
    ("fixed-curriculum", {"streak": 10.0, "seed": 2**53}, True),
    ("fixed-curriculum", {"streak": 11}, False),  # the service keeps 10 outcomes
    ("fixed-curriculum", {"streak": 0}, False),
    ("fixed-curriculum", {"target_success": 0.7}, False),
    ("random", {"seed": 7}, True),
    ("random", {"seed": True}, False),
    ("random", {"seed": 2**53 + 1}, False),
    ("random", {"mastery_threshold": 0.9}, False),
    ("lowest-mastery", {"mastery_threshold": 0.5, "avoid_recent": 10}, True),
    ("lowest-mastery", {"mastery_threshold": True}, False),  # was taken as 1
    ("lowest-mastery", {"target_success": 0.7}, False),
    ("spaced", {"retention": 0.95, "max_reviews": 0, "session_hours": 0.5}, True),
    ("spaced", {"retention": 1.0}, False),
    ("spaced", {"session_hours": 0}, False),
    ("spaced", {"streak": 3}, False),
    (None, {"target_success": 0.6}, True),  # no policy: the engine's default
    (None, {"seed": "1"}, False),
    ("nope", {}, False),
]


def test_the_document_states_each_policys_options(client, make_tenant) -> None:
    """Issue 20, finding 13: an arm's options were documented as any names (booleans or
    numbers), but each policy takes only its own, in its own ranges: schemathesis sent
    `{"b": ..., "w4": true}` to target-success and got a 422. Now the OpenAPI document's
    schema of the body accepts exactly what the server accepts (201) and rejects exactly what
    it refuses (422, nothing stored)."""
    t = make_tenant(policy=None)  # the engine's defaults: a tracer with memory, as spaced needs
    document = client.get("/openapi.json").json()
    body_schema = document["paths"]["/v1/experiments"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    validator = jsonschema_rs.validator_for({**body_schema,
                                             "components": document["components"]})
    accepted = []
    for k, (policy, options, takes) in enumerate(OPTION_CASES):
        arm = {"name": "a", "options": options, **({"policy": policy} if policy else {})}
        body = {"name": f"case-{k}", "arms": [arm, {"name": "b"}]}
        r = client.post("/v1/experiments", headers=t.headers, json=body)
        assert r.status_code == (201 if takes else 422), (policy, options, r.text)
        assert validator.is_valid(body) == takes, (policy, options)
        if takes:
            accepted.append(r.json()["arms"][0]["options"])
            stopped = client.post(f"/v1/experiments/case-{k}/stop", headers=t.headers)
            assert stopped.status_code == 200, stopped.text
    assert [a["options"] for e in listed(client, t) for a in e["arms"][:1]] == accepted
    # stored as given, a whole-number float of an integer option as its integer
    assert {"streak": 10, "seed": 2**53} in accepted and {"avoid_recent": 3} in accepted
    assert all(type(v) is int for v in accepted[accepted.index({"avoid_recent": 3})].values())


def test_the_documents_options_are_the_registrys(client) -> None:
    """The per-policy option schemas are generated from the policies' declared options (one
    source): every registered policy, exactly its constructor's keyword arguments, no other,
    with the constructor's defaults; the weights' range and unique names stated too."""
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "unique" in schemas["ExperimentIn"]["properties"]["arms"]["description"]
    arms = schemas["ExperimentIn"]["properties"]["arms"]["items"]["oneOf"]
    assert len(arms) == len(POLICIES)
    for ref, (name, spec) in zip(arms, POLICIES.items(), strict=True):
        arm = schemas[ref["$ref"].rsplit("/", 1)[1]]
        assert arm["additionalProperties"] is False and arm["properties"]["policy"]["const"] == name
        assert (arm["properties"]["weight"]["minimum"],
                arm["properties"]["weight"]["maximum"]) == (0.001, 1000)
        options = schemas[arm["properties"]["options"]["$ref"].rsplit("/", 1)[1]]
        assert options["additionalProperties"] is False
        parameters = inspect.signature(spec.build).parameters
        assert list(options["properties"]) == list(parameters)
        for option, described in options["properties"].items():
            assert described["default"] == parameters[option].default
            assert described["type"] in ("integer", "number")


def test_polling_results_costs_one_replay_and_a_replay_has_a_budget(
        make_client, make_tenant, monkeypatch) -> None:
    """Results replay every answer of the experiment's learners, in a worker thread: a
    tenant polling them from several clients took every thread of the worker from the other
    tenants. Concurrent and repeated polls now share one replay per REPLAY_SECONDS, and a
    replay longer than the request budget stops with 503 ``over_budget``."""
    import api.experiment_results as results

    replays: list[int] = []
    real = results._replay_all

    def counted(*args: Any) -> Any:
        replays.append(1)
        time.sleep(0.2)  # long enough for the other polls to arrive meanwhile
        return real(*args)

    monkeypatch.setattr(results, "_replay_all", counted)
    client = make_client()
    t = make_tenant()
    name = f"exp-{uuid.uuid4().hex[:8]}"
    define(client, t, name)
    for learner in learners_in(name, "control", 2, "p"):
        answer(client, t, learner, "mini.c.1", True)
    with ThreadPoolExecutor(8) as pool:
        polled = list(pool.map(lambda _: client.get(f"/v1/experiments/{name}/results",
                                                    headers=t.headers), range(8)))
    assert [r.status_code for r in polled] == [200] * 8, polled[0].text
    assert len({r.json()["computed_at"] for r in polled}) == 1
    assert len(replays) == 1
    monkeypatch.setattr(results, "REPLAY_SECONDS", 0.0)  # the replay has aged: done again
    assert client.get(f"/v1/experiments/{name}/results", headers=t.headers).status_code == 200
    assert len(replays) == 2
    tight = make_client(request_budget_seconds=0.0)
    err = error_of(tight.get(f"/v1/experiments/{name}/results", headers=t.headers), 503,
                   "over_budget")
    assert "tutor experiment report" in err["message"], err
