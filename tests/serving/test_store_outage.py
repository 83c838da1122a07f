"""Redis down or restarted: answers and reads go on from the log; erasure refuses to half-run.

A Redis server of the test's own (``redis-server`` on a free port, nothing kept on disk) is
killed with SIGKILL and started again, while the app runs on the test session's PostgreSQL.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api import store as store_module
from api.app import create_app
from api.settings import Settings
from api.store import CachedState, RedisStore, StoreUnavailable

from .conftest import (
    HOW_TO_START,
    WAIT_S,
    Backend,
    assert_same_mastery,
    error_of,
    free_port,
    full_history,
    make_tenant_on,
    new_event_id,
    replay,
    state_mastery,
)


class OwnRedis:
    """A ``redis-server`` process of this test's own, on a fixed port across restarts."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(f"redis-server is not on PATH.\n{HOW_TO_START}", pytrace=False)
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError("the test's redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)
            self.proc = None


@pytest.fixture
def own_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[OwnRedis]:
    monkeypatch.setattr(store_module, "BACK_OFF_S", 0.2)  # so the test need not wait a second
    server = OwnRedis()
    server.start()
    yield server
    server.kill()


KEY = bytes(range(32))  # the MAC key of the entries (the service reads it from the database)


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


# ====================================================================== the store alone
def test_reads_and_writes_report_a_miss_while_redis_is_down() -> None:
    store = RedisStore(dead_url(), lambda: KEY)
    entry = CachedState(1, 1, 1, b"state", ("item",))
    assert store.get(1, "x") is None
    assert store.put(1, "x", entry) is False

    async def on_the_loop() -> tuple[Any, Any]:
        store._resting_until = 0.0  # past the back-off the sync failures started
        return await store.aget(1, "x"), await store.aput(1, "x", entry)

    assert asyncio.run(on_the_loop()) == (None, False)
    with pytest.raises(StoreUnavailable, match="nothing was erased: retry"):
        store.erase(1, "x", 1)
    with pytest.raises(redis.ConnectionError):
        store.ping()


def test_after_a_failure_redis_is_left_alone_for_the_back_off(own_redis: OwnRedis) -> None:
    store = RedisStore(own_redis.url, lambda: KEY)
    entry = CachedState(1, 1, 1, b"state", ())
    assert store.put(1, "x", entry) is True
    own_redis.kill()
    assert store.get(1, "x") is None  # fails, starts the back-off
    own_redis.start()  # empty: nothing is kept on disk
    assert store.put(1, "x", entry) is False  # not even tried
    assert redis.Redis.from_url(own_redis.url).dbsize() == 0
    time.sleep(store_module.BACK_OFF_S)
    assert store.put(1, "x", entry) is True
    assert store.get(1, "x") == entry


# ====================================================================== the API
def test_answers_go_on_from_the_log_while_redis_is_down(pg_backend: Backend,
                                                        own_redis: OwnRedis) -> None:
    t = make_tenant_on(pg_backend.engine, ["math"])
    learner = "outage"
    own = redis.Redis.from_url(own_redis.url)
    key = RedisStore._key(t.tenant.id, learner)
    app = create_app(Settings(database_url=pg_backend.database_url, redis_url=own_redis.url))
    item = "math.counting.01"

    with TestClient(app, raise_server_exceptions=False) as client:
        def answer(correct: bool) -> dict[str, Any]:
            nonlocal item
            r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                            json={"item_id": item, "correct": correct,
                                  "event_id": new_event_id()})
            assert r.status_code == 200, r.text
            item = r.json()["next"]["item"]
            return r.json()

        def assert_is_the_replay(response: dict[str, Any]) -> None:
            history = full_history(client, learner, t.headers)
            want = replay(t.packs, [e for e in history if e["seq"] <= response["seq"]])
            assert_same_mastery(response["mastery"], {s: want[s] for s in response["mastery"]})

        for correct in (True, False, True):
            answer(correct)
        assert int(own.hget(key, "v")) == 3

        own_redis.kill()
        for correct in (True, True, False, True):
            assert_is_the_replay(answer(correct))
        state = client.get(f"/v1/learners/{learner}/state", headers=t.headers)
        assert state.status_code == 200, state.text
        assert_same_mastery(state_mastery(state.json()),
                            replay(t.packs, full_history(client, learner, t.headers)))
        assert client.get(f"/v1/learners/{learner}/next", headers=t.headers).status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "state_store" in ready.json()["degraded"]
        assert 'tutor_state_store_errors_total{operation="get"}' in client.get("/metrics").text

        # erasure cannot remove the cached state, so it erases nothing and says to retry
        err = error_of(client.delete(f"/v1/learners/{learner}", headers=t.headers), 503,
                       "unavailable")
        assert "retry" in err["message"]
        assert len(full_history(client, learner, t.headers)) == 7

        own_redis.start()  # back, empty
        time.sleep(store_module.BACK_OFF_S)
        assert_is_the_replay(answer(True))
        assert int(own.hget(key, "v")) == 8  # cached again
        assert client.get("/readyz").json() == {"status": "ready"}

        r = client.delete(f"/v1/learners/{learner}", headers=t.headers)
        assert r.status_code == 204, r.text
        assert set(own.hkeys(key)) <= {b"e", b"t"}  # a tombstone: an epoch, no state
        with pg_backend.engine.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM events WHERE tenant_id = :t"),
                                {"t": t.tenant.id}).scalar_one()
        assert left == 0
    app.state.service.engine.dispose()
    own.close()
