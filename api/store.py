"""Learner-state caches: in process (default) or in Redis (shared by workers).

A cached state is only ever a copy of ``fold(tracer.update, events)``: each entry records the
learner's ``epoch`` (when the learner row was created: an erased and re-created learner is a new
epoch), the content version it was computed for, and its ``version`` (the seq of the last answer
folded in). Readers use an entry only when all three match the database, so a stale, lost or
flushed cache costs a rebuild from the log, never a wrong answer. Writes are ordered: an entry is
replaced only by a newer one, so two workers finishing out of order cannot roll a state back.

For the same reason an unreachable Redis is not an outage: reads and writes of entries then
report a miss, and every answer rebuilds its learner's state from the log (slower, never
wrong) until Redis is back. Only erasure, which must not leave a learner's state behind, fails.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio

from api import metrics
from api.settings import Settings

log = logging.getLogger("tutor.store")
_Method = TypeVar("_Method", bound=Callable[..., Any])
#: seconds an unreachable Redis is left alone after a failure: with a server that drops packets
#: every call would otherwise wait out its socket timeout
BACK_OFF_S = 1.0
#: seconds to connect to Redis, and to wait for a reply
TIMEOUT_S = 2.0


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached for something that must not be skipped (erasure)."""


@dataclass(frozen=True, slots=True)
class CachedState:
    epoch: int  # the learner row's creation time, in microseconds
    content_version: int
    version: int  # seq of the newest answer folded in (0: no answers)
    state: bytes
    recent: tuple[str, ...]  # the newest item ids, oldest first

    def order(self) -> tuple[int, int, int]:
        return (self.epoch, self.content_version, self.version)


class StateStore(Protocol):
    def get(self, tenant_id: int, learner_id: str) -> CachedState | None: ...

    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        """Store ``entry`` unless a newer one is there; returns whether it was stored."""
        ...

    def erase(self, tenant_id: int, learner_id: str, epoch: int) -> None:
        """Drop the learner's entry, and refuse late writes for epochs up to ``epoch``."""
        ...

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...

    # the same, for the event loop (the one-statement answer runs there)
    async def aget(self, tenant_id: int, learner_id: str) -> CachedState | None: ...

    async def aput(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool: ...

    async def aclose(self) -> None:
        """Close the event loop's connections (the app's lifespan ends)."""
        ...


class InProcessStore:
    """A dict: fast, private to one process (each worker keeps its own and revalidates)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._data: dict[tuple[int, str], CachedState] = {}
        self._erased: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return self._data.get((tenant_id, learner_id))

    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        key = (tenant_id, learner_id)
        with self._lock:
            old = self._data.get(key)
            if (old is not None and old.order() >= entry.order()) or \
                    entry.epoch <= self._erased.get(key, -1):
                return False
            if old is None and len(self._data) >= self._max:
                self._data.pop(next(iter(self._data)))  # evict the oldest insertion
            self._data[key] = entry
            return True

    def erase(self, tenant_id: int, learner_id: str, epoch: int) -> None:
        with self._lock:
            self._data.pop((tenant_id, learner_id), None)
            if len(self._erased) > 100_000:
                self._erased.clear()
            self._erased[(tenant_id, learner_id)] = epoch

    def ping(self) -> None:
        return None

    # a dict is never waited for: the event loop calls the same methods
    async def aget(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return self.get(tenant_id, learner_id)

    async def aput(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        return self.put(tenant_id, learner_id, entry)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the entry. ARGV: epoch, content version, version, state, recent items, ttl.
# An erased learner leaves a tombstone (t=1) holding only its last epoch, so that an answer that
# committed before the erasure cannot write its state back afterwards.
_PUT = """
local cur = redis.call('HMGET', KEYS[1], 'e', 'c', 'v', 't')
if cur[1] then
  local e, ne = tonumber(cur[1]), tonumber(ARGV[1])
  if e > ne then return 0 end
  if e == ne then
    if cur[4] then return 0 end
    local c, v = tonumber(cur[2]), tonumber(cur[3])
    local nc, nv = tonumber(ARGV[2]), tonumber(ARGV[3])
    if c > nc or (c == nc and v >= nv) then return 0 end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'c', ARGV[2], 'v', ARGV[3], 's', ARGV[4], 'r', ARGV[5])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[6]))
return 1
"""
_SEP = "\x1f"  # unit separator: cannot occur in ids (control characters are rejected)


def _best_effort(miss: bool | None) -> Callable[[_Method], _Method]:
    """Make a :class:`RedisStore` read or write (sync or async) return ``miss`` instead of
    raising while Redis cannot be reached, and skip Redis for :data:`BACK_OFF_S` after each
    failure. A miss costs a rebuild from the log; a lost write leaves an older entry that
    readers recognise as stale."""

    def decorate(method: _Method) -> _Method:
        operation = method.__name__.removeprefix("a")

        def failed(store: RedisStore, exc: redis.RedisError) -> bool | None:
            store._resting_until = time.monotonic() + BACK_OFF_S
            metrics.STATE_STORE_ERRORS.labels(operation).inc()
            log.warning("state store %s failed (%s: %s): states rebuild from the log until "
                        "Redis answers again", operation, type(exc).__name__, exc)
            return miss

        if inspect.iscoroutinefunction(method):
            @functools.wraps(method)
            async def run_async(store: RedisStore, *args: Any) -> Any:
                if time.monotonic() < store._resting_until:
                    return miss
                try:
                    return await method(store, *args)
                except redis.RedisError as exc:
                    return failed(store, exc)
            return run_async  # type: ignore[return-value]

        @functools.wraps(method)
        def run(store: RedisStore, *args: Any) -> Any:
            if time.monotonic() < store._resting_until:
                return miss
            try:
                return method(store, *args)
            except redis.RedisError as exc:
                return failed(store, exc)
        return run  # type: ignore[return-value]

    return decorate


class RedisStore:
    """Entries as Redis hashes, written by a compare-and-set script (atomic in Redis),
    expiring after ``ttl_seconds`` unused. Keys hold a hash of the learner id, not the id.

    Two clients on one server: a blocking one for worker threads and an asyncio one for the
    event loop (its connections open on first use, in the loop that uses them). Reads and
    writes of entries are best effort (see the module docstring); :meth:`erase` and
    :meth:`ping` raise when Redis cannot be reached."""

    def __init__(self, url: str, ttl_seconds: int = 30 * 86_400,
                 tombstone_seconds: int = 600) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                           socket_connect_timeout=TIMEOUT_S)
        self._put = self._redis.register_script(_PUT)
        self._aredis = redis.asyncio.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                                    socket_connect_timeout=TIMEOUT_S)
        self._aput = self._aredis.register_script(_PUT)
        self._ttl = ttl_seconds
        self._tombstone_ttl = tombstone_seconds
        self._resting_until = 0.0  # monotonic time until which Redis is not asked (after an error)

    @staticmethod
    def _key(tenant_id: int, learner_id: str) -> str:
        digest = hashlib.blake2b(learner_id.encode(), digest_size=16).hexdigest()
        return f"tutor:state:{tenant_id}:{digest}"

    @_best_effort(miss=None)
    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return _entry(self._redis.hmget(self._key(tenant_id, learner_id), _FIELDS))

    @_best_effort(miss=None)
    async def aget(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return _entry(await self._aredis.hmget(self._key(tenant_id, learner_id), _FIELDS))

    @_best_effort(miss=False)
    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        return bool(self._put(keys=[self._key(tenant_id, learner_id)], args=self._args(entry)))

    @_best_effort(miss=False)
    async def aput(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        return bool(await self._aput(keys=[self._key(tenant_id, learner_id)],
                                     args=self._args(entry)))

    def _args(self, entry: CachedState) -> list[int | bytes | str]:
        return [entry.epoch, entry.content_version, entry.version, entry.state,
                _SEP.join(entry.recent), self._ttl]

    def erase(self, tenant_id: int, learner_id: str, epoch: int) -> None:
        key = self._key(tenant_id, learner_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"e": epoch, "t": 1})
        pipe.expire(key, self._tombstone_ttl)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise StoreUnavailable(
                f"the state store (Redis) cannot be reached ({type(exc).__name__}), so the "
                "learner's cached state cannot be erased; nothing was erased: retry") from exc

    def ping(self) -> None:
        self._redis.ping()

    async def aclose(self) -> None:
        await self._aredis.aclose()


_FIELDS = ("e", "c", "v", "s", "r")


def _entry(values: list[bytes | str | None]) -> CachedState | None:
    """The entry in a hash's :data:`_FIELDS`, or None for a missing entry or a tombstone.
    (The clients do not decode responses: every value found is bytes.)"""
    e, c, v, s, r = values
    if e is None or c is None or v is None or not isinstance(s, bytes):
        return None
    recent = tuple(r.decode().split(_SEP)) if isinstance(r, bytes) and r else ()
    return CachedState(epoch=int(e), content_version=int(c), version=int(v), state=s,
                       recent=recent)


def make_store(settings: Settings) -> StateStore:
    """The state store ``settings`` name: Redis at ``redis_url``, else in process."""
    return RedisStore(settings.redis_url) if settings.redis_url else InProcessStore()
