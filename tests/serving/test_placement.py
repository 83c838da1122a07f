"""Placement tests over HTTP, on both backends: a full test on the math pack's calibrated
items, resumed by another app instance, idempotent answers, the placed state reproduced by a
rebuild from the log, export and erasure, and a learner who skips placement."""

from __future__ import annotations

import math
from typing import Any

import jsonschema_rs
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from engine.events import AnswerEvent
from engine.placement import PlacementSession, SkillSession

from .conftest import (
    Backend,
    TenantKey,
    assert_same_mastery,
    error_of,
    full_history,
    make_tenant_on,
    new_event_id,
    pack_document,
    state_mastery,
    tracer_for,
)
from .test_bad_input import statement
from .test_erasure_on_disk import distinctive_id, sqlite_db, sqlite_files, traces  # noqa: F401

COURSE = "math.course.whole-numbers"
#: the simulated learner answers right exactly the items easier than this
ABILITY = -0.7
DIFFICULTY = {i["id"]: i["difficulty"] for i in pack_document("math")["items"]}


def start(client: TestClient, t: TenantKey, learner: str, **body: Any) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/placement", headers=t.headers,
                    json={"course": COURSE, **body})
    assert r.status_code == 201, r.text
    return r.json()


def answer(client: TestClient, t: TenantKey, learner: str, item: str,
           event_id: str | None = None) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                    json={"item_id": item, "correct": DIFFICULTY[item] < ABILITY,
                          "event_id": event_id or new_event_id()})
    assert r.status_code == 200, r.text
    return r.json()


def take(client: TestClient, t: TenantKey, learner: str, item: str,
         limit: int = 100) -> dict[str, Any]:
    """Answer from ``item`` on until the test has ended; the last answer's response."""
    for _ in range(limit):
        response = answer(client, t, learner, item)
        placement = client.get(f"/v1/learners/{learner}/placement", headers=t.headers).json()
        if placement["status"] != "running":
            return response
        assert response["next"] == placement["next"]  # the answer gives the test's item
        item = response["next"]["item"]
    raise AssertionError("the placement does not end")


def placed_mastery(t: TenantKey, learner: str, client: TestClient) -> dict[str, float]:
    """The learner's state computed here from its history and placement, by the rule of
    api.placement: the placement answers folded, the placement's masteries set, the later
    answers folded on."""
    placement = client.get(f"/v1/learners/{learner}/placement", headers=t.headers).json()
    tracer = tracer_for(t.packs)
    events = [AnswerEvent(learner, e["item_id"], tuple(e["skills"]), e["correct"])
              for e in full_history(client, learner, t.headers)]
    n = placement["items_used"]
    state = tracer.with_mastery(tracer.fold(events[:n]), placement["mastery"])
    return dict(tracer.mastery(tracer.fold(events[n:], start=state)))


def test_a_full_placement_sets_the_starting_state(client, make_tenant) -> None:
    t = make_tenant(["math"])
    first = start(client, t, "ada", max_length=10, se_target=None)
    assert first["status"] == "running" and first["items_used"] == 0
    assert first["course"] == COURSE and first["mastery"] is None
    # no answer yet: the prior's mean, shown as 0.0 (not the -0.0 rounding noise gave)
    assert first["theta"] == 0.0 and math.copysign(1.0, first["theta"]) == 1.0
    assert first["next"]["reason"].startswith("placement test, item 1 of at most 10")
    assert set(first["next"]) >= {"item", "kind", "prompt", "answer", "skills", "p_correct"}

    last = take(client, t, "ada", first["next"]["item"])
    done = client.get("/v1/learners/ada/placement", headers=t.headers).json()
    assert done["status"] == "finished" and done["items_used"] == 10 == len(done["items"])
    assert len(set(done["items"])) == 10 and done["next"] is None and done["ended_at"]
    # a learner who knows the items below -0.7: the estimate near it, easy skills mastered,
    # the hardest not
    assert -1.5 < done["theta"] < 0.1 and 0 < done["se"] < 1
    mastery = done["mastery"]
    assert set(mastery) <= set(pack_document("math")["courses"][0]["skills"])
    assert mastery["math.counting"] > 0.6 > 0.4 > mastery["math.negative-numbers"]
    assert (mastery["math.counting"] > mastery["math.add-within-100"]
            > mastery["math.negative-numbers"])
    # the answer that ended the test shows the placed state and practice's next exercise
    for skill, p in last["mastery"].items():
        assert p == pytest.approx(mastery[skill], abs=1e-6)
    assert last["next"] is not None, last.get("reason")
    assert not last["next"]["reason"].startswith("placement")
    # practice goes on from the placed state
    answer(client, t, "ada", last["next"]["item"])
    state = client.get("/v1/learners/ada/state", headers=t.headers).json()
    assert_same_mastery(state_mastery(state), placed_mastery(t, "ada", client))


def test_a_placement_resumes_in_another_app_after_a_restart(make_client, make_tenant) -> None:
    t = make_tenant(["math"])
    a = make_client()
    item = start(a, t, "bo")["next"]["item"]
    for _ in range(2):
        item = answer(a, t, "bo", item)["next"]["item"]
    b = make_client()  # another worker, or the server restarted: nothing held in memory
    resumed = b.get("/v1/learners/bo/placement", headers=t.headers).json()
    assert resumed["status"] == "running" and resumed["items_used"] == 2
    assert resumed["next"]["item"] == item
    # GET /next gives the test's item too, whatever the course asked
    nxt = b.get("/v1/learners/bo/next", params={"course": "math.course.fractions", "n": 3},
                headers=t.headers).json()
    assert nxt == {"learner_id": "bo", "course": COURSE, "next": [resumed["next"]]}
    take(b, t, "bo", item)
    assert a.get("/v1/learners/bo/placement", headers=t.headers).json()["status"] == "finished"


def test_placement_answers_are_idempotent_and_checked(client, make_tenant) -> None:
    t = make_tenant(["math"])
    item = start(client, t, "cy")["next"]["item"]
    event = new_event_id()
    once = answer(client, t, "cy", item, event)
    again = answer(client, t, "cy", item, event)
    assert again == {**once, "duplicate": True}
    assert len(full_history(client, "cy", t.headers)) == 1
    placement = client.get("/v1/learners/cy/placement", headers=t.headers).json()
    assert placement["items_used"] == 1 and placement["next"]["item"] == once["next"]["item"]
    # an answer to another item than the test's: refused, nothing logged
    other = next(i for i in DIFFICULTY if i != once["next"]["item"])
    r = client.post("/v1/learners/cy/answers", headers=t.headers,
                    json={"item_id": other, "correct": True, "event_id": new_event_id()})
    assert "placement" in error_of(r, 409, "conflict")["message"]
    assert len(full_history(client, "cy", t.headers)) == 1


def test_a_rebuild_from_the_log_reproduces_the_placed_state(client, make_tenant) -> None:
    t = make_tenant(["math"])
    last = take(client, t, "di", start(client, t, "di", max_length=6)["next"]["item"])
    nxt = answer(client, t, "di", last["next"]["item"])["next"]["item"]
    answer(client, t, "di", nxt)
    cached = state_mastery(client.get("/v1/learners/di/state", headers=t.headers).json())
    service = client.app.state.service  # type: ignore[attr-defined]
    # the cached state is exactly the one folded from the log and the placement row
    assert service.rebuild_all(t.tenant) == {"current": 1}
    service.store.drop(t.tenant.id, "di")  # the cache lost: rebuilt on the next read
    rebuilt = state_mastery(client.get("/v1/learners/di/state", headers=t.headers).json())
    assert rebuilt == cached
    assert_same_mastery(rebuilt, placed_mastery(t, "di", client))
    # the placement answers are not counted twice: folding all the answers onto the placed
    # state is another state
    tracer = tracer_for(t.packs)
    placement = client.get("/v1/learners/di/placement", headers=t.headers).json()
    events = [AnswerEvent("di", e["item_id"], tuple(e["skills"]), e["correct"])
              for e in full_history(client, "di", t.headers)]
    twice = dict(tracer.mastery(tracer.fold(
        events, start=tracer.with_mastery(tracer.new_state(), placement["mastery"]))))
    assert any(abs(twice[s] - rebuilt[s]) > 1e-3 for s in placement["mastery"])


def test_stopping_early_ends_the_test_with_what_it_has(client, make_tenant) -> None:
    t = make_tenant(["math"])
    item = start(client, t, "ed")["next"]["item"]
    answer(client, t, "ed", item)
    before = state_mastery(client.get("/v1/learners/ed/state", headers=t.headers).json())
    r = client.post("/v1/learners/ed/placement/stop", headers=t.headers)
    assert r.status_code == 200, r.text
    stopped = r.json()
    assert stopped["status"] == "stopped" and stopped["items_used"] == 1
    assert stopped["mastery"] and stopped["next"] is None
    # the state read now is the placed one, not the one cached before the stop
    after = state_mastery(client.get("/v1/learners/ed/state", headers=t.headers).json())
    assert after != before
    assert_same_mastery(after, placed_mastery(t, "ed", client))
    error_of(client.post("/v1/learners/ed/placement/stop", headers=t.headers), 409, "conflict")
    # the learner now practises freely
    free = next(i for i in DIFFICULTY if i.startswith("math.counting"))
    answer(client, t, "ed", free)


def test_stopped_before_any_answer_the_learner_starts_from_the_prior(client,
                                                                     make_tenant) -> None:
    t = make_tenant(["math"])
    start(client, t, "fa")
    stopped = client.post("/v1/learners/fa/placement/stop", headers=t.headers).json()
    assert stopped["status"] == "stopped" and stopped["mastery"] is None
    assert stopped["theta"] is None and stopped["items_used"] == 0
    item = next(iter(DIFFICULTY))
    response = answer(client, t, "fa", item)
    tracer = tracer_for(t.packs)
    skills = pack_document("math")["items"][0]["skills"]
    want = tracer.mastery(tracer.update(tracer.new_state(), AnswerEvent(
        "fa", item, tuple(skills), DIFFICULTY[item] < ABILITY)), skills)
    assert_same_mastery(response["mastery"], want)


def test_skipping_placement_starts_from_the_prior(client, make_tenant) -> None:
    t = make_tenant(["math"])
    item = next(iter(DIFFICULTY))
    answer(client, t, "gu", item)
    error_of(client.get("/v1/learners/gu/placement", headers=t.headers), 404, "not_found")
    export = client.get("/v1/learners/gu/export", headers=t.headers).json()
    assert export["placement"] is None
    tracer = tracer_for(t.packs)
    events = [AnswerEvent("gu", e["item_id"], tuple(e["skills"]), e["correct"])
              for e in full_history(client, "gu", t.headers)]
    state = client.get("/v1/learners/gu/state", headers=t.headers).json()
    assert_same_mastery(state_mastery(state), dict(tracer.mastery(tracer.fold(events))))
    # and, having answered, can no longer take one
    r = client.post("/v1/learners/gu/placement", headers=t.headers, json={"course": COURSE})
    assert "new learner" in error_of(r, 409, "conflict")["message"]


def test_export_lists_the_placement_and_erasure_removes_it(client, make_tenant,
                                                           backend: Backend) -> None:
    t = make_tenant(["math"])
    take(client, t, "hu", start(client, t, "hu", max_length=4)["next"]["item"])
    placement = client.get("/v1/learners/hu/placement", headers=t.headers).json()
    export = client.get("/v1/learners/hu/export", headers=t.headers).json()
    assert export["placement"] == placement
    assert [e["policy"] for e in export["events"]] == ["placement"] * 3 + [
        export["events"][-1]["policy"]]
    assert client.delete("/v1/learners/hu", headers=t.headers).status_code == 204
    error_of(client.get("/v1/learners/hu/placement", headers=t.headers), 404, "not_found")
    with backend.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM placements WHERE tenant_id = :t "
                                    "AND learner_id = 'hu'"), {"t": t.tenant.id}).scalar_one()
    assert left == 0
    # erased, the learner is new again: it may take a placement
    start(client, t, "hu")


def test_placement_refusals(client, make_tenant) -> None:
    t = make_tenant(["math"])
    r = client.post("/v1/learners/io/placement", headers=t.headers,
                    json={"course": "no.such.course"})
    error_of(r, 404, "not_found")
    first = start(client, t, "io")
    assert start(client, t, "io") == first  # the same start again (a retry): the same test
    r = client.post("/v1/learners/io/placement", headers=t.headers,
                    json={"course": COURSE, "max_length": 5})
    assert "already" in error_of(r, 409, "conflict")["message"]
    error_of(client.post("/v1/learners/nobody/placement/stop", headers=t.headers), 404)
    r = client.post("/v1/learners/io/placement", headers=t.headers,
                    json={"course": COURSE, "max_length": 0})
    error_of(r, 422)
    # a batch of answers is refused for a learner in a placement (one at a time), whole
    item = client.get("/v1/learners/io/placement", headers=t.headers).json()["next"]["item"]
    batch = [statement(learner, object={"id": f"https://example.org/items/{item}"})
             for learner in ("jo", "io")]
    r = client.post("/v1/xapi/statements", headers=t.headers, json=batch)
    assert "placement" in error_of(r, 409, "conflict")["message"]
    error_of(client.get("/v1/learners/jo/state", headers=t.headers), 404)
    mini = make_tenant()  # a content without calibrated items cannot place
    r = client.post("/v1/learners/jo/placement", headers=mini.headers, json={})
    assert "calibrated" in error_of(r, 409, "conflict")["message"]


def course_removed(client: TestClient, t: TenantKey) -> None:
    """Replace the math pack with one without the placement's course."""
    document = pack_document("math")
    document["courses"] = [c for c in document["courses"] if c["id"] != COURSE]
    r = client.post("/v1/content/packs", headers=t.headers, json=document)
    assert r.status_code == 200, r.text


def assert_state_is_the_answers(client: TestClient, t: TenantKey, learner: str) -> None:
    """No placement result: the state is what the answers told the tracer."""
    tracer = tracer_for(t.packs)
    events = [AnswerEvent(learner, e["item_id"], tuple(e["skills"]), e["correct"])
              for e in full_history(client, learner, t.headers)]
    state = client.get(f"/v1/learners/{learner}/state", headers=t.headers).json()
    assert_same_mastery(state_mastery(state), dict(tracer.mastery(tracer.fold(events))))


def test_a_test_whose_content_changed_is_abandoned_at_the_next_read(client,
                                                                    make_tenant) -> None:
    """Its course gone, the test cannot go on: the export shows it as stored, and the next
    read ends it (`abandoned`, with the reason, no result); practice then goes on."""
    t = make_tenant(["math"])
    item = start(client, t, "ky")["next"]["item"]
    answer(client, t, "ky", answer(client, t, "ky", item)["next"]["item"])
    course_removed(client, t)
    # the export never depends on resuming anything: the row as stored
    r = client.get("/v1/learners/ky/export", headers=t.headers)
    assert r.status_code == 200, r.text
    exported = r.json()["placement"]
    assert exported["status"] == "running" and exported["items_used"] == 2
    assert exported["next"] is None and exported["reason"] is None
    r = client.get("/v1/learners/ky/placement", headers=t.headers)
    assert r.status_code == 200, r.text
    ended = r.json()
    assert ended["status"] == "abandoned" and ended["mastery"] is None
    assert ended["items_used"] == 2 and ended["next"] is None and ended["ended_at"]
    assert COURSE in ended["reason"]
    assert client.get("/v1/learners/ky/export", headers=t.headers).json()["placement"] == ended
    error_of(client.post("/v1/learners/ky/placement/stop", headers=t.headers), 409)
    nxt = client.get("/v1/learners/ky/next", headers=t.headers)
    assert nxt.status_code == 200 and nxt.json()["next"], nxt.text
    assert not nxt.json()["next"][0]["reason"].startswith("placement")
    answer(client, t, "ky", nxt.json()["next"][0]["item"])
    assert_state_is_the_answers(client, t, "ky")


@pytest.mark.parametrize("first", ["next", "answer", "stop"])
def test_every_request_carries_on_after_the_content_changed(client, make_tenant,
                                                             first: str) -> None:
    """GET /next, an answer or a stop, whichever comes first after the course left the
    content, ends the test (abandoned) and is answered as if no test ran."""
    t = make_tenant(["math"])
    item = start(client, t, "ly")["next"]["item"]
    item = answer(client, t, "ly", item)["next"]["item"]
    course_removed(client, t)
    if first == "next":
        r = client.get("/v1/learners/ly/next", headers=t.headers)
        assert r.status_code == 200 and r.json()["next"], r.text
    elif first == "answer":
        response = answer(client, t, "ly", item)  # the item is still in the content
        assert response["next"] is None or not response["next"]["reason"].startswith(
            "placement")
    else:
        r = client.post("/v1/learners/ly/placement/stop", headers=t.headers)
        assert r.status_code == 200 and r.json()["status"] == "abandoned", r.text
    placement = client.get("/v1/learners/ly/placement", headers=t.headers).json()
    assert placement["status"] == "abandoned" and placement["mastery"] is None
    assert_state_is_the_answers(client, t, "ly")


def test_an_opted_out_learner_gets_no_adaptive_test(client, make_tenant) -> None:
    """Opted out of personalization: no placement starts (409); one running when the learner
    opts out is abandoned at the next request, which is served as for any opted-out learner."""
    t = make_tenant(["math"])
    r = client.put("/v1/learners/ma/consent", headers=t.headers,
                   json={"personalization": False})
    assert r.status_code == 200, r.text
    r = client.post("/v1/learners/ma/placement", headers=t.headers, json={"course": COURSE})
    assert "personalization" in error_of(r, 409, "conflict")["message"]
    error_of(client.get("/v1/learners/ma/placement", headers=t.headers), 404)
    # a test running when the learner opts out
    item = start(client, t, "mo")["next"]["item"]
    item = answer(client, t, "mo", item)["next"]["item"]
    r = client.put("/v1/learners/mo/consent", headers=t.headers,
                   json={"personalization": False})
    assert r.status_code == 200, r.text
    response = answer(client, t, "mo", item)
    assert response["next"] is None or not response["next"]["reason"].startswith("placement")
    placement = client.get("/v1/learners/mo/placement", headers=t.headers).json()
    assert placement["status"] == "abandoned" and placement["mastery"] is None
    assert "personalization" in placement["reason"] and placement["items_used"] == 1
    assert_state_is_the_answers(client, t, "mo")


def test_placement_answers_keep_the_tests_course_and_time(client, make_tenant) -> None:
    """During a test its course is the learner's: an answer naming another is refused (409,
    nothing logged, the course unchanged); so is an answer timed before the test began."""
    t = make_tenant(["math"])
    item = start(client, t, "nu")["next"]["item"]
    for extra in ({"course": "math.course.times-tables"},
                  {"answered_at": "2000-01-01T00:00:00Z"}):
        r = client.post("/v1/learners/nu/answers", headers=t.headers,
                        json={"item_id": item, "correct": True, "event_id": new_event_id(),
                              **extra})
        error_of(r, 409, "conflict")
    assert full_history(client, "nu", t.headers) == []
    placement = client.get("/v1/learners/nu/placement", headers=t.headers).json()
    assert placement["course"] == COURSE and placement["items_used"] == 0
    # the test's own course is fine; and so is the learner's course afterwards
    r = client.post("/v1/learners/nu/answers", headers=t.headers,
                    json={"item_id": item, "correct": True, "event_id": new_event_id(),
                          "course": COURSE})
    assert r.status_code == 200 and r.json()["course"] == COURSE, r.text
    # a boolean is not a length
    r = client.post("/v1/learners/ny/placement", headers=t.headers,
                    json={"course": COURSE, "max_length": True})
    error_of(r, 422)


def test_max_length_is_an_integer_as_the_document_reads_one(client, make_tenant) -> None:
    """The document says `integer`, and JSON Schema counts 76.0 as one: the server refused it
    (StrictInt; schemathesis: a valid request rejected). A whole-number float is its integer
    now; a boolean (`true` was taken as 1 once), a fraction or a string is still a 422, and
    the document rejects exactly those."""
    t = make_tenant(["math"])
    schema = client.get("/openapi.json").json()["components"]["schemas"]["PlacementIn"][
        "properties"]["max_length"]
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 100)
    for k, (value, takes) in enumerate(((76.0, True), (76, True), (100.0, True), (True, False),
                                        (7.5, False), ("7", False), (101.0, False),
                                        (0.0, False), (1e300, False))):
        r = client.post(f"/v1/learners/wn-{k}/placement", headers=t.headers,
                        json={"course": COURSE, "max_length": value})
        assert r.status_code == (201 if takes else 422), (value, r.text)
        assert jsonschema_rs.is_valid(schema, value) == takes, value
    with client.app.state.service.engine.connect() as conn:
        lengths = conn.execute(sa.text("SELECT learner_id, max_length FROM placements "
                                       "WHERE tenant_id = :t ORDER BY learner_id"),
                               {"t": t.tenant.id}).all()
    assert [tuple(row) for row in lengths] == [("wn-0", 76), ("wn-1", 76), ("wn-2", 100)]


def test_se_target_is_a_json_number(client, make_tenant) -> None:
    """`se_target` is a number in the document; the lax float took `true` as 1.0 and "0.3" as
    0.3."""
    t = make_tenant(["math"])
    for k, (value, takes) in enumerate(((0.3, True), (1, True), (True, False), ("0.3", False))):
        r = client.post(f"/v1/learners/se-{k}/placement", headers=t.headers,
                        json={"course": COURSE, "se_target": value})
        assert r.status_code == (201 if takes else 422), (value, r.text)


@pytest.mark.parametrize("method", ["skills", "theta"])
def test_reads_select_nothing_and_an_answer_selects_once(client, make_tenant, monkeypatch,
                                                         method: str) -> None:
    """The session is restored from the placement row, never replayed: GET /placement,
    GET /next and the export select no item, an answer one (its next)."""
    t = make_tenant(["math"])
    item = start(client, t, "ox", max_length=12, method=method,
                 confidence=None)["next"]["item"]
    for _ in range(4):
        item = answer(client, t, "ox", item)["next"]["item"]
    selected: list[int] = []
    session = SkillSession if method == "skills" else PlacementSession
    real = session._select

    def counted(self: Any) -> int:
        selected.append(self.length)
        return real(self)

    monkeypatch.setattr(session, "_select", counted)
    for path in ("placement", "next", "export"):
        assert client.get(f"/v1/learners/ox/{path}", headers=t.headers).status_code == 200
    assert selected == []
    answer(client, t, "ox", item)
    assert selected == [5]


def test_the_banks_tables_are_bounded_in_bytes_and_by_course(make_client,
                                                             make_tenant) -> None:
    """Tables and knowledge models are kept per course (not per stopping rule or method),
    within the byte budget, the least recently used evicted; a course of more calibrated
    items than the bank limit cannot be placed in."""
    t = make_tenant(["math"])
    # room for one of the math courses' tables and model (85 and 58 items), not two
    client = make_client(placement_cache_bytes=450_000)
    for n, (length, method) in enumerate(((4, "skills"), (5, "theta"), (6, "skills"),
                                          (7, "theta"))):
        start(client, t, f"p{n}", max_length=length, method=method, confidence=None)
    cache = client.app.state.service.placements.tables  # type: ignore[attr-defined]
    kept = cache._kept  # (tenant, content version, course, what)
    assert sorted(key[3] for key in kept) == ["skills", "tables"]
    assert {key[2] for key in kept} == {COURSE} and 0 < cache.bytes <= 450_000
    r = client.post("/v1/learners/pz/placement", headers=t.headers,
                    json={"course": "math.course.times-tables"})
    assert r.status_code == 201, r.text
    # the other course's evicted
    assert {key[2] for key in kept} == {"math.course.times-tables"}
    assert cache.bytes <= 450_000
    small = make_client(max_placement_items=5)
    r = small.post("/v1/learners/qa/placement", headers=t.headers, json={"course": COURSE})
    assert "TUTOR_MAX_PLACEMENT_ITEMS" in error_of(r, 409, "conflict")["message"]


def test_an_erased_placement_leaves_no_trace_in_sqlites_files(
        sqlite_db: Backend) -> None:  # noqa: F811
    t = make_tenant_on(sqlite_db.engine, ["math"])
    learner = distinctive_id()
    with TestClient(create_app(sqlite_db.settings())) as client:
        take(client, t, learner, start(client, t, learner, max_length=4)["next"]["item"])
        assert traces(sqlite_files(sqlite_db), learner), "the learner is not on disk"
        assert client.delete(f"/v1/learners/{learner}", headers=t.headers).status_code == 204
        assert traces(sqlite_files(sqlite_db), learner) == {}
        client.app.state.service.engine.dispose()  # type: ignore[attr-defined]


def test_a_tenants_content_is_bounded_in_items(make_client, make_tenant) -> None:
    """A pack that would take the tenant's content over TUTOR_MAX_CONTENT_ITEMS is refused
    (422, nothing stored), alone or together with the tenant's other packs."""
    t = make_tenant(["math"])
    n = len(pack_document("math")["items"])
    client = make_client(max_content_items=n + 10)
    vocab = pack_document("vocab")
    r = client.post("/v1/content/packs", headers=t.headers, json=vocab)
    assert "TUTOR_MAX_CONTENT_ITEMS" in error_of(r, 422, "invalid_content")["message"]
    small = make_client(max_content_items=n - 1)
    r = small.post("/v1/content/packs", headers=t.headers, json=pack_document("math"))
    assert "TUTOR_MAX_CONTENT_ITEMS" in error_of(r, 422, "invalid_content")["message"]
    packs = client.get("/v1/content/packs", headers=t.headers).json()["packs"]
    assert [p["name"] for p in packs] == ["math-basics"]
    r = client.post("/v1/content/packs", headers=t.headers, json=pack_document("math"))
    assert r.status_code == 200, r.text


def placement_schema(client: TestClient) -> Any:
    """The document's PlacementResponse, its references resolved against the document."""
    spec = client.get("/openapi.json").json()
    return jsonschema_rs.validator_for({"$ref": "#/components/schemas/PlacementResponse",
                                        "components": spec["components"]})


def course_skills(course: str = COURSE) -> list[str]:
    return next(c["skills"] for c in pack_document("math")["courses"] if c["id"] == course)


def test_a_per_skill_placement_reports_every_skill(client, make_tenant) -> None:
    """The default test estimates every skill of the course with its uncertainty, as the
    document says, and its result seeds each of them."""
    t = make_tenant(["math"])
    schema = placement_schema(client)
    first = start(client, t, "pa")
    schema.validate(first)
    assert (first["method"], first["confidence"], first["max_length"], first["se_target"]) \
        == ("skills", 0.9, 20, None)
    skills = course_skills()
    assert sorted(e["skill"] for e in first["skills"]) == sorted(skills)
    requires = {s["id"]: s.get("requires", []) for s in pack_document("math")["skills"]}
    order = [e["skill"] for e in first["skills"]]  # prerequisites first
    for k, skill in enumerate(order):
        assert all(order.index(r) < k for r in requires[skill] if r in order)
    assert all(e["answered"] == 0 and e["status"] == "uncertain" for e in first["skills"])
    assert first["next"]["reason"].startswith("placement test, item 1 of at most 20: the item "
                                              "whose answer tells the most")
    item = first["next"]["item"]
    answer(client, t, "pa", item)
    running = client.get("/v1/learners/pa/placement", headers=t.headers).json()
    schema.validate(running)
    answered = {e["skill"]: e["answered"] for e in running["skills"]}
    assert {s for s, n in answered.items() if n} == set(
        next(i for i in pack_document("math")["items"] if i["id"] == item)["skills"])
    take(client, t, "pa", running["next"]["item"])
    done = client.get("/v1/learners/pa/placement", headers=t.headers).json()
    schema.validate(done)
    assert done["status"] == "finished" and done["theta"] is not None and done["se"] > 0
    # the result seeds every skill of the course, its P(known) kept off certainty
    assert set(done["mastery"]) == set(skills)
    for e in done["skills"]:
        assert done["mastery"][e["skill"]] == pytest.approx(min(max(e["p_known"], 0.01), 0.99),
                                                            abs=1e-6)
        c = first["confidence"]
        assert e["status"] == ("known" if e["p_known"] >= c else "not known"
                               if e["p_known"] <= 1 - c else "uncertain")
    # the learner knows the items easier than -0.7: counting is known, negative numbers not
    known = {e["skill"]: e["p_known"] for e in done["skills"]}
    assert known["math.counting"] > 0.6 > 0.4 > known["math.negative-numbers"]
    assert_same_mastery(state_mastery(client.get("/v1/learners/pa/state",
                                                 headers=t.headers).json()),
                        placed_mastery(t, "pa", client))


def test_a_right_answer_on_a_skill_is_evidence_for_its_prerequisites(client,
                                                                     make_tenant) -> None:
    """Answers propagate over the prerequisite graph: a learner who gets everything right is
    placed as knowing skills the test never asked about, through what builds on them."""
    t = make_tenant(["math"])
    item = start(client, t, "pb", max_length=8, confidence=None)["next"]["item"]
    for _ in range(8):
        r = client.post("/v1/learners/pb/answers", headers=t.headers,
                        json={"item_id": item, "correct": True, "event_id": new_event_id()})
        assert r.status_code == 200, r.text
        placement = client.get("/v1/learners/pb/placement", headers=t.headers).json()
        if placement["status"] != "running":
            break
        item = placement["next"]["item"]
    estimates = placement["skills"]
    assert placement["status"] == "finished"
    requires = {s["id"]: s.get("requires", []) for s in pack_document("math")["skills"]}
    asked = {e["skill"] for e in estimates if e["answered"]}
    # a prerequisite of a skill answered right is known, though never asked about
    inferred = [e for e in estimates
                if not e["answered"] and any(e["skill"] in requires[a] for a in asked)]
    assert inferred, "no prerequisite left unasked: nothing inferred"
    assert all(e["p_known"] > 0.8 for e in inferred), inferred


def test_a_theta_placement_is_as_before(client, make_tenant) -> None:
    t = make_tenant(["math"])
    schema = placement_schema(client)
    first = start(client, t, "pc", method="theta", max_length=12, se_target=0.3)
    schema.validate(first)
    assert first["method"] == "theta" and first["skills"] is None
    assert first["confidence"] is None  # a θ test classifies no skill
    assert first["next"]["reason"].startswith("placement test, item 1 of at most 12: the most "
                                              "informative item for the ability estimate")
    take(client, t, "pc", first["next"]["item"])
    done = client.get("/v1/learners/pc/placement", headers=t.headers).json()
    schema.validate(done)
    assert done["skills"] is None and done["items_used"] <= 12
    practised = {s for i in pack_document("math")["items"] if i["id"] in done["items"]
                 for s in i["skills"]}
    assert set(done["mastery"]) <= set(course_skills()) and set(done["mastery"]) >= practised
    # a confidence is a skills test's stop: refused for a θ test, not silently dropped
    r = client.post("/v1/learners/pd/placement", headers=t.headers,
                    json={"course": COURSE, "method": "theta", "confidence": 0.9})
    assert "confidence" in error_of(r, 422)["message"]
    r = client.post("/v1/learners/pd/placement", headers=t.headers,
                    json={"course": COURSE, "method": "theta", "confidence": None})
    assert r.status_code == 201, r.text


def test_a_per_skill_test_resumes_where_it_was_after_a_restart(make_client,
                                                               make_tenant) -> None:
    t = make_tenant(["math"])
    a = make_client()
    item = start(a, t, "pe", confidence=None)["next"]["item"]
    for _ in range(3):
        item = answer(a, t, "pe", item)["next"]["item"]
    before = a.get("/v1/learners/pe/placement", headers=t.headers).json()
    b = make_client()
    after = b.get("/v1/learners/pe/placement", headers=t.headers).json()
    assert after == before
    # the next answer is taken from the restored session: the same as the first worker's
    assert answer(b, t, "pe", item)["next"]["item"] == \
        b.get("/v1/learners/pe/placement", headers=t.headers).json()["next"]["item"]
    assert a.get("/v1/learners/pe/placement", headers=t.headers).json()["items_used"] == 4


@pytest.mark.parametrize(("body", "status"), [
    ({"method": "irt"}, 422), ({"confidence": 0.5}, 422), ({"confidence": 1}, 422),
    ({"confidence": "0.9"}, 422), ({"confidence": True}, 422), ({"confidence": 0.8}, 201),
])
def test_placement_options_are_checked(client, make_tenant, body: dict[str, Any],
                                       status: int) -> None:
    t = make_tenant(["math"])
    r = client.post("/v1/learners/pf/placement", headers=t.headers,
                    json={"course": COURSE, **body})
    assert r.status_code == status, r.text
    if status == 201:  # the same start again is the same test; another confidence is not
        again = client.post("/v1/learners/pf/placement", headers=t.headers,
                            json={"course": COURSE, **body})
        assert again.json() == r.json()
        other = client.post("/v1/learners/pf/placement", headers=t.headers,
                            json={"course": COURSE, "confidence": 0.9})
        assert "already" in error_of(other, 409, "conflict")["message"]
