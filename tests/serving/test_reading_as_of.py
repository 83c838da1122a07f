"""Reads of a learner at another moment (`?at=` of `/progress` and `/reviews`): the learner as
of then, on both backends. Only the answers given by then (`answered_at` at or before `at`)
count, in the log's order, and a placement's result only once the test had ended; a learner
without answers by then has the priors (issue 20 #10: `?at=2000-01-01` counted every answer)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from engine.events import AnswerEvent

from .conftest import TenantKey, assert_same_mastery, tracer_for
from .test_answers import answer
from .test_placement import COURSE, start
from .test_placement import answer as placement_answer

PRIORS = {"mini.a": 0.3, "mini.b": 0.2, "mini.c": 0.5}


def progress(client: TestClient, t: TenantKey, learner: str, **params: Any) -> dict[str, float]:
    r = client.get(f"/v1/learners/{learner}/progress", headers=t.headers, params=params)
    assert r.status_code == 200, r.text
    return {s["skill_id"]: s["mastery"] for s in r.json()["skills"]}


def test_progress_at_a_moment_counts_only_the_answers_given_by_then(make_tenant,
                                                                   make_client) -> None:
    """Hand-computed BKT of skill a (prior 0.3, learn 0.2, no forgetting): right on `mid`
    (guess 0.2, slip 0.1) gives 0.27 / 0.41 = 0.658537, learned 0.726829; then right on
    `easy` (guess 0.6, slip 0.05): 0.690488 / 0.854391 = 0.808165, learned 0.846532. Wrong on
    `hard` (guess 0.05, slip 0.3) from the prior: 0.09 / 0.755 = 0.119205, learned 0.295364.
    (On BKT: with bkt-memory, the default tracer, what was learned fades a day later.)"""
    t = make_tenant(["mini"], tracer="bkt")
    client = make_client()
    first, second = "2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z"
    answer(client, t, "ana", "mini.a.mid", True, answered_at=first)
    answer(client, t, "ana", "mini.a.easy", True, answered_at=second)

    assert progress(client, t, "ana", at="2000-01-01T00:00:00Z") == PRIORS
    body = client.get("/v1/learners/ana/progress", headers=t.headers,
                      params={"at": "2000-01-01T00:00:00Z"}).json()
    assert body["mastered"] == 0 and not body["complete"]
    assert progress(client, t, "ana", at="2025-01-01T09:59:59Z") == PRIORS
    one = {**PRIORS, "mini.a": 0.726829}
    assert progress(client, t, "ana", at=first) == one  # at or before `at` counts
    assert progress(client, t, "ana", at="2025-01-02T09:00:00Z") == one
    both = {**PRIORS, "mini.a": 0.846532}
    assert progress(client, t, "ana", at=second) == both == progress(client, t, "ana")

    # an answer sent late (after the others, with an earlier time) counts from its own time
    answer(client, t, "ana", "mini.a.hard", False, answered_at="2024-12-31T10:00:00Z")
    assert progress(client, t, "ana", at="2024-12-31T12:00:00Z") == {**PRIORS,
                                                                    "mini.a": 0.295364}
    tracer = tracer_for(["mini"])
    history = client.get("/v1/learners/ana/history", headers=t.headers).json()["events"]
    events = [AnswerEvent("ana", e["item_id"], tuple(e["skills"]), e["correct"])
              for e in history]
    want = dict(tracer.mastery(tracer.fold(events[:1] + events[2:])))  # the log's order
    assert_same_mastery(progress(client, t, "ana", at="2025-01-01T12:00:00Z"), want)
    now = progress(client, t, "ana")
    assert_same_mastery(now, dict(tracer.mastery(tracer.fold(events))))
    assert progress(client, t, "ana", at="2099-12-31T00:00:00Z") == now


def test_a_placement_counts_once_it_had_ended(make_tenant, make_client) -> None:
    """Before the test's end its answers count as answers; from its end, its result."""
    t = make_tenant(["math"])
    client = make_client()
    item = start(client, t, "ed", course=COURSE)["next"]["item"]
    placement_answer(client, t, "ed", item)
    (event,) = client.get("/v1/learners/ed/history", headers=t.headers).json()["events"]
    r = client.post("/v1/learners/ed/placement/stop", headers=t.headers)
    assert r.status_code == 200, r.text
    ended = datetime.fromisoformat(r.json()["ended_at"])
    answered = datetime.fromisoformat(event["answered_at"])
    assert answered < ended

    tracer = tracer_for(["math"])
    folded = tracer.fold([AnswerEvent("ed", event["item_id"], tuple(event["skills"]),
                                      event["correct"])])
    placed = tracer.with_mastery(folded, r.json()["mastery"])
    before_end = progress(client, t, "ed", at=answered.isoformat())
    assert_same_mastery(before_end, {s: p for s, p in tracer.mastery(folded).items()
                                     if s in before_end})
    at_end = progress(client, t, "ed", at=ended.isoformat())
    assert_same_mastery(at_end, {s: p for s, p in tracer.mastery(placed).items()
                                 if s in at_end})
    assert at_end != before_end and at_end == progress(client, t, "ed")
    prior = progress(client, t, "ed", at=(answered - timedelta(seconds=1)).isoformat())
    assert_same_mastery(prior, {s: p for s, p in tracer.mastery(tracer.new_state()).items()
                                if s in prior})

