"""Durability against real ``tutor serve`` processes: a lost cache, concurrent answers of one
learner across workers, and a server killed with SIGKILL in the middle of a stream of answers.
In every case the learner's state must equal the replay of the answer log."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict
from typer.testing import CliRunner

from api.store import RedisStore
from tutor.cli import app as tutor_cli

from .conftest import (
    WAIT_S,
    Backend,
    Server,
    ServerPool,
    TenantKey,
    assert_same_mastery,
    fixed_event_ids,
    full_history,
    make_tenant_on,
    pack_document,
    replay,
    state_mastery,
)

MATH_ITEMS = [i["id"] for i in pack_document("math")["items"]]
MINI_ITEMS = [i["id"] for i in pack_document("mini")["items"]]


@pytest.fixture(scope="module")
def two_workers(server_pool: ServerPool) -> Server:
    """``tutor serve --workers 2`` on PostgreSQL + Redis (launched at the session's start)."""
    server = server_pool.launch("two-workers").wait_ready()
    # /readyz answers as soon as one worker is up: wait until both have served a request
    # (each worker writes its request metrics to a file named by its pid)
    deadline = time.monotonic() + WAIT_S
    while len(worker_pids(server, "histogram")) < 2:
        assert time.monotonic() < deadline, f"second worker not up:\n{server.log()}"
        httpx.get(f"{server.url}/readyz", timeout=5)  # a new connection each time
        time.sleep(0.02)
    return server


def worker_pids(server: Server, kind: str) -> set[str]:
    """Pids of the server's workers that have written ``kind`` metrics (``histogram``: served a
    request)."""
    return {p.stem.rsplit("_", 1)[1] for p in server.metrics_dir.glob(f"{kind}_*.db")}


def answers_per_worker(server: Server) -> Counter[str]:
    """``tutor_answers_total`` of each worker (pid), from its multiprocess metrics file."""
    out: Counter[str] = Counter()
    for path in server.metrics_dir.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            if json.loads(key)[1] == "tutor_answers_total":
                out[path.stem.rsplit("_", 1)[1]] += int(value)
    return out


def post(http: httpx.Client, t: TenantKey, learner: str, item: str, correct: bool,
         event_id: str) -> httpx.Response:
    return http.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                     json={"item_id": item, "correct": correct, "event_id": event_id})


def mastery(http: httpx.Client, t: TenantKey, learner: str) -> dict[str, float]:
    r = http.get(f"/v1/learners/{learner}/state", headers=t.headers)
    assert r.status_code == 200, r.text
    return state_mastery(r.json())


def assert_response_is_the_replay(t: TenantKey, response: dict[str, Any],
                                  history: list[dict[str, Any]]) -> None:
    """An answer's ``mastery`` is the replay of the log up to and including its ``seq``."""
    want = replay(t.packs, [e for e in history if e["seq"] <= response["seq"]])
    assert_same_mastery(response["mastery"], {s: want[s] for s in response["mastery"]})


def assert_log_is_exact(history: list[dict[str, Any]], event_ids: list[str]) -> None:
    """seq 1..n without gaps, every event id exactly once, nothing else."""
    assert [e["seq"] for e in history] == list(range(1, len(history) + 1))
    logged = [e["event_id"] for e in history]
    missing = set(event_ids) - set(logged)
    assert not missing, f"{len(missing)} answers missing from the log"
    assert len(logged) == len(set(logged)), "an event is in the log twice"
    assert sorted(logged) == sorted(event_ids), "the log holds events nobody sent"


# ====================================================================== a: cache loss
@pytest.mark.server("two-workers")
def test_lost_or_stale_cache_is_rebuilt_from_the_log(two_workers: Server, pg_backend: Backend,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    t = make_tenant_on(pg_backend.engine, ["math"])
    learner = "rita"
    key = RedisStore._key(t.tenant.id, learner)
    rng = random.Random(7)
    ids = iter(fixed_event_ids("cache-loss", 20))
    r = pg_backend.redis

    with two_workers.client() as http:
        item = MATH_ITEMS[0]

        def answer() -> dict[str, Any]:
            nonlocal item
            res = post(http, t, learner, item, rng.random() < 0.7, next(ids))
            assert res.status_code == 200, res.text
            item = res.json()["next"]["item"]
            return res.json()

        for _ in range(8):
            answer()
        before = mastery(http, t, learner)
        assert_same_mastery(before, replay(t.packs, full_history(http, learner, t.headers)))
        assert int(r.hget(key, "v")) == 8

        # the whole store lost: reads rebuild (and re-cache) transparently
        r.flushdb()
        assert_same_mastery(mastery(http, t, learner), before)
        assert int(r.hget(key, "v")) == 8

        # the entry lost: the next answer folds into the rebuilt state
        r.delete(key)
        ninth = answer()
        assert ninth["seq"] == 9
        assert_response_is_the_replay(t, ninth, full_history(http, learner, t.headers))

        # a stale entry (an older version put back) is ignored, never used
        stale = r.hgetall(key)
        assert int(stale[b"v"]) == 9
        answer()
        answer()
        r.delete(key)
        r.hset(key, mapping=stale)
        history = full_history(http, learner, t.headers)
        assert_same_mastery(mastery(http, t, learner), replay(t.packs, history))
        r.delete(key)
        r.hset(key, mapping=stale)
        twelfth = answer()
        history = full_history(http, learner, t.headers)
        assert_response_is_the_replay(t, twelfth, history)
        after = mastery(http, t, learner)
        assert_same_mastery(after, replay(t.packs, history))

        # `tutor rebuild-state` recomputes every learner's cached state from the log (run in
        # process through its command line: a subprocess would cost seconds of imports)
        r.flushdb()
        for name, value in pg_backend.env().items():
            if name.startswith("TUTOR_"):
                monkeypatch.setenv(name, value)
        done = CliRunner().invoke(tutor_cli, ["rebuild-state", "--tenant", t.tenant.name])
        assert done.exit_code == 0, done.output
        assert "rebuilt 1 learner" in done.stdout, done.stdout
        assert int(r.hget(key, "v")) == 12
        assert_same_mastery(mastery(http, t, learner), after)


# ====================================================================== b: concurrency
@pytest.mark.server("two-workers")
def test_concurrent_answers_of_one_learner_over_two_workers(two_workers: Server,
                                                            pg_backend: Backend) -> None:
    n = 50
    t = make_tenant_on(pg_backend.engine, ["math"])
    learner = "cora"
    rng = random.Random(11)
    plan = [(MATH_ITEMS[(7 * i) % 60], rng.random() < 0.6, eid)
            for i, eid in enumerate(fixed_event_ids("concurrent", n))]
    start = threading.Barrier(n, timeout=WAIT_S)

    answered_before = answers_per_worker(two_workers)
    with two_workers.client(limits=httpx.Limits(max_connections=n)) as http:
        def send(step: tuple[str, bool, str]) -> httpx.Response:
            start.wait()
            return post(http, t, learner, *step)

        with ThreadPoolExecutor(max_workers=n) as pool:
            responses = list(pool.map(send, plan, timeout=WAIT_S))

        bad = [(r.status_code, r.text[:200]) for r in responses if r.status_code != 200]
        assert not bad, f"{len(bad)} of {n} answers not acknowledged: {bad[:3]}"
        bodies = [r.json() for r in responses]
        assert not any(b["duplicate"] for b in bodies)
        assert sorted(b["seq"] for b in bodies) == list(range(1, n + 1))

        history = full_history(http, learner, t.headers)
        assert_log_is_exact(history, [eid for _, _, eid in plan])
        by_id = {e["event_id"]: e for e in history}
        for (item, correct, eid), body in zip(plan, bodies, strict=True):
            assert (by_id[eid]["item_id"], by_id[eid]["correct"], by_id[eid]["seq"]) == (
                item, correct, body["seq"])
            # each answer was applied on exactly the answers before it in the log
            assert_response_is_the_replay(t, body, history)
        assert_same_mastery(mastery(http, t, learner), replay(t.packs, history))
    per_worker = answers_per_worker(two_workers)
    per_worker.subtract(answered_before)
    assert sum(per_worker.values()) == n
    assert len(+per_worker) == 2, f"one worker took every answer: {dict(per_worker)}"


# ====================================================================== c: crash
@pytest.mark.parametrize("which", ["postgres+redis", "sqlite"])
@pytest.mark.server("crash-{which}")
def test_kill_9_mid_stream_loses_no_acknowledged_answer(server: Server, which: str) -> None:
    """A one-worker server, on its own SQLite database or on PostgreSQL + Redis."""
    backend = server.backend
    assert backend.name == which
    t = make_tenant_on(backend.engine, ["mini"])
    learner = "kim"
    n, kill_after = 60, 20
    rng = random.Random(3)
    plan = [(MINI_ITEMS[rng.randrange(len(MINI_ITEMS))], rng.random() < 0.6, eid)
            for eid in fixed_event_ids(f"crash-{which}", n)]

    acked: dict[int, dict[str, Any]] = {}
    unacked: list[int] = []
    errors: list[str] = []

    def stream() -> None:
        with server.client(timeout=10.0) as http:
            for i, step in enumerate(plan):
                try:
                    res = post(http, t, learner, *step)
                except httpx.TransportError:
                    unacked.append(i)
                    continue
                if res.status_code == 200:
                    acked[i] = res.json()
                else:
                    errors.append(f"answer {i}: {res.status_code} {res.text[:200]}")

    client = threading.Thread(target=stream, daemon=True)
    client.start()
    deadline = time.monotonic() + WAIT_S
    while len(acked) < kill_after and client.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    server.kill()  # SIGKILL to the process group, mid-stream
    client.join(timeout=WAIT_S)
    assert not client.is_alive(), "the client did not finish"
    assert not errors, errors
    assert len(acked) >= kill_after, f"only {len(acked)} answers acknowledged before the kill"
    assert unacked, "the kill came after the stream ended"
    assert sorted([*acked, *unacked]) == list(range(n))

    # the client retries what was not acknowledged, with the same event ids, after a restart
    server.start()
    with server.client() as http:
        retried = {}
        for i in unacked:
            res = post(http, t, learner, *plan[i])
            assert res.status_code == 200, res.text
            retried[i] = res.json()
        # only the answer in flight at the kill can have been committed without its reply
        duplicates = [i for i, body in retried.items() if body["duplicate"]]
        assert duplicates in ([], [min(unacked)]), duplicates
        # retrying an acknowledged answer changes nothing either
        for i in sorted(acked)[:3]:
            res = post(http, t, learner, *plan[i])
            assert res.status_code == 200 and res.json() == {**acked[i], "duplicate": True}

        history = full_history(http, learner, t.headers)
        assert_log_is_exact(history, [eid for _, _, eid in plan])
        # every answer exactly once, in the order the client sent them
        assert [e["event_id"] for e in history] == [eid for _, _, eid in plan]
        for i, body in {**acked, **retried}.items():
            assert history[body["seq"] - 1]["event_id"] == plan[i][2]
            assert_response_is_the_replay(t, body, history)
        assert_same_mastery(mastery(http, t, learner), replay(t.packs, history))


# ====================================================================== d: database restart
def test_answer_after_the_database_closed_pooled_connections(pg_backend: Backend) -> None:
    """The pool does not ping before each transaction (a round trip per answer); an answer
    that meets a connection the database has closed (a restart, a failover) retries on a
    fresh one instead of failing, and is recorded once."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    t = make_tenant_on(pg_backend.engine)
    with TestClient(create_app(pg_backend.settings())) as http:
        first = post(http, t, "restart", MINI_ITEMS[0], True, fixed_event_ids("restart", 2)[0])
        assert first.status_code == 200, first.text
        with pg_backend.engine.connect() as conn:  # what a restart does to the app's pool
            closed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").scalar_one()
        assert closed >= 1
        second = post(http, t, "restart", MINI_ITEMS[1], False, fixed_event_ids("restart", 2)[1])
        assert second.status_code == 200, second.text
        assert second.json()["seq"] == 2 and second.json()["duplicate"] is False
        # the one-statement answers' connection closed too: it is replaced, and the next
        # answers are one statement again
        applied = REGISTRY.get_sample_value("tutor_one_statement_answers_total",
                                            {"outcome": "applied"})
        ids = fixed_event_ids("restart", 4)
        for event_id, item in zip(ids[2:], MINI_ITEMS[2:4], strict=True):
            assert post(http, t, "restart", item, True, event_id).status_code == 200
        assert REGISTRY.get_sample_value("tutor_one_statement_answers_total",
                                         {"outcome": "applied"}) == applied + 2
        assert_log_is_exact(full_history(http, "restart", t.headers), ids)
        http.app.state.service.engine.dispose()  # type: ignore[attr-defined]


def _close_pooled_connections(backend: Backend) -> None:
    """What a database restart does to the app's pools."""
    with backend.engine.connect() as conn:
        closed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").scalar_one()
    assert closed >= 1


@pytest.mark.parametrize("path", ["state", "next", "history", "export"])
def test_reads_after_the_database_closed_pooled_connections(pg_backend: Backend,
                                                            path: str) -> None:
    """A read that meets a connection the database has closed retries on a fresh one."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    t = make_tenant_on(pg_backend.engine)
    with TestClient(create_app(pg_backend.settings())) as http:
        event_id = fixed_event_ids("reader", 1)[0]
        assert post(http, t, "reader", MINI_ITEMS[0], True, event_id).status_code == 200
        _close_pooled_connections(pg_backend)
        got = http.get(f"/v1/learners/reader/{path}", headers=t.headers)
        assert got.status_code == 200, got.text
        http.app.state.service.engine.dispose()  # type: ignore[attr-defined]


def test_key_lookup_after_the_database_closed_pooled_connections(pg_backend: Backend) -> None:
    """The API key look-up, too, runs again on a fresh connection (the key cache is off here,
    so every request looks its key up)."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    t = make_tenant_on(pg_backend.engine)
    with TestClient(create_app(pg_backend.settings(key_cache_seconds=0.0))) as http:
        event_id = fixed_event_ids("key-reader", 1)[0]
        assert post(http, t, "key-reader", MINI_ITEMS[0], True, event_id).status_code == 200
        _close_pooled_connections(pg_backend)
        got = http.get("/v1/learners/key-reader/state", headers=t.headers)
        assert got.status_code == 200, got.text
        http.app.state.service.engine.dispose()  # type: ignore[attr-defined]


def test_a_stream_of_requests_while_the_database_closes_connections(pg_backend: Backend) -> None:
    """Requests keep coming (answers of several learners, reads, and an API key look-up for
    each: the key cache is off) while the database closes every connection of the app again
    and again (pg_terminate_backend, as a failover or an operator does): not one request
    fails, and the log and the states come out exact."""
    import sqlalchemy as sa
    from fastapi.testclient import TestClient

    from api.app import create_app

    t = make_tenant_on(pg_backend.engine)
    learners = [f"stream-{k}" for k in range(4)]
    per_learner = 100
    plans = {learner: [(MINI_ITEMS[(5 * i + k) % len(MINI_ITEMS)], (i + k) % 3 != 0, eid)
                       for i, eid in enumerate(fixed_event_ids(f"stream-{learner}",
                                                               per_learner))]
             for k, learner in enumerate(learners)}
    killer = sa.create_engine(pg_backend.database_url, poolclass=sa.pool.NullPool)
    stop = threading.Event()
    kills: list[int] = []

    def terminate() -> None:
        with killer.connect() as conn:
            while not stop.wait(0.02):
                kills.append(conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid() AND "
                    "backend_type = 'client backend'").scalar_one())

    errors: list[str] = []
    acked: dict[str, list[dict[str, Any]]] = {learner: [] for learner in learners}
    app = create_app(pg_backend.settings(key_cache_seconds=0.0))
    with TestClient(app, raise_server_exceptions=False) as http:
        def stream(learner: str) -> None:
            for n, step in enumerate(plans[learner]):
                res = post(http, t, learner, *step)
                if res.status_code != 200:
                    errors.append(f"answer: {res.status_code} {res.text[:300]}")
                    continue
                acked[learner].append(res.json())
                if n % 4 == 3:
                    path = ("state", "next", "history")[n % 3]
                    got = http.get(f"/v1/learners/{learner}/{path}", headers=t.headers)
                    if got.status_code != 200:
                        errors.append(f"{path}: {got.status_code} {got.text[:300]}")

        killing = threading.Thread(target=terminate, daemon=True)
        killing.start()
        try:
            with ThreadPoolExecutor(max_workers=len(learners)) as pool:
                list(pool.map(stream, learners, timeout=WAIT_S * 2))
        finally:
            stop.set()
            killing.join(timeout=WAIT_S)
        assert sum(kills) >= 50, f"too few connections closed to test anything: {kills}"
        assert not errors, f"{len(errors)} requests failed: {errors[:5]}"

        for learner in learners:
            history = full_history(http, learner, t.headers)
            assert_log_is_exact(history, [eid for _, _, eid in plans[learner]])
            assert [e["event_id"] for e in history] == [eid for _, _, eid in plans[learner]]
            for body in acked[learner]:
                assert_response_is_the_replay(t, body, history)
            assert_same_mastery(mastery(http, t, learner), replay(t.packs, history))
    app.state.service.engine.dispose()
    killer.dispose()
    pg_backend.engine.dispose()  # its pooled connections were closed too
