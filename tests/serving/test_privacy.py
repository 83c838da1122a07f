"""A learner's data can be exported in full, and erased in full: afterwards no table and no cache
entry holds anything about them."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa

from api.store import RedisStore
from engine.selection.registry import DEFAULT_POLICY

from .conftest import Backend, TenantKey, error_of, full_history, new_event_id


def record(client, t: TenantKey, learner: str, answers: list[tuple[str, bool]]) -> list[dict]:
    out = []
    for item, correct in answers:
        r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                        json={"item_id": item, "correct": correct, "event_id": new_event_id(),
                              "response_ms": 2500})
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def rows_mentioning(engine: sa.Engine, needle: str) -> dict[str, list[Any]]:
    """Every row, in every table of the database, with ``needle`` in any column."""
    found: dict[str, list[Any]] = {}
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            # as text in SQL: every value is searchable, even one the driver cannot load
            as_text = [sa.cast(c, sa.Text) for c in table.columns]
            for row in conn.execute(sa.select(*as_text)):
                if any(value is not None and needle in value for value in row):
                    found.setdefault(table.name, []).append(tuple(row))
    return found


def redis_keys_mentioning(backend: Backend, needle: str) -> list[bytes]:
    if backend.redis_url is None:
        return []
    keys = []
    for key in backend.redis.scan_iter(count=1000):
        in_values = backend.redis.type(key) == b"hash" and any(
            needle.encode() in v for v in backend.redis.hvals(key))
        if needle.encode() in key or in_values:
            keys.append(key)
    return keys


def test_export_returns_everything(client, make_tenant) -> None:
    t = make_tenant()
    learner = f"exp-{uuid.uuid4().hex[:8]}"
    answers = [("mini.a.mid", True), ("mini.ac", False), ("mini.c.1", True)]
    responses = record(client, t, learner, answers)
    r = client.get(f"/v1/learners/{learner}/export", headers=t.headers)
    assert r.status_code == 200, r.text
    export = r.json()
    assert export["learner_id"] == learner and export["tenant"] == t.tenant.name
    assert export["exported_at"]
    # profile
    state = client.get(f"/v1/learners/{learner}/state", headers=t.headers).json()
    assert export["profile"] == {k: state[k] for k in ("created_at", "last_seen", "answers")}
    assert export["profile"]["answers"] == 3
    # the derived state
    assert export["state"] == state["skills"]
    # every answer, with the response it got
    events = export["events"]
    assert [(e["item_id"], e["correct"]) for e in events] == answers
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert [e["response_ms"] for e in events] == [2500, 2500, 2500]
    history = full_history(client, learner, t.headers)
    # ... and what chose each response's next (no experiment here: the default policy)
    assert [(e["policy"], e["experiment"], e["arm"]) for e in events] == [
        (DEFAULT_POLICY, None, None)] * 3
    chosen = {"response", "policy", "experiment", "arm"}
    assert [{k: v for k, v in e.items() if k not in chosen} for e in events] == history
    # the learner's consent: the defaults, never set
    assert export["consent"] == {"learner_id": learner, "personalization": True,
                                 "experiments": None, "updated_at": None}
    assert export["experiments"] == []
    for e, response in zip(events, responses, strict=True):
        assert e["response"] == {k: v for k, v in response.items() if k != "duplicate"}


def test_delete_erases_the_learner_everywhere(client, make_tenant, backend) -> None:
    t = make_tenant()
    learner = f"erase-{uuid.uuid4().hex}"
    other = f"keep-{uuid.uuid4().hex}"
    record(client, t, learner, [("mini.a.mid", True), ("mini.c.1", False), ("mini.ac", True)])
    record(client, t, other, [("mini.a.mid", False)])
    # reads fill the caches
    assert client.get(f"/v1/learners/{learner}/state", headers=t.headers).status_code == 200
    assert client.get(f"/v1/learners/{learner}/next", headers=t.headers).status_code == 200
    assert rows_mentioning(backend.engine, learner), "the test's learner is not in the database"
    key = RedisStore._key(t.tenant.id, learner)  # holds a hash of the learner id, not the id
    if backend.redis_url:
        assert backend.redis.hget(key, "s"), "the learner's state is not cached"

    r = client.delete(f"/v1/learners/{learner}", headers=t.headers)
    assert r.status_code == 204, r.text
    assert r.content == b""

    assert rows_mentioning(backend.engine, learner) == {}
    assert redis_keys_mentioning(backend, learner) == []
    if backend.redis_url:  # only a tombstone (an epoch number) until it expires
        assert set(backend.redis.hkeys(key)) <= {b"e", b"t"}
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.get(t.tenant.id, learner) is None
    assert learner not in client.get("/metrics").text
    for endpoint in ("state", "history", "export"):
        error_of(client.get(f"/v1/learners/{learner}/{endpoint}", headers=t.headers), 404,
                 "not_found")
    error_of(client.delete(f"/v1/learners/{learner}", headers=t.headers), 404, "not_found")
    # the other learner is untouched
    assert len(full_history(client, other, t.headers)) == 1
    assert client.get(f"/v1/learners/{other}/state", headers=t.headers).status_code == 200


def test_erased_learner_starts_afresh_in_every_worker(backend, make_client, make_tenant) -> None:
    """Two apps on one database are two workers. After an erasure in one, a new learner of the
    same id, with as many answers, must not get the erased learner's state from the other
    worker's cache (the cache version is the answer count, which starts again from 0)."""
    t = make_tenant()
    one, two = make_client(), make_client()
    learner = f"again-{uuid.uuid4().hex[:8]}"
    record(one, t, learner, [("mini.a.hard", True)] * 4)
    assert two.get(f"/v1/learners/{learner}/state", headers=t.headers).status_code == 200
    assert one.delete(f"/v1/learners/{learner}", headers=t.headers).status_code == 204
    fresh = record(one, t, learner, [("mini.a.hard", False)] * 4)
    want = fresh[-1]["mastery"]["mini.a"]
    for client in (one, two):
        state = client.get(f"/v1/learners/{learner}/state", headers=t.headers).json()
        got = {s["skill_id"]: s["mastery"] for s in state["skills"]}["mini.a"]
        assert abs(got - want) < 2e-6, (
            f"worker {'one' if client is one else 'two'} shows mastery {got} for the new "
            f"learner, expected {want}: state of the erased learner served from a cache")
        assert len(client.get(f"/v1/learners/{learner}/export",
                              headers=t.headers).json()["events"]) == 4
