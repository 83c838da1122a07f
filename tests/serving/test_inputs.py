"""One id rule at every entry point, and answers that are checked before anything is written:
paths that decode lossily are refused, every accepted id can be addressed in a path, answer
times in the future are refused, a retry must be the same answer (its time included), and an
xAPI batch is all or nothing."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from api.service import Answer

from .conftest import (
    MINI_PACK,
    TenantKey,
    assert_same_mastery,
    error_of,
    full_history,
    new_event_id,
    replay,
    state_mastery,
)

ANSWERED = "http://adlnet.gov/expapi/verbs/answered"


def learner() -> str:
    return f"in-{uuid.uuid4().hex[:10]}"


def body(**changes: Any) -> dict[str, Any]:
    return {"item_id": "mini.a.mid", "correct": True, "event_id": new_event_id(), **changes}


def statement(name: str, item: str = "mini.c.1", **changes: Any) -> dict[str, Any]:
    return {"id": new_event_id(), "actor": {"account": {"name": name}},
            "verb": {"id": ANSWERED}, "object": {"id": f"https://example.org/items/{item}"},
            "result": {"success": True}, **changes}


def learners_of(backend, t: TenantKey) -> list[str]:
    with backend.engine.connect() as conn:
        return sorted(conn.execute(sa.text("SELECT learner_id FROM learners WHERE tenant_id = :t"),
                                   {"t": t.tenant.id}).scalars())


def events_of(backend, t: TenantKey) -> int:
    with backend.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM events WHERE tenant_id = :t"),
                            {"t": t.tenant.id}).scalar_one()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------- paths
@pytest.mark.parametrize("raw", ["%FF", "%C3", "%80", "x%C3%28y", "%ED%A0%80", "a%FFb"])
def test_a_path_that_is_not_utf8_is_refused(client, make_tenant, backend, raw) -> None:
    """``%FF``, ``%C3`` and ``%80`` used to become the same learner U+FFFD: answers crossed
    between them and erasing one erased the others."""
    t = make_tenant()
    for method, path in (("POST", f"/v1/learners/{raw}/answers"),
                         ("GET", f"/v1/learners/{raw}/state"),
                         ("GET", f"/v1/learners/{raw}/next"),
                         ("DELETE", f"/v1/learners/{raw}")):
        r = client.request(method, path, headers=t.headers,
                           json=body() if method == "POST" else None)
        err = error_of(r, 400, "invalid_path")
        assert "UTF-8" in err["message"]
    assert learners_of(backend, t) == []


def test_percent_encoded_utf8_is_one_learner_of_its_own(client, make_tenant, backend) -> None:
    t = make_tenant()
    for name in ("é", "ü", "日本"):
        r = client.post(f"/v1/learners/{quote(name)}/answers", headers=t.headers, json=body())
        assert r.status_code == 200, r.text
        assert r.json()["learner_id"] == name and r.json()["seq"] == 1
    assert learners_of(backend, t) == sorted(["é", "ü", "日本"])
    # the replacement character itself is not an id: it is what lossy decoding leaves
    error_of(client.get(f"/v1/learners/{quote(chr(0xFFFD))}/state", headers=t.headers), 422,
             "validation_error")


@pytest.mark.parametrize("name", ["a/b", "/", "a/", ".", "..", "a\ufffdb"])
def test_ids_a_path_segment_cannot_carry_are_refused_everywhere(client, make_tenant, backend,
                                                               name) -> None:
    """An xAPI actor named ``a/b`` used to be stored, and then could never be read, exported
    or erased: every entry point refuses such ids."""
    t = make_tenant()
    err = error_of(client.post("/v1/xapi/statements", headers=t.headers,
                               json=statement(name)), 422, "validation_error")
    assert "name" in err["message"]
    r = client.post(f"/v1/learners/{quote(name, safe='')}/answers", headers=t.headers,
                    json=body())
    assert 400 <= r.status_code < 500 and r.status_code != 200
    error_of(r, r.status_code)
    assert learners_of(backend, t) == []
    # nor as an item, skill, course or pack id of a pack
    pack = {**MINI_PACK, "name": "slashed", "skills": [
        {"id": name, "name": "S", "bkt": {"prior": 0.3, "learn": 0.2, "guess": 0.2,
                                          "slip": 0.1}}], "items": [], "courses": []}
    error_of(client.post("/v1/content/packs", headers=t.headers, json=pack), 422)


@pytest.mark.parametrize("name", ["a b", "a?b", "a#b", "a%b", "100%", "...", "a.b", "é",
                                  "a+b", "a;b", "~x", "a\\b"])
def test_every_accepted_id_can_be_read_exported_and_erased(client, make_tenant, name) -> None:
    t = make_tenant()
    r = client.post("/v1/xapi/statements", headers=t.headers, json=statement(name))
    assert r.status_code == 200, r.text
    path = f"/v1/learners/{quote(name, safe='')}"
    for endpoint in ("state", "history", "export"):
        r = client.get(f"{path}/{endpoint}", headers=t.headers)
        assert r.status_code == 200, (endpoint, r.text)
        assert r.json()["learner_id"] == name
    assert client.delete(path, headers=t.headers).status_code == 204
    error_of(client.get(f"{path}/state", headers=t.headers), 404)


# ---------------------------------------------------------------------- answer times
def test_answer_time_in_the_future_is_refused(client, make_tenant, backend) -> None:
    """A 2099 timestamp used to be accepted, and pinned the skill's last answer there."""
    t = make_tenant()
    lee = learner()
    now = datetime.now(UTC)
    for future in (now + timedelta(days=1), now + timedelta(minutes=6),
                   datetime(2099, 1, 1, tzinfo=UTC)):
        err = error_of(client.post(f"/v1/learners/{lee}/answers", headers=t.headers,
                                   json=body(answered_at=iso(future))), 422, "validation_error")
        assert "answered_at" in err["message"] and "future" in err["message"]
        err = error_of(client.post("/v1/xapi/statements", headers=t.headers,
                                   json=statement(lee, timestamp=iso(future))), 422,
                       "validation_error")
        assert "future" in err["message"]
    assert learners_of(backend, t) == []
    # a clock a little ahead is within the allowance (5 minutes by default)
    r = client.post(f"/v1/learners/{lee}/answers", headers=t.headers,
                    json=body(answered_at=iso(now + timedelta(minutes=2))))
    assert r.status_code == 200, r.text


def test_clock_skew_allowance_is_a_setting(make_client, make_tenant) -> None:
    client = make_client(max_clock_skew_seconds=3600)
    t = make_tenant()
    ahead = datetime.now(UTC) + timedelta(minutes=30)
    r = client.post(f"/v1/learners/{learner()}/answers", headers=t.headers,
                    json=body(answered_at=iso(ahead)))
    assert r.status_code == 200, r.text
    strict = make_client(max_clock_skew_seconds=0)
    error_of(strict.post(f"/v1/learners/{learner()}/answers", headers=t.headers,
                         json=body(answered_at=iso(datetime.now(UTC) + timedelta(seconds=30)))),
             422, "validation_error")


# ---------------------------------------------------------------------- retries
@pytest.mark.parametrize(("first", "retry", "same"), [
    ({"answered_at": "2026-03-01T10:00:00Z"}, {"answered_at": "2026-03-01T10:00:00Z"}, True),
    ({"answered_at": "2026-03-01T10:00:00Z"}, {"answered_at": "2026-03-01T11:00:00+01:00"},
     True),  # the same instant
    ({"answered_at": "2026-03-01T10:00:00Z"}, {"answered_at": "2026-03-01T10:00:01Z"}, False),
    ({"answered_at": "2026-03-01T10:00:00Z"}, {}, False),
    ({}, {}, True),
    ({}, {"answered_at": "2026-03-01T10:00:00Z"}, False),
    ({"response_ms": 1200}, {"response_ms": 1200}, True),
    ({"response_ms": 1200}, {"response_ms": 1300}, False),
    ({"response_ms": 1200}, {}, False),
])
def test_a_retry_must_be_the_same_answer_time_included(client, make_tenant, first, retry,
                                                      same) -> None:
    t = make_tenant()
    lee = learner()
    event_id = new_event_id()
    r = client.post(f"/v1/learners/{lee}/answers", headers=t.headers,
                    json=body(event_id=event_id, **first))
    assert r.status_code == 200, r.text
    again = client.post(f"/v1/learners/{lee}/answers", headers=t.headers,
                        json=body(event_id=event_id, **retry))
    if same:
        assert again.status_code == 200, again.text
        assert again.json() == {**r.json(), "duplicate": True}
    else:
        err = error_of(again, 409, "conflict")
        assert event_id in err["message"]
    assert len(full_history(client, lee, t.headers)) == 1


# ---------------------------------------------------------------------- xAPI batches
def post_batch(client, t: TenantKey, statements: list[dict[str, Any]]):
    return client.post("/v1/xapi/statements", headers=t.headers, json=statements)


@pytest.mark.parametrize(("bad", "status", "code"), [
    ({"object": {"id": "https://example.org/items/no-such-item"}}, 404, "not_found"),
    ({"verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"}}, 422, "unsupported_verb"),
    ({"result": {"success": True, "duration": "soon"}}, 422, "validation_error"),
    ({"timestamp": "2099-01-01T00:00:00Z"}, 422, "validation_error"),
    ({"actor": {"account": {"name": "a/b"}}}, 422, "validation_error"),
    ({"id": "not-a-uuid"}, 422, "validation_error"),
])
def test_an_xapi_batch_with_a_bad_last_statement_records_nothing(client, make_tenant, backend,
                                                                 bad, status, code) -> None:
    """A batch whose last statement had an unknown item returned 404 while the statements
    before it stayed committed."""
    t = make_tenant()
    ann, bob = learner(), learner()
    batch = [statement(ann), statement(bob, "mini.a.easy"), statement(ann, "mini.ac")]
    batch.append({**statement(bob), **bad})
    err = error_of(post_batch(client, t, batch), status, code)
    assert "statement 3" in err["message"], err
    assert str(batch[3]["id"]) in err["message"], err
    if isinstance(err["details"], dict):
        assert err["details"] == {"index": 3, "id": batch[3]["id"]}
    assert learners_of(backend, t) == [] and events_of(backend, t) == 0
    # the good statements alone go through
    r = post_batch(client, t, batch[:3])
    assert r.status_code == 200, r.text
    assert [x["seq"] for x in r.json()["results"]] == [1, 1, 2]


def test_an_xapi_batch_reusing_a_logged_id_for_another_answer_records_nothing(
        client, make_tenant, backend) -> None:
    t = make_tenant()
    ann = learner()
    logged = statement(ann)
    assert post_batch(client, t, [logged]).status_code == 200
    changed = {**logged, "result": {"success": False}}
    batch = [statement(ann, "mini.a.easy"), changed, statement(learner())]
    err = error_of(post_batch(client, t, batch), 409, "conflict")
    assert "statement 1" in err["message"] and logged["id"] in err["message"], err
    assert err["details"] == {"index": 1, "id": logged["id"]}
    assert events_of(backend, t) == 1 and learners_of(backend, t) == [ann]


def test_an_xapi_batch_with_one_id_twice(client, make_tenant, backend) -> None:
    t = make_tenant()
    ann = learner()
    one = statement(ann)
    err = error_of(post_batch(client, t, [one, statement(ann),
                                          {**one, "result": {"success": False}}]), 409,
                   "conflict")
    assert "statement 2" in err["message"] and "statement 0" in err["message"], err
    assert events_of(backend, t) == 0
    # the same statement twice counts once
    r = post_batch(client, t, [one, statement(ann, "mini.a.easy"), one])
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["duplicate"] for x in results] == [False, False, True]
    assert results[2] == {**results[0], "duplicate": True}
    assert events_of(backend, t) == 2


def test_an_xapi_batch_applies_each_learners_answers_in_order(client, make_tenant) -> None:
    t = make_tenant()
    ann, bob = learner(), learner()
    batch = [statement(ann, "mini.a.hard"), statement(bob, "mini.c.1"),
             {**statement(ann, "mini.ac"), "result": {"success": False}},
             statement(bob, "mini.a.easy"), statement(ann, "mini.a.mid")]
    r = post_batch(client, t, batch)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["ids"] == [s["id"] for s in batch]
    assert [(x["learner_id"], x["seq"], x["event_id"]) for x in out["results"]] == [
        (ann, 1, batch[0]["id"]), (bob, 1, batch[1]["id"]), (ann, 2, batch[2]["id"]),
        (bob, 2, batch[3]["id"]), (ann, 3, batch[4]["id"])]
    for name in (ann, bob):
        history = full_history(client, name, t.headers)
        state = client.get(f"/v1/learners/{name}/state", headers=t.headers).json()
        assert_same_mastery(state_mastery(state), replay(t.packs, history, name))
    # the whole batch again: every statement a duplicate, the same responses
    again = post_batch(client, t, batch)
    assert [x["duplicate"] for x in again.json()["results"]] == [True] * 5
    assert [{**x, "duplicate": False} for x in again.json()["results"]] == out["results"]
    # and answers after the batch continue from its states
    r = client.post(f"/v1/learners/{ann}/answers", headers=t.headers, json=body())
    assert r.json()["seq"] == 4


def test_an_xapi_batch_failing_midway_leaves_nothing(client, make_tenant, backend,
                                                     monkeypatch) -> None:
    """A failure while writing (here: the third append) rolls the whole batch back; the same
    batch sent again is then recorded in full, once."""
    t = make_tenant()
    ann, bob = learner(), learner()
    batch = [statement(ann), statement(bob), statement(ann, "mini.a.easy"),
             statement(bob, "mini.a.easy")]
    log = client.app.state.service.log  # type: ignore[attr-defined]
    appended = []
    real_append = log.append

    def failing_append(conn, row):  # type: ignore[no-untyped-def]
        appended.append(row["event_id"])
        if len(appended) == 3:
            raise RuntimeError("the disk is full")
        return real_append(conn, row)

    monkeypatch.setattr(log, "append", failing_append)
    r = post_batch(client, t, batch)
    error_of(r, 500, "internal_error")
    assert len(appended) == 3
    assert learners_of(backend, t) == [] and events_of(backend, t) == 0
    monkeypatch.undo()
    r = post_batch(client, t, batch)
    assert r.status_code == 200, r.text
    assert [x["duplicate"] for x in r.json()["results"]] == [False] * 4
    assert events_of(backend, t) == 4


def test_concurrent_batches_over_the_same_learners_do_not_deadlock(client, make_tenant,
                                                                   backend) -> None:
    """Batches lock their learners in id order, whatever the statements' order."""
    t = make_tenant()
    service = client.app.state.service  # type: ignore[attr-defined]
    names = [learner() for _ in range(3)]
    errors: list[BaseException] = []

    def send(order: list[str]) -> None:
        try:
            for _ in range(15):
                service.answer_batch(t.tenant, [
                    (name, Answer("mini.a.mid", True, new_event_id())) for name in order])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(order,))
               for order in (names, names[::-1], names[1:] + names[:1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    for name in names:
        history = full_history(client, name, t.headers)
        assert [e["seq"] for e in history] == list(range(1, 46))


def test_a_batch_that_loses_a_race_for_an_event_id_is_written_again_whole(
        client, make_tenant, backend, monkeypatch) -> None:
    """An event id logged by another request between the batch's look-up and its append: the
    batch's transaction is rolled back and written again, now replaying that answer."""
    t = make_tenant()
    ann, bob = learner(), learner()
    logged = statement(ann)
    assert post_batch(client, t, [logged]).status_code == 200
    log = client.app.state.service.log  # type: ignore[attr-defined]
    real_find_all = log.find_all
    looked = []

    def blind_once(conn, tenant_id, event_ids):  # type: ignore[no-untyped-def]
        looked.append(list(event_ids))
        return {} if len(looked) == 1 else real_find_all(conn, tenant_id, event_ids)

    monkeypatch.setattr(log, "find_all", blind_once)
    batch = [statement(bob), logged, statement(ann, "mini.a.easy")]
    r = post_batch(client, t, batch)
    assert r.status_code == 200, r.text
    assert len(looked) == 2
    results = r.json()["results"]
    assert [x["duplicate"] for x in results] == [False, True, False]
    assert [x["seq"] for x in results] == [1, 1, 2]
    assert events_of(backend, t) == 3


def test_a_moment_is_of_a_year_2000_to_2099_as_written() -> None:
    """The OpenAPI document states the range as a pattern on the text (``^20[0-9]{2}-``); the
    server checked the year in UTC, so a valid-looking ``2000-01-01T00:30:00+01:00`` was
    refused and ``1999-12-31T23:00:00-02:00`` accepted."""
    import re

    import pydantic

    from api.schemas import Moment

    moment = pydantic.TypeAdapter(Moment)
    pattern = moment.json_schema()["pattern"]
    for text, ok in (("2000-01-01T00:30:00+01:00", True), ("2099-12-31T23:00:00-05:00", True),
                     ("1999-12-31T23:00:00-02:00", False), ("2100-01-01T00:00:00Z", False)):
        assert bool(re.match(pattern, text)) == ok, text
        if ok:
            assert moment.validate_python(text).tzinfo is not None
        else:
            with pytest.raises(pydantic.ValidationError, match="2000-01-01 and 2099-12-31"):
                moment.validate_python(text)
