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

        def job(name: str) -> None:
            started.append(name)
            time.sleep(0.05)

        async with anyio.create_task_group() as tg:
            for k in range(6):
                tg.start_soon(fair.run, 1, job, f"a{k}")
            await anyio.sleep(0.01)  # a0 and a1 run, a2..a5 wait
            tg.start_soon(fair.run, 2, job, "b")
        return fair

    fair = anyio.run(main)
    assert started[:2] == ["a0", "a1"]
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
