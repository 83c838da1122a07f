"""The answer flow over HTTP, on both backends: mastery and next item per answer, idempotency by
event id, state, history paging, next-item selection (target success rate, courses)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from .conftest import (
    TenantKey,
    assert_same_mastery,
    error_of,
    full_history,
    new_event_id,
    replay,
    state_mastery,
)


def answer(client: TestClient, t: TenantKey, learner: str, item: str, correct: bool,
           event_id: str | None = None, **extra: Any) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                    json={"item_id": item, "correct": correct,
                          "event_id": event_id or new_event_id(), **extra})
    assert r.status_code == 200, r.text
    return r.json()


def assert_choice(choice: dict[str, Any], catalog_items: dict[str, list[str]]) -> None:
    assert set(choice) == {"item", "kind", "prompt", "answer", "metadata", "skills",
                           "p_correct", "reason"}, choice
    assert choice["item"] in catalog_items
    assert choice["skills"] == catalog_items[choice["item"]]
    assert 0.0 < choice["p_correct"] < 1.0
    assert isinstance(choice["reason"], str) and choice["reason"]


def items_of(t: TenantKey) -> dict[str, list[str]]:
    from .conftest import pack_document

    out: dict[str, list[str]] = {}
    for pack in t.packs:
        for item in pack_document(pack)["items"]:
            out[item["id"]] = item.get("skills") or [item["skill"]]
    return out


def test_answer_returns_mastery_of_the_items_skills_and_next(client, make_tenant) -> None:
    t = make_tenant(["math"])
    items = items_of(t)
    first = client.get("/v1/learners/ada/next", headers=t.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["learner_id"] == "ada" and len(body["next"]) == 1
    assert_choice(body["next"][0], items)

    events = []
    item = body["next"][0]["item"]
    for i, correct in enumerate([True, False, True, True]):
        event_id = new_event_id()
        out = answer(client, t, "ada", item, correct, event_id, response_ms=5400)
        assert out["learner_id"] == "ada" and out["event_id"] == event_id
        assert out["seq"] == i + 1 and out["correct"] is correct and out["duplicate"] is False
        assert set(out["mastery"]) == set(items[item])
        assert all(0.0 < m < 1.0 for m in out["mastery"].values())
        assert_choice(out["next"], items)
        # the mastery answered is the fold of the log so far
        events.append({"seq": i + 1, "item_id": item, "skills": items[item], "correct": correct})
        want = replay(t.packs, events)
        assert_same_mastery(out["mastery"], {s: want[s] for s in items[item]})
        item = out["next"]["item"]

    state = client.get("/v1/learners/ada/state", headers=t.headers).json()
    assert_same_mastery(state_mastery(state), replay(t.packs, events))


def test_same_event_id_twice_counts_once(client, make_tenant) -> None:
    t = make_tenant()
    event_id = new_event_id()
    one = answer(client, t, "bo", "mini.a.mid", True, event_id)
    two = answer(client, t, "bo", "mini.a.mid", True, event_id)
    assert one["duplicate"] is False and two["duplicate"] is True
    assert {**one, "duplicate": None} == {**two, "duplicate": None}
    # a retry after other answers still gets the original response
    answer(client, t, "bo", "mini.c.1", False)
    three = answer(client, t, "bo", "mini.a.mid", True, event_id)
    assert {**one, "duplicate": True} == three

    history = full_history(client, "bo", t.headers)
    assert [e["seq"] for e in history] == [1, 2]
    assert [e["event_id"] for e in history].count(event_id) == 1
    state = client.get("/v1/learners/bo/state", headers=t.headers).json()
    assert state["answers"] == 2
    assert {s["skill_id"]: s["answers"] for s in state["skills"]}["mini.a"] == 1


@pytest.mark.parametrize("change", [
    {"correct": False},
    {"item_id": "mini.c.1"},
    {"learner": "someone-else"},
])
def test_same_event_id_with_a_different_answer_is_a_conflict(client, make_tenant,
                                                             change) -> None:
    t = make_tenant()
    event_id = new_event_id()
    answer(client, t, "cy", "mini.a.mid", True, event_id)
    change = dict(change)  # the parameter is shared by both backends' runs
    learner = change.pop("learner", "cy")
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                    json={"item_id": "mini.a.mid", "correct": True, "event_id": event_id,
                          **change})
    err = error_of(r, 409, "conflict")
    assert event_id in err["message"]
    assert [e["event_id"] for e in full_history(client, "cy", t.headers)] == [event_id]
    if learner != "cy":  # the conflicting request did not create the other learner
        error_of(client.get(f"/v1/learners/{learner}/state", headers=t.headers), 404)


def test_state_history_and_next_of_a_learner(client, make_tenant) -> None:
    t = make_tenant()
    for endpoint in ("state", "history", "export"):
        error_of(client.get(f"/v1/learners/nobody/{endpoint}", headers=t.headers), 404,
                 "not_found")
    # a learner never seen gets recommendations from the priors, and is not created by it
    r = client.get("/v1/learners/nobody/next", params={"n": 3}, headers=t.headers)
    assert r.status_code == 200, r.text
    nxt = r.json()["next"]
    assert len(nxt) == 3 and len({c["item"] for c in nxt}) == 3
    assert all(c["item"] != "mini.b.1" and c["item"] != "mini.b.2" for c in nxt)  # locked
    error_of(client.get("/v1/learners/nobody/state", headers=t.headers), 404)

    answer(client, t, "dee", "mini.a.easy", True, response_ms=1234.5)
    answer(client, t, "dee", "mini.ac", False)
    state = client.get("/v1/learners/dee/state", headers=t.headers).json()
    assert state["learner_id"] == "dee" and state["answers"] == 2
    assert [s["skill_id"] for s in state["skills"]] == ["mini.a", "mini.b", "mini.c"]
    by_skill = {s["skill_id"]: s for s in state["skills"]}
    assert by_skill["mini.a"]["name"] == "Skill A"
    assert (by_skill["mini.a"]["answers"], by_skill["mini.b"]["answers"],
            by_skill["mini.c"]["answers"]) == (2, 0, 1)
    assert by_skill["mini.b"]["last_answered_at"] is None
    assert by_skill["mini.b"]["mastery"] == pytest.approx(0.2)  # the prior

    history = full_history(client, "dee", t.headers)
    assert [(e["seq"], e["item_id"], e["correct"]) for e in history] == [
        (1, "mini.a.easy", True), (2, "mini.ac", False)]
    assert history[1]["skills"] == ["mini.a", "mini.c"]
    assert history[0]["response_ms"] == 1234.5 and history[1]["response_ms"] is None
    # a skill's last answer is the newest event that practised it, multi-skill ones included
    assert by_skill["mini.a"]["last_answered_at"] == history[1]["answered_at"]
    assert by_skill["mini.c"]["last_answered_at"] == history[1]["answered_at"]
    assert history[0]["answered_at"] != history[1]["answered_at"]
    for e in history:  # answered when received, by default
        assert e["answered_at"] == e["received_at"]
        assert parse_time(e["received_at"]) <= datetime.now(UTC)

    r = client.get("/v1/learners/dee/next", params={"n": 2}, headers=t.headers)
    assert r.status_code == 200 and len(r.json()["next"]) == 2


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert moment.utcoffset() is not None, f"{text} has no time zone"
    return moment


@pytest.mark.parametrize("answered_at", [
    "2026-03-01T10:00:00+02:00", "2026-03-01T10:00:00-05:30", "2026-03-01T10:00:00Z"])
def test_answered_at_keeps_its_instant(client, make_tenant, answered_at) -> None:
    """The time an answer was given is the same instant when read back, whatever the offset
    the client sent it with."""
    t = make_tenant()
    answer(client, t, "ida", "mini.c.1", True, answered_at=answered_at)
    (event,) = full_history(client, "ida", t.headers)
    sent = datetime.fromisoformat(answered_at.replace("Z", "+00:00"))
    assert parse_time(event["answered_at"]) == sent, \
        f"answered_at {answered_at} came back as {event['answered_at']}"
    state = client.get("/v1/learners/ida/state", headers=t.headers).json()
    last = {s["skill_id"]: s["last_answered_at"] for s in state["skills"]}["mini.c"]
    assert parse_time(last) == sent


def test_history_pages_with_after_and_next_after(client, make_tenant) -> None:
    t = make_tenant()
    ids = [answer(client, t, "eve", "mini.c.1", i % 2 == 0)["event_id"] for i in range(7)]

    def page(after: int, limit: int) -> dict[str, Any]:
        r = client.get("/v1/learners/eve/history", params={"after": after, "limit": limit},
                       headers=t.headers)
        assert r.status_code == 200, r.text
        return r.json()

    p1 = page(0, 3)
    assert [e["seq"] for e in p1["events"]] == [1, 2, 3] and p1["next_after"] == 3
    p2 = page(p1["next_after"], 3)
    assert [e["seq"] for e in p2["events"]] == [4, 5, 6] and p2["next_after"] == 6
    p3 = page(p2["next_after"], 3)
    assert [e["seq"] for e in p3["events"]] == [7] and p3["next_after"] is None
    assert [e["event_id"] for e in p1["events"] + p2["events"] + p3["events"]] == ids
    # a last page that is exactly full says there is no more
    assert page(4, 3)["next_after"] is None and len(page(4, 3)["events"]) == 3
    assert page(7, 3) == {"learner_id": "eve", "events": [], "next_after": None}
    assert page(0, 1000)["next_after"] is None
    for bad in ({"after": -1}, {"limit": 0}, {"limit": 1001}, {"after": "x"}):
        error_of(client.get("/v1/learners/eve/history", params=bad, headers=t.headers), 422,
                 "validation_error")


@pytest.mark.parametrize(("target", "expected"), [
    (0.25, "mini.a.hard"), (0.45, "mini.a.mid"), (0.7, "mini.a.easy")])
def test_target_success_per_request(client, make_tenant, target, expected) -> None:
    t = make_tenant()
    r = client.get("/v1/learners/fay/next", params={"target": target, "course": "mini.course.a"},
                   headers=t.headers)
    assert r.status_code == 200, r.text
    assert r.json()["next"][0]["item"] == expected
    # also as the answer's override (for the item after it): one answer on skill C leaves
    # skill A's predictions as they were
    out = answer(client, t, "fay", "mini.c.1", True, target_success=target)
    assert out["next"]["item"] == expected, out["next"]


@pytest.mark.parametrize(("default", "expected"), [(0.25, "mini.a.hard"), (0.7, "mini.a.easy")])
def test_target_success_tenant_default(client, make_tenant, default, expected) -> None:
    t = make_tenant(target_success=default)
    r = client.get("/v1/learners/gus/next", params={"course": "mini.course.a"},
                   headers=t.headers)
    assert r.status_code == 200, r.text
    choice = r.json()["next"][0]
    assert choice["item"] == expected, choice
    assert f"target {default:.2f}" in choice["reason"]
    out = answer(client, t, "gus", "mini.c.1", True)
    assert out["next"]["item"] == expected
    # the per-request value wins over the tenant's
    other = "mini.a.easy" if expected == "mini.a.hard" else "mini.a.hard"
    other_target = 0.7 if default == 0.25 else 0.25
    r = client.get("/v1/learners/gus/next",
                   params={"course": "mini.course.a", "target": other_target},
                   headers=t.headers)
    assert r.json()["next"][0]["item"] == other


def test_next_filters_by_course(client, make_tenant) -> None:
    t = make_tenant()
    r = client.get("/v1/learners/hal/next", params={"course": "mini.course.c", "n": 10},
                   headers=t.headers)
    assert r.status_code == 200, r.text
    assert [c["item"] for c in r.json()["next"]] == ["mini.c.1"]
    # course B's only skill needs A, which course B does not teach and hal has not learned:
    # A's own items come first (never an empty `next`), marked as outside the course
    r = client.get("/v1/learners/hal/next", params={"course": "mini.course.b", "n": 5},
                   headers=t.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {c["item"] for c in body["next"]} == {"mini.a.easy", "mini.a.mid", "mini.a.hard"}
    assert all(c["outside_course"] for c in body["next"]) and not body["complete"]
    assert body["next"][0]["reason"].startswith("outside course 'mini.course.b'")
    # once A is mastered, B opens
    for _ in range(8):
        answer(client, t, "hal", "mini.a.hard", True)
    r = client.get("/v1/learners/hal/next", params={"course": "mini.course.b", "n": 5},
                   headers=t.headers)
    assert {c["item"] for c in r.json()["next"]} == {"mini.b.1", "mini.b.2"}
    err = error_of(client.get("/v1/learners/hal/next", params={"course": "nope"},
                              headers=t.headers), 404, "not_found")
    assert "nope" in err["message"]
    error_of(client.get("/v1/learners/new-one/next", params={"course": "nope"},
                        headers=t.headers), 404, "not_found")
