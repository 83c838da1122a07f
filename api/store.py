"""Learner-state caches: in process (default) or in Redis (shared by workers).

A cached state is only ever a copy of ``fold(tracer.update, events)``: each entry records the
``version`` (the seq of the last answer folded in) and the content version it was computed for.
Readers use an entry only when both match the database, so a stale, lost or flushed cache costs a
rebuild from the log, never a wrong answer. Writes are versioned: an entry is replaced only by a
newer one, so two workers finishing out of order cannot roll a state back.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import redis


@dataclass(frozen=True, slots=True)
class CachedState:
    version: int  # seq of the newest answer folded in (0: no answers)
    content_version: int
    state: bytes
    recent: tuple[str, ...]  # the newest item ids, oldest first


class StateStore(Protocol):
    def get(self, tenant_id: int, learner_id: str) -> CachedState | None: ...

    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        """Store ``entry`` unless a newer one is there; returns whether it was stored."""
        ...

    def delete(self, tenant_id: int, learner_id: str) -> None: ...

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        ...


class InProcessStore:
    """A dict: fast, private to one process (each worker keeps its own and revalidates)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._data: dict[tuple[int, str], CachedState] = {}
        self._lock = threading.Lock()
        self._max = max_entries

    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return self._data.get((tenant_id, learner_id))

    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        key = (tenant_id, learner_id)
        with self._lock:
            old = self._data.get(key)
            if old is not None and _newer_or_same(old, entry):
                return False
            if old is None and len(self._data) >= self._max:
                self._data.pop(next(iter(self._data)))  # evict the oldest insertion
            self._data[key] = entry
            return True

    def delete(self, tenant_id: int, learner_id: str) -> None:
        with self._lock:
            self._data.pop((tenant_id, learner_id), None)

    def ping(self) -> None:
        return None


def _newer_or_same(old: CachedState, new: CachedState) -> bool:
    return (old.content_version, old.version) >= (new.content_version, new.version)


# KEYS[1]: the entry; ARGV: content version, version, state, recent items (\x1f-separated), ttl
_PUT = """
local cur = redis.call('HMGET', KEYS[1], 'c', 'v')
if cur[1] then
  local c, v = tonumber(cur[1]), tonumber(cur[2])
  local nc, nv = tonumber(ARGV[1]), tonumber(ARGV[2])
  if c > nc or (c == nc and v >= nv) then return 0 end
end
redis.call('HSET', KEYS[1], 'c', ARGV[1], 'v', ARGV[2], 's', ARGV[3], 'r', ARGV[4])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return 1
"""
_SEP = "\x1f"  # unit separator: cannot occur in ids (control characters are rejected)


class RedisStore:
    """Entries as Redis hashes ``tutor:state:{tenant}:{learner}``, written by a compare-and-set
    script (atomic in Redis), expiring after ``ttl_seconds`` unused."""

    def __init__(self, url: str, ttl_seconds: int = 30 * 86_400) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._put = self._redis.register_script(_PUT)
        self._ttl = ttl_seconds

    @staticmethod
    def _key(tenant_id: int, learner_id: str) -> str:
        return f"tutor:state:{tenant_id}:{learner_id}"

    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        c, v, s, r = self._redis.hmget(self._key(tenant_id, learner_id), "c", "v", "s", "r")
        if c is None or v is None or s is None:
            return None
        recent = tuple(r.decode().split(_SEP)) if r else ()
        return CachedState(version=int(v), content_version=int(c), state=s, recent=recent)

    def put(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        stored = self._put(keys=[self._key(tenant_id, learner_id)],
                           args=[entry.content_version, entry.version, entry.state,
                                 _SEP.join(entry.recent), self._ttl])
        return bool(stored)

    def delete(self, tenant_id: int, learner_id: str) -> None:
        self._redis.delete(self._key(tenant_id, learner_id))

    def ping(self) -> None:
        self._redis.ping()
