"""Requests' blocking work (the database, Redis, the engine) in worker threads, shared fairly
between tenants.

Each worker runs blocking work in a few threads (``TUTOR_THREADS``). Handed out first come,
first served, one tenant's burst of slow requests (pack imports, placement starts, an
experiment's results, all at once) held every thread, and every other tenant's requests queued
behind the burst: a quiet tenant's answer p99 went from 97 ms to 4.3 s
(``bench/noisy_neighbour.py``). Here a thread that frees goes to the waiting tenant that holds
the fewest threads, the longest waiting first among equals: a tenant alone may use them all,
and a busy tenant cannot make another wait behind more than one of its requests per thread.

Turns alone do not stop a tenant whose requests are all slow (re-importing the largest pack,
placement tests, thousands of distinct items) from keeping every core busy, and the other
tenants' answers then wait for the CPU and the interpreter lock. So while other tenants are
being served (a request in the last :data:`ACTIVE_S`), each tenant's blocking work may use at
most ``cpu_share`` of a core on average (``TUTOR_TENANT_CPU_SHARE``; a bucket of
:data:`BURST_CPU_S` CPU seconds refilled at that rate, measured with the threads' CPU clocks):
a tenant past it waits before its next thread. A tenant alone is never held back.

The caller's tenant is a context variable that authentication sets (:func:`serve_tenant`):
synchronous routes run here (:class:`api.routes.deps.FairRoute`), and the service's own hops to
a thread (:func:`run`) name the tenant themselves. Everything runs on the worker's event loop,
so the bookkeeping needs no lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

_T = TypeVar("_T")
_TENANT: ContextVar[int | None] = ContextVar("tutor_tenant", default=None)
#: seconds after its last request that a tenant counts as being served, and the CPU seconds a
#: tenant may spend at once before its share applies
ACTIVE_S, BURST_CPU_S = 1.0, 1.0


def serve_tenant(tenant_id: int) -> None:
    """Count this request's blocking work as ``tenant_id``'s, and the tenant as being served
    (authentication calls it)."""
    _TENANT.set(tenant_id)
    fair_threads().serving(tenant_id, time.monotonic())


class FairThreads:
    """``total`` threads, handed to the waiting tenant holding the fewest (see the module's
    docstring). Invariant: ``busy`` = the sum of ``held`` <= ``total``, and nobody waits while
    ``busy`` < ``total``."""

    def __init__(self, total: int, cpu_share: float = 1.0) -> None:
        if total < 1 or not cpu_share > 0:  # (NaN too)
            raise ValueError(f"threads must be >= 1 and the CPU share > 0, got {total}, "
                             f"{cpu_share}")
        self.total = total
        self.cpu_share = cpu_share
        self.busy = 0
        self.held: Counter[int | None] = Counter()
        #: the last two tenants served, and when, the latest first (:meth:`serving`): enough
        #: to tell whether any tenant but a given one was served lately
        self._served: list[tuple[int | None, float]] = []
        self._waiting: dict[int | None, deque[tuple[int, anyio.Event]]] = {}
        self._tickets = itertools.count()
        self._limiter = anyio.CapacityLimiter(total)  # never waited on: busy <= total
        self._credit: dict[int | None, tuple[float, float]] = {}  # CPU s left, as of when
        self._credit_lock = threading.Lock()  # (threads spend it)

    async def run(self, tenant: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a thread, once ``tenant``'s turn for one has come (and, while
        others are served, once it is within its CPU share)."""
        while (wait := self._over_share(tenant)) > 0:
            await anyio.sleep(wait)
        await self._acquire(tenant)
        try:
            return await anyio.to_thread.run_sync(self._counted, tenant, fn, *args,
                                                  limiter=self._limiter)
        finally:
            self._release(tenant)

    def serving(self, tenant: int | None, at: float) -> None:
        """``tenant`` is being served at ``at`` (a :func:`time.monotonic` time)."""
        others = [entry for entry in self._served if entry[0] != tenant]
        self._served = [(tenant, at), *others[:1]]

    def _counted(self, tenant: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        began = time.thread_time()
        try:
            return fn(*args)
        finally:
            spent = time.thread_time() - began
            with self._credit_lock:
                self._credit[tenant] = (self._left(tenant) - spent, time.monotonic())

    def _left(self, tenant: int | None) -> float:
        """The tenant's CPU seconds left now (refilled at ``cpu_share`` a second)."""
        left, when = self._credit.get(tenant, (BURST_CPU_S, 0.0))
        return min(BURST_CPU_S, left + (time.monotonic() - when) * self.cpu_share)

    def _over_share(self, tenant: int | None) -> float:
        """Seconds ``tenant`` is to wait before its next thread: 0 within its share, or when
        no other tenant is being served; at most a tenth of a second at a time, so that it
        notices when the others leave."""
        left = self._left(tenant)
        if left >= 0:
            return 0.0
        other = next((at for t, at in self._served if t != tenant), None)
        if other is None or time.monotonic() - other >= ACTIVE_S:
            return 0.0
        return min(0.1, -left / self.cpu_share)

    async def _acquire(self, tenant: int | None) -> None:
        if self.busy < self.total and not self._waiting:
            self.busy += 1
            self.held[tenant] += 1
            return
        entry = (next(self._tickets), anyio.Event())
        queue = self._waiting.setdefault(tenant, deque())
        queue.append(entry)
        try:
            await entry[1].wait()
        except BaseException:  # cancelled: hand back a thread given meanwhile, or stop waiting
            if entry[1].is_set():
                self._release(tenant)
            else:
                queue.remove(entry)
                if not queue:
                    del self._waiting[tenant]
            raise

    def _release(self, tenant: int | None) -> None:
        self.held[tenant] -= 1
        if not self.held[tenant]:
            del self.held[tenant]
        if not self._waiting:
            self.busy -= 1
            return
        turn = min(self._waiting, key=lambda t: (self.held[t], self._waiting[t][0][0]))
        queue = self._waiting[turn]
        event = queue.popleft()[1]
        if not queue:
            del self._waiting[turn]
        self.held[turn] += 1
        event.set()


_FAIR: RunVar[FairThreads] = RunVar("tutor_fair_threads")


def install(threads: FairThreads) -> None:
    """Use ``threads`` on this event loop (the app's lifespan, with its settings)."""
    _FAIR.set(threads)


def fair_threads() -> FairThreads:
    """This event loop's threads (:func:`install`; else as many as AnyIO's default limiter
    allows, with no CPU share)."""
    try:
        return _FAIR.get()
    except LookupError:
        total = int(anyio.to_thread.current_default_thread_limiter().total_tokens)
        _FAIR.set(FairThreads(total))
        return _FAIR.get()


async def run(fn: Callable[..., _T], *args: Any, tenant: int | None = None) -> _T:
    """``fn(*args)`` in one of the worker's threads, in ``tenant``'s turn (None: the tenant
    authentication set for this request, if any)."""
    return await fair_threads().run(_TENANT.get() if tenant is None else tenant, fn, *args)
