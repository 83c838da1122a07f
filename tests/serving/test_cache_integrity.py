"""The state cache never serves a wrong state: not after the database was restored to an
earlier point (the cache then holds states of answers the log no longer has), and not when an
entry is damaged (any field, any Redis type, the state's bytes). Every answer, read and
stored response is the replay of the log; damaged entries are counted on ``/metrics``, dropped
and rebuilt; ``tutor rebuild-state`` repairs every learner and says what it found.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from api.app import create_app
from api.store import RedisStore
from tutor.cli import app as tutor_cli

from .conftest import (
    Backend,
    TenantKey,
    assert_same_mastery,
    fixed_event_ids,
    full_history,
    make_tenant_on,
    new_event_id,
    replay,
    state_mastery,
)


@pytest.fixture
def app_client(backend: Backend) -> Iterator[TestClient]:
    """A TestClient on a new app for ``backend`` (PostgreSQL: states in Redis; SQLite: in
    process)."""
    app = create_app(backend.settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    app.state.service.engine.dispose()


def post(client: TestClient, t: TenantKey, learner: str, item: str, correct: bool,
         event_id: str | None = None) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                    json={"item_id": item, "correct": correct,
                          "event_id": event_id or new_event_id()})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def assert_is_the_replay(client: TestClient, t: TenantKey, learner: str,
                         response: dict[str, Any]) -> None:
    """An answer's mastery is the replay of the log up to its seq."""
    history = full_history(client, learner, t.headers)
    want = replay(t.packs, [e for e in history if e["seq"] <= response["seq"]])
    assert_same_mastery(response["mastery"], {s: want[s] for s in response["mastery"]})


def assert_state_is_the_replay(client: TestClient, t: TenantKey, learner: str) -> None:
    r = client.get(f"/v1/learners/{learner}/state", headers=t.headers)
    assert r.status_code == 200, r.text
    assert_same_mastery(state_mastery(r.json()),
                        replay(t.packs, full_history(client, learner, t.headers)))


def learner_row(engine: sa.Engine, t: TenantKey, learner: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM learners WHERE tenant_id = :t AND "
                                   "learner_id = :l"), {"t": t.tenant.id, "l": learner})
        return dict(row.mappings().one())


# ====================================================================== a restored database
def restore_to_the_sixth(engine: sa.Engine, t: TenantKey, learner: str,
                         at_six: dict[str, Any], restore: str) -> None:
    """What restoring the database to the learner's sixth answer does to its rows: the later
    events are gone, and the learner's row is as it was then (``whole-row``), or only its
    last_seq is set back (``last-seq-only``)."""
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM events WHERE tenant_id = :t AND learner_id = :l "
                             "AND seq > 6"), {"t": t.tenant.id, "l": learner})
        kept = at_six if restore == "whole-row" else {"last_seq": 6}
        conn.execute(sa.text("UPDATE learners SET " + ", ".join(f"{c} = :{c}" for c in kept)
                             + " WHERE tenant_id = :t AND learner_id = :l"),
                     {**kept, "t": t.tenant.id, "l": learner})


#: twelve answers, then six others after the restore to the sixth: the same items, the
#: opposite outcomes, so the two histories' masteries are far apart
BEFORE = [("mini.a.mid", True), ("mini.a.easy", True), ("mini.a.hard", True)] * 4
AFTER = [("mini.a.mid", False), ("mini.a.easy", False), ("mini.a.hard", False)] * 2


@pytest.mark.parametrize("restore", ["whole-row", "last-seq-only"])
def test_a_restored_database_is_never_answered_from_a_state_of_the_lost_answers(
        backend: Backend, app_client: TestClient, restore: str) -> None:
    """The database goes back to the learner's sixth answer (the row as it was then, or only
    its last_seq, as a partial restore leaves it), while the cache keeps the state of the
    twelfth. The learner answers six times again: seq 12 once more, of other answers. The cache
    entry at version 12 must not be taken for the new log's: every answer and read is the
    replay of the log, and `tutor rebuild-state` writes the log's state over any entry."""
    client = app_client
    t = make_tenant_on(backend.engine)
    learner = "restored"
    ids = iter(fixed_event_ids(f"restore-{restore}-{backend.name}-{t.tenant.id}", 20))
    at_six: dict[str, Any] = {}
    for n, (item, correct) in enumerate(BEFORE, start=1):
        post(client, t, learner, item, correct, next(ids))
        if n == 6:
            at_six = learner_row(backend.engine, t, learner)
    twelve = state_mastery(client.get(f"/v1/learners/{learner}/state",
                                      headers=t.headers).json())

    restore_to_the_sixth(backend.engine, t, learner, at_six, restore)

    for item, correct in AFTER:
        assert_is_the_replay(client, t, learner, post(client, t, learner, item, correct,
                                                      next(ids)))
    history = full_history(client, learner, t.headers)
    assert [e["seq"] for e in history] == list(range(1, 13))
    assert_state_is_the_replay(client, t, learner)
    # the two logs' states are far apart: a stale state would not pass for the replay
    now = replay(t.packs, history)
    assert abs(now["mini.a"] - twelve["mini.a"]) > 0.3, (now, twelve)
    thirteenth = post(client, t, learner, "mini.a.mid", True, next(ids))
    assert thirteenth["seq"] == 13
    assert_is_the_replay(client, t, learner, thirteenth)
    assert_state_is_the_replay(client, t, learner)


@pytest.mark.parametrize("restore", ["whole-row", "last-seq-only"])
def test_rebuild_state_overwrites_an_entry_of_a_restored_database(
        pg_backend: Backend, restore: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry from before a restore is replaced by `tutor rebuild-state`, even where its
    version is not lower than the restored log's (nothing answered since the restore)."""
    t = make_tenant_on(pg_backend.engine)
    learner = "rebuilt"
    key = RedisStore._key(t.tenant.id, learner)
    app = create_app(pg_backend.settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        at_six: dict[str, Any] = {}
        for n, (item, correct) in enumerate(BEFORE, start=1):
            post(client, t, learner, item, correct)
            if n == 6:
                at_six = learner_row(pg_backend.engine, t, learner)
        restore_to_the_sixth(pg_backend.engine, t, learner, at_six, restore)
        assert int(pg_backend.redis.hget(key, "v")) == 12
        done = run_rebuild_state(pg_backend, t, monkeypatch)
        assert int(pg_backend.redis.hget(key, "v")) == 6, done
        for item, correct in AFTER:
            assert_is_the_replay(client, t, learner, post(client, t, learner, item, correct))
        assert_state_is_the_replay(client, t, learner)
    app.state.service.engine.dispose()


def run_rebuild_state(backend: Backend, t: TenantKey,
                      monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`tutor rebuild-state --tenant T --json`, in process; its JSON report."""
    for name, value in backend.env().items():
        if name.startswith("TUTOR_"):
            monkeypatch.setenv(name, value)
    done = CliRunner().invoke(tutor_cli, ["rebuild-state", "--tenant", t.tenant.name, "--json"])
    assert done.exit_code == 0, (done.output, done.exception)
    (report,) = json.loads(done.stdout)["tenants"]
    assert isinstance(report, dict)
    return report


# ====================================================================== damaged entries
def _floats(count: int, value: float) -> bytes:
    return struct.pack(f"<{count}d", *[value] * count)


def _state_of(value: float) -> Callable[[bytes], bytes]:
    return lambda s: _floats(len(s) // 8, value)


#: ways a state's bytes can be damaged, each a function of the sound bytes
STATE_DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "state-too-short": lambda s: s[:-3],
    "state-too-long": lambda s: s + bytes(8),
    "state-nan": _state_of(float("nan")),
    "state-above-one": _state_of(1.5),
    "state-below-zero": _state_of(-0.25),
}


def _set_field(field: str, value: bytes) -> Callable[[redis.Redis, str], Any]:
    return lambda r, key: r.hset(key, field, value)


def _state_field(damage: Callable[[bytes], bytes]) -> Callable[[redis.Redis, str], Any]:
    return lambda r, key: r.hset(key, "s", damage(r.hget(key, "s")))


def _retyped(make: Callable[[redis.Redis, str], Any]) -> Callable[[redis.Redis, str], Any]:
    def retype(r: redis.Redis, key: str) -> None:
        r.delete(key)
        make(r, key)
    return retype


#: kind -> (the metric's kind label, how to damage the learner's Redis entry). A Redis entry's
#: MAC covers its state: damage that a tracer would refuse is caught before, as is damage that
#: leaves valid probabilities (issue 20: a mastery 0.91 away from the log's, served until
#: `tutor rebuild-state` ran)
REDIS_DAMAGE: dict[str, tuple[str, Callable[[redis.Redis, str], Any]]] = {
    **{name: ("mac", _state_field(damage)) for name, damage in STATE_DAMAGE.items()},
    "state-plausible-but-wrong": ("mac", _state_field(_state_of(0.5))),
    "mac-missing": ("mac", lambda r, key: r.hdel(key, "m")),
    "mac-forged": ("mac", _set_field("m", bytes(16))),
    "epoch-not-a-number": ("number", _set_field("e", b"1.7e15")),
    "content-version-not-a-number": ("number", _set_field("c", b"x")),
    "version-not-a-number": ("number", _set_field("v", b"twelve")),
    "version-negative": ("number", _set_field("v", b"-3")),
    "recent-not-utf8": ("text", _set_field("r", b"mini.a.mid\x1f\xff\xfe")),
    "state-missing": ("incomplete", lambda r, key: r.hdel(key, "s")),
    "a-string": ("type", _retyped(lambda r, key: r.set(key, b"junk"))),
    "a-list": ("type", _retyped(lambda r, key: r.rpush(key, b"junk"))),
    "a-set": ("type", _retyped(lambda r, key: r.sadd(key, b"junk"))),
}


def damaged_count(kind: str) -> float:
    return REGISTRY.get_sample_value("tutor_state_cache_damaged_total", {"kind": kind}) or 0.0


def assert_survives_damage(client: TestClient, t: TenantKey, learner: str, kind: str,
                           damage: Callable[[], Any]) -> None:
    """With the learner's entry damaged before each request: the next answer, its retry (the
    stored response), /state and /next are 200 and the replay of the log; each time the
    damage is counted under ``kind``."""
    for n, item in enumerate(["mini.a.mid", "mini.ac", "mini.c.1", "mini.a.easy"]):
        post(client, t, learner, item, n % 2 == 0)
    counted = damaged_count(kind)

    damage()
    event_id = new_event_id()
    fifth = post(client, t, learner, "mini.a.hard", True, event_id)
    assert fifth["seq"] == 5 and fifth["duplicate"] is False
    assert_is_the_replay(client, t, learner, fifth)
    assert damaged_count(kind) >= counted + 1

    damage()
    assert_state_is_the_replay(client, t, learner)
    assert damaged_count(kind) >= counted + 2

    damage()
    r = client.get(f"/v1/learners/{learner}/next", headers=t.headers)
    assert r.status_code == 200, r.text
    again = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                        json={"item_id": "mini.a.hard", "correct": True, "event_id": event_id})
    assert again.status_code == 200, again.text
    assert again.json() == {**fifth, "duplicate": True}

    damage()
    sixth = post(client, t, learner, "mini.ac", False)
    assert sixth["seq"] == 6
    assert_is_the_replay(client, t, learner, sixth)
    assert_state_is_the_replay(client, t, learner)


@pytest.mark.parametrize("name", sorted(REDIS_DAMAGE))
def test_a_damaged_redis_entry_is_dropped_and_rebuilt(pg_backend: Backend, name: str) -> None:
    kind, damage = REDIS_DAMAGE[name]
    t = make_tenant_on(pg_backend.engine)
    learner = f"damaged-{name}"
    key = RedisStore._key(t.tenant.id, learner)
    app = create_app(pg_backend.settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert_survives_damage(client, t, learner, kind,
                               lambda: damage(pg_backend.redis, key))
        # sound again, and current
        assert int(pg_backend.redis.hget(key, "v")) == 6
    app.state.service.engine.dispose()


@pytest.mark.parametrize("name", sorted(STATE_DAMAGE))
def test_a_damaged_in_process_entry_is_dropped_and_rebuilt(sqlite_backend: Backend,
                                                           name: str) -> None:
    t = make_tenant_on(sqlite_backend.engine)
    learner = f"damaged-{name}"
    app = create_app(sqlite_backend.settings())
    store = app.state.service.store
    entries: dict[Any, Any] = store._data

    def damage() -> None:
        entry = entries[(t.tenant.id, learner)]
        entries[(t.tenant.id, learner)] = dataclasses.replace(
            entry, state=STATE_DAMAGE[name](entry.state))

    with TestClient(app, raise_server_exceptions=False) as client:
        assert_survives_damage(client, t, learner, "state", damage)
    app.state.service.engine.dispose()


# ====================================================================== tutor rebuild-state
def test_rebuild_state_repairs_every_learner_and_says_what_it_found(
        pg_backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    t = make_tenant_on(pg_backend.engine)
    r = pg_backend.redis
    app = create_app(pg_backend.settings())
    found = {
        "current": ["ok-1", "ok-2"],
        "missing": ["lost"],
        "stale": ["behind"],
        "wrong": ["off"],  # the right version, another state (signed: as a bug would write)
        "damaged number": ["bad-epoch"],
        "damaged text": ["bad-recent"],
        "damaged mac": ["bad-state", "nan-state", "plausible"],
        "damaged type": ["a-string"],
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        for learners in found.values():
            for learner in learners:
                for n, item in enumerate(["mini.a.mid", "mini.ac", "mini.c.1"]):
                    post(client, t, learner, item, n != 1)

        def key(learner: str) -> str:
            return RedisStore._key(t.tenant.id, learner)

        r.delete(key("lost"))
        behind = r.hgetall(key("behind"))
        post(client, t, "behind", "mini.a.easy", True)
        r.delete(key("behind"))
        r.hset(key("behind"), mapping=behind)  # the entry of seq 3, the log at 4
        store = app.state.service.store
        off = store.get(t.tenant.id, "off")
        store.put(t.tenant.id, "off", dataclasses.replace(off, state=_state_of(0.5)(off.state)),
                  rebuilt=True)
        r.hset(key("plausible"), "s", _state_of(0.5)(r.hget(key("plausible"), "s")))
        r.hset(key("bad-epoch"), "e", b"yesterday")
        r.hset(key("bad-recent"), "r", b"\xc3\x28")
        r.hset(key("bad-state"), "s", b"\x00" * 5)
        r.hset(key("nan-state"), "s", _state_of(float("nan"))(r.hget(key("nan-state"), "s")))
        r.delete(key("a-string"))
        r.set(key("a-string"), b"junk")

        report = run_rebuild_state(pg_backend, t, monkeypatch)
        everyone = [learner for learners in found.values() for learner in learners]
        assert report["tenant"] == t.tenant.name
        assert report["learners"] == len(everyone)
        assert report["found"] == {kind: len(learners) for kind, learners in found.items()}, \
            report
        assert report["rebuilt"] == len(everyone) - len(found["current"])

        for learner in everyone:
            with pg_backend.engine.connect() as conn:
                last_seq = conn.execute(sa.text(
                    "SELECT last_seq FROM learners WHERE tenant_id = :t AND learner_id = :l"),
                    {"t": t.tenant.id, "l": learner}).scalar_one()
            assert r.type(key(learner)) == b"hash"
            assert int(r.hget(key(learner), "v")) == last_seq
            assert_state_is_the_replay(client, t, learner)
        counted = {kind: damaged_count(kind) for kind in ("number", "text", "mac", "type")}
        assert_state_is_the_replay(client, t, "off")
        # repaired: nothing damaged is met any more
        assert {kind: damaged_count(kind) for kind in counted} == counted
    app.state.service.engine.dispose()
