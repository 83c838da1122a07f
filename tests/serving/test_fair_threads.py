"""Blocking work shares a worker's threads fairly between tenants (api.threads): one tenant's
burst of slow requests used to hold every thread while other tenants' requests queued behind
it (bench/noisy_neighbour.py: a quiet tenant's answer p99 from 97 ms to 4.3 s)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

from api.threads import FairThreads

from .conftest import make_tenant_on


def test_a_freed_thread_goes_to_the_tenant_holding_fewest() -> None:
    started: list[str] = []

    async def main() -> FairThreads:
        fair = FairThreads(2)

        def job(name: str, seconds: float) -> None:
            started.append(name)
            time.sleep(seconds)

        async with anyio.create_task_group() as tg:
            # a0 and a1 run (a1 much longer), a2..a5 wait
            for k in range(6):
                tg.start_soon(fair.run, 1, job, f"a{k}", 0.2 if k == 1 else 0.05)
            await anyio.sleep(0.01)
            tg.start_soon(fair.run, 2, job, "b", 0.05)
        return fair

    fair = anyio.run(main)
    assert sorted(started[:2]) == ["a0", "a1"]  # (on two threads at once: in either order)
    assert started.index("b") == 2  # the first thread freed, before a2..a5
    assert (fair.busy, dict(fair.held)) == (0, {})


def test_a_tenant_alone_uses_every_thread_and_cancelled_waits_leak_nothing() -> None:
    async def main() -> tuple[int, FairThreads]:
        fair = FairThreads(3)
        running, most = 0, 0
        lock = threading.Lock()

        def job() -> None:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with lock:
                running -= 1

        async with anyio.create_task_group() as tg:
            for _ in range(6):
                tg.start_soon(fair.run, 7, job)
        with anyio.move_on_after(0.02):  # waiting behind three: cancelled while it waits
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(fair.run, 8, time.sleep, 0.1)
        await anyio.sleep(0.3)
        return most, fair

    most, fair = anyio.run(main)
    assert most == 3
    assert (fair.busy, dict(fair.held)) == (0, {})


def test_a_tenant_past_its_cpu_share_waits_only_while_others_are_served() -> None:
    """Turns alone let a tenant whose every request is slow keep every core busy; past its
    burst, it now gets ``cpu_share`` of a core while another tenant is being served, and all
    it asks for when alone."""
    def burn() -> None:  # 0.3 s of this thread's CPU
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass

    async def main() -> list[float]:
        fair = FairThreads(2, cpu_share=0.25)
        waits = [fair._over_share(1)]  # a new tenant: its burst
        for _ in range(5):  # 1.5 s of CPU: 0.5 s past the burst
            await fair.run(1, burn)
        waits.append(fair._over_share(1))  # alone: not held back
        fair.serving(2, time.monotonic())  # another tenant is being served
        waits.append(fair._over_share(1))  # held back (a tenth of a second at a time)
        waits.append(fair._over_share(2))  # the other tenant is not
        return waits

    assert anyio.run(main) == [0.0, 0.0, 0.1, 0.0]


def test_a_tenants_burst_of_slow_requests_leaves_threads_for_the_others(
        sqlite_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over HTTP: six slow requests of one tenant (0.4 s each, 2 threads) and then one of
    another: first come, first served, the other waited for three rounds (~1.6 s)."""
    from fastapi.testclient import TestClient

    import api.routes.content as content
    from api.app import create_app

    real = content.list_packs

    def slow(*args: Any) -> Any:
        time.sleep(0.4)
        return real(*args)

    monkeypatch.setattr(content, "list_packs", slow)
    noisy, quiet = make_tenant_on(sqlite_backend.engine), make_tenant_on(sqlite_backend.engine)
    app = create_app(sqlite_backend.settings(threads=2))
    with TestClient(app, raise_server_exceptions=False) as client, ThreadPoolExecutor(7) as pool:
        burst = [pool.submit(client.get, "/v1/content/packs", headers=noisy.headers)
                 for _ in range(6)]
        time.sleep(0.1)
        began = time.perf_counter()
        r = client.get("/v1/content/packs", headers=quiet.headers)
        waited = time.perf_counter() - began
        assert r.status_code == 200 and all(f.result().status_code == 200 for f in burst)
    app.state.service.engine.dispose()
    assert waited < 1.1, waited  # one noisy request's turn and its own, not three rounds


def test_a_stale_copy_of_the_experiments_is_read_again_without_making_answers_wait(
        sqlite_backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer that found its tenant's experiments stale waited for a thread to read them
    again, behind whatever held the threads (in bench/noisy_neighbour.py, another tenant's
    pack imports: that was the quiet tenant's p99). It now goes on with the stale copy while
    the copy is read again in the background, unless the copy is older than twice the cache
    time."""
    from api.experiments import CACHE_SECONDS, ExperimentServing

    t = make_tenant_on(sqlite_backend.engine)
    serving = ExperimentServing(sqlite_backend.engine)
    reads: list[float] = []
    real = serving._read

    def slow(tenant_id: int) -> Any:
        reads.append(time.monotonic())
        time.sleep(0.3)
        return real(tenant_id)

    monkeypatch.setattr(serving, "_read", slow)

    async def main() -> list[float]:
        from datetime import UTC, datetime
        waits = []
        for age in (None, CACHE_SECONDS * 1.5, CACHE_SECONDS * 2.5):
            if age is not None:  # the copy as of `age` seconds ago
                serving._cache[t.tenant.id] = (time.monotonic() - age,
                                               serving._cache[t.tenant.id][1])
            began = time.monotonic()
            assert await serving.none_running(t.tenant.id, datetime.now(UTC))
            waits.append(time.monotonic() - began)
            await anyio.sleep(0.5)  # a refresh started in the background ends
        return waits

    first, stale, too_old = anyio.run(main)
    assert first >= 0.3 and too_old >= 0.3  # nothing usable: read before answering
    assert stale < 0.1, stale  # read again meanwhile
    assert len(reads) == 3


def test_a_pack_is_parsed_off_the_event_loop(sqlite_backend,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A pack of thousands of items took tens of ms to parse and validate on the event loop,
    where every tenant's requests waited (bench/noisy_neighbour.py: 6x the quiet tenant's p99
    with pack imports alone)."""
    import asyncio

    from fastapi.testclient import TestClient

    import api.routes.content as content
    from api.app import create_app

    from .conftest import pack_document

    on_loop: list[bool] = []
    real = content.parse_body

    def parse(*args: Any) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no running loop
            on_loop.append(False)
        return real(*args)

    monkeypatch.setattr(content, "parse_body", parse)
    t = make_tenant_on(sqlite_backend.engine, packs=())
    app = create_app(sqlite_backend.settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/content/packs", headers=t.headers, json=pack_document("mini"))
        assert r.status_code == 200, r.text
    app.state.service.engine.dispose()
    assert on_loop == [False]
