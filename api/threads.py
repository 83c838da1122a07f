"""Requests' blocking work (the database, Redis, the engine) in worker threads, shared fairly
between tenants.

Each worker runs blocking work in a few threads (``TUTOR_THREADS``). Handed out first come,
first served, one tenant's burst of slow requests (pack imports, placement starts, an
experiment's results, all at once) held every thread, and every other tenant's requests queued
behind the burst: a quiet tenant's answer p99 went from 97 ms to 4.3 s
(``bench/noisy_neighbour.py``). Here a thread that frees goes to the waiting tenant that holds
the fewest threads, the longest waiting first among equals: a tenant alone may use them all,
and a busy tenant cannot make another wait behind more than one of its requests per thread.

The caller's tenant is a context variable that authentication sets (:func:`serve_tenant`):
synchronous routes run here (:class:`api.routes.deps.FairRoute`), and the service's own hops to
a thread (:func:`run`) name the tenant themselves. Everything runs on the worker's event loop,
so the bookkeeping needs no lock.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

_T = TypeVar("_T")
_TENANT: ContextVar[int | None] = ContextVar("tutor_tenant", default=None)


def serve_tenant(tenant_id: int) -> None:
    """Count this request's blocking work as ``tenant_id``'s (authentication calls it)."""
    _TENANT.set(tenant_id)


class FairThreads:
    """``total`` threads, handed to the waiting tenant holding the fewest (see the module's
    docstring). Invariant: ``busy`` = the sum of ``held`` <= ``total``, and nobody waits while
    ``busy`` < ``total``."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.busy = 0
        self.held: Counter[int | None] = Counter()
        self._waiting: dict[int | None, deque[tuple[int, anyio.Event]]] = {}
        self._tickets = itertools.count()
        self._limiter = anyio.CapacityLimiter(total)  # never waited on: busy <= total

    async def run(self, tenant: int | None, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` in a thread, once ``tenant``'s turn for one has come."""
        await self._acquire(tenant)
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._release(tenant)

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


def fair_threads() -> FairThreads:
    """This event loop's threads, as many as AnyIO's default limiter allows (the app's
    lifespan sets it to ``TUTOR_THREADS``)."""
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
