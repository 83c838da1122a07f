"""Learner-state caches: in process (default) or in Redis (shared by workers).

A cached state is only ever a copy of ``fold(tracer.update, events)``: each entry records the
learner's ``epoch`` (when the learner row was created: an erased and re-created learner is a new
epoch), the content version it was computed for, its ``version`` (the seq of the last answer
folded in) and its ``digest``, the identity of the log it folded (:func:`chain`: every answer
chains a random :func:`link` into the learner row's ``log_digest`` in the statement that takes
its seq). Readers use an entry only when all four match the database, so a stale, lost or
flushed cache, or one that ran ahead of a database restored from a backup (same seq, other
answers), costs a rebuild from the log, never a wrong answer. Writes are ordered: an entry is
replaced only by a newer one, so two workers finishing out of order cannot roll a state back;
but a state rebuilt from the log always replaces the entry (``rebuilt``), whatever it holds.

A damaged entry (a field that is not a number, recent items that are not UTF-8, a key of
another Redis type; and a state of the wrong size or with impossible values, which the tracer
refuses) is counted (``tutor_state_cache_damaged_total{kind}``), dropped and rebuilt: it costs a
rebuild, never an error or a wrong state. Damage that leaves every field plausible (a state of
valid probabilities that is not the log's) is caught too: each Redis entry carries a MAC over
all its fields and its key, keyed by a secret kept in the database (:func:`api.db.state_cache_key`),
so that whoever can write to Redis but not read the database can neither forge an entry nor
move one to another learner (kind ``mac``).

For the same reason an unreachable Redis is not an outage: reads and writes of entries then
report a miss, and every answer rebuilds its learner's state from the log (slower, never
wrong) until Redis is back. Only erasure, which must not leave a learner's state behind, fails.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import inspect
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import redis
import redis.asyncio
from sqlalchemy import Engine

from api import metrics
from api.db import state_cache_key
from api.settings import Settings

log = logging.getLogger("tutor.store")
_Method = TypeVar("_Method", bound=Callable[..., Any])
#: seconds an unreachable Redis is left alone after a failure: with a server that drops packets
#: every call would otherwise wait out its socket timeout
BACK_OFF_S = 1.0
#: seconds to connect to Redis, and to wait for a reply
TIMEOUT_S = 2.0


#: log digests are integers modulo this prime (2**61 - 1): doubled and added to a link, a
#: digest still fits a signed 64-bit integer (PostgreSQL's bigint, SQLite's integer)
DIGEST_MODULUS = (1 << 61) - 1
_HALF = (DIGEST_MODULUS + 1) // 2  # the inverse of 2 modulo DIGEST_MODULUS


def link() -> int:
    """A new answer's link in its learner's log digest: random (61 bits), so the digest tells
    apart any two sequences of appends, even of the same answers, and costs no hashing. (It
    need not be derived from the answer: the statement that appends the answer chains the
    same value into the learner row that the new cache entry records.) The ``random`` module
    is reseeded in a forked process, so workers draw different links."""
    return random.getrandbits(61) % DIGEST_MODULUS


def chain(digest: int, link: int) -> int:
    """The log digest after appending an answer of :func:`link` ``link`` to a log of digest
    ``digest`` (0: no answers). Order matters: swapping two answers changes the digest. The
    locked answer's upsert computes the same in SQL (:class:`api.answer_log.AnswerLog`)."""
    return (2 * digest + link) % DIGEST_MODULUS


def unchain(digest: int, link: int) -> int:
    """The digest that :func:`chain` turned into ``digest`` with ``link``."""
    return (digest - link) * _HALF % DIGEST_MODULUS


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached for something that must not be skipped (erasure)."""


class DamagedEntry(ValueError):
    """A cache entry that no writer of this code could have stored; ``kind`` says how."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class CachedState:
    epoch: int  # the learner row's creation time, in microseconds
    content_version: int
    version: int  # seq of the newest answer folded in (0: no answers)
    state: bytes
    recent: tuple[str, ...]  # the newest item ids, oldest first
    digest: int = 0  # the learner row's log_digest at ``version`` (:func:`chain`)

    def order(self) -> tuple[int, int, int]:
        return (self.epoch, self.content_version, self.version)


class StateStore(Protocol):
    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        """The learner's entry; None if there is none, or if it was damaged (then it is
        counted and dropped: :func:`damaged`)."""
        ...

    def put(self, tenant_id: int, learner_id: str, entry: CachedState,
            rebuilt: bool = False) -> bool:
        """Store ``entry`` unless a newer one is there (or the same version of the same log);
        ``rebuilt`` (a state just folded from the log) replaces any entry but an erased
        learner's tombstone. Returns whether it was stored."""
        ...

    def drop(self, tenant_id: int, learner_id: str) -> None:
        """Remove the learner's entry (found damaged), leaving any tombstone; best effort."""
        ...

    def inspect(self, tenant_id: int, learner_id: str) -> CachedState | None:
        """:meth:`get` for ``tutor rebuild-state``: raises :class:`DamagedEntry` for a damaged
        entry (counting nothing, dropping nothing), and any error of the store."""
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

    async def adrop(self, tenant_id: int, learner_id: str) -> None: ...

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

    def put(self, tenant_id: int, learner_id: str, entry: CachedState,
            rebuilt: bool = False) -> bool:
        key = (tenant_id, learner_id)
        with self._lock:
            if entry.epoch <= self._erased.get(key, -1):
                return False
            old = self._data.get(key)
            if old is not None and not rebuilt and (
                    old.order() > entry.order()
                    or (old.order() == entry.order() and old.digest == entry.digest)):
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

    def drop(self, tenant_id: int, learner_id: str) -> None:
        with self._lock:
            self._data.pop((tenant_id, learner_id), None)

    def inspect(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return self.get(tenant_id, learner_id)

    def ping(self) -> None:
        return None

    # a dict is never waited for: the event loop calls the same methods
    async def aget(self, tenant_id: int, learner_id: str) -> CachedState | None:
        return self.get(tenant_id, learner_id)

    async def aput(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        return self.put(tenant_id, learner_id, entry)

    async def adrop(self, tenant_id: int, learner_id: str) -> None:
        self.drop(tenant_id, learner_id)

    async def aclose(self) -> None:
        return None


# KEYS[1]: the entry. ARGV: epoch, content version, version, digest, state, recent items, ttl,
# rebuilt ("1": replace whatever is there), MAC. An erased learner leaves a tombstone (t=1) holding
# only its last epoch, so that an answer that committed before the erasure cannot write its
# state back afterwards; not even a rebuild replaces it. A damaged entry (a key of another
# type, fields that are not numbers) is replaced by any write. (Digests are compared as text:
# Lua's numbers are doubles.)
_PUT = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'hash' then
  local cur = redis.call('HMGET', KEYS[1], 'e', 'c', 'v', 'd', 't')
  local e, ne = tonumber(cur[1]), tonumber(ARGV[1])
  if e then
    if cur[5] then
      if e >= ne then return 0 end
    elseif ARGV[8] ~= '1' then
      if e > ne then return 0 end
      local c, v = tonumber(cur[2]), tonumber(cur[3])
      if e == ne and c and v then
        local nc, nv = tonumber(ARGV[2]), tonumber(ARGV[3])
        if c > nc or (c == nc and (v > nv or (v == nv and cur[4] == ARGV[4]))) then
          return 0
        end
      end
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'c', ARGV[2], 'v', ARGV[3], 'd', ARGV[4],
           's', ARGV[5], 'r', ARGV[6], 'm', ARGV[9])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[7]))
return 1
"""
# KEYS[1]: an entry found damaged; deleted unless it is a (sound) tombstone
_DROP = """
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' and redis.call('HEXISTS', KEYS[1], 't') == 1
    and tonumber(redis.call('HGET', KEYS[1], 'e')) then
  return 0
end
return redis.call('DEL', KEYS[1])
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
            async def run_async(store: RedisStore, *args: Any, **kwargs: Any) -> Any:
                if time.monotonic() < store._resting_until:
                    return miss
                try:
                    return await method(store, *args, **kwargs)
                except redis.RedisError as exc:
                    return failed(store, exc)
            return run_async  # type: ignore[return-value]

        @functools.wraps(method)
        def run(store: RedisStore, *args: Any, **kwargs: Any) -> Any:
            if time.monotonic() < store._resting_until:
                return miss
            try:
                return method(store, *args, **kwargs)
            except redis.RedisError as exc:
                return failed(store, exc)
        return run  # type: ignore[return-value]

    return decorate


class RedisStore:
    """Entries as Redis hashes, written by a compare-and-set script (atomic in Redis),
    expiring after ``ttl_seconds`` unused, each signed by a MAC keyed by ``key()`` (called
    once, at first use: the database's :func:`api.db.state_cache_key`). Keys hold a hash of the
    learner id, not the id.

    Two clients on one server: a blocking one for worker threads and an asyncio one for the
    event loop (its connections open on first use, in the loop that uses them). Reads and
    writes of entries are best effort (see the module docstring); :meth:`erase` and
    :meth:`ping` raise when Redis cannot be reached."""

    def __init__(self, url: str, key: Callable[[], bytes], ttl_seconds: int = 30 * 86_400,
                 tombstone_seconds: int = 600) -> None:
        self._mac_key_of = key
        self._mac_key: bytes | None = None
        self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                           socket_connect_timeout=TIMEOUT_S)
        self._put = self._redis.register_script(_PUT)
        self._drop = self._redis.register_script(_DROP)
        self._aredis = redis.asyncio.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                                    socket_connect_timeout=TIMEOUT_S)
        self._aput = self._aredis.register_script(_PUT)
        self._adrop = self._aredis.register_script(_DROP)
        self._ttl = ttl_seconds
        self._tombstone_ttl = tombstone_seconds
        self._resting_until = 0.0  # monotonic time until which Redis is not asked (after an error)

    @staticmethod
    def _key(tenant_id: int, learner_id: str) -> str:
        digest = hashlib.blake2b(learner_id.encode(), digest_size=16).hexdigest()
        return f"tutor:state:{tenant_id}:{digest}"

    @_best_effort(miss=None)
    def get(self, tenant_id: int, learner_id: str) -> CachedState | None:
        key = self._key(tenant_id, learner_id)
        try:
            return self._signed(key, self._redis.hmget(key, _FIELDS))
        except (DamagedEntry, redis.ResponseError) as exc:
            found = _damage(exc)
            self._drop(keys=[key], args=[])
        damaged(tenant_id, found.kind, str(found))
        return None

    @_best_effort(miss=None)
    async def aget(self, tenant_id: int, learner_id: str) -> CachedState | None:
        key = self._key(tenant_id, learner_id)
        try:
            return self._signed(key, await self._aredis.hmget(key, _FIELDS))
        except (DamagedEntry, redis.ResponseError) as exc:
            found = _damage(exc)
            await self._adrop(keys=[key], args=[])
        damaged(tenant_id, found.kind, str(found))
        return None

    @_best_effort(miss=False)
    def put(self, tenant_id: int, learner_id: str, entry: CachedState,
            rebuilt: bool = False) -> bool:
        key = self._key(tenant_id, learner_id)
        return bool(self._put(keys=[key], args=self._args(key, entry, rebuilt)))

    @_best_effort(miss=False)
    async def aput(self, tenant_id: int, learner_id: str, entry: CachedState) -> bool:
        key = self._key(tenant_id, learner_id)
        return bool(await self._aput(keys=[key], args=self._args(key, entry, False)))

    def inspect(self, tenant_id: int, learner_id: str) -> CachedState | None:
        key = self._key(tenant_id, learner_id)
        try:
            return self._signed(key, self._redis.hmget(key, _FIELDS))
        except redis.ResponseError as exc:
            raise _damage(exc) from None

    @_best_effort(miss=None)
    def drop(self, tenant_id: int, learner_id: str) -> None:
        self._drop(keys=[self._key(tenant_id, learner_id)], args=[])

    @_best_effort(miss=None)
    async def adrop(self, tenant_id: int, learner_id: str) -> None:
        await self._adrop(keys=[self._key(tenant_id, learner_id)], args=[])

    def _args(self, key: str, entry: CachedState, rebuilt: bool) -> list[int | bytes | str]:
        return [entry.epoch, entry.content_version, entry.version, entry.digest, entry.state,
                _SEP.join(entry.recent), self._ttl, int(rebuilt), self._mac(key, entry)]

    def _mac(self, key: str, entry: CachedState) -> bytes:
        """The entry's MAC: keyed BLAKE2b over its Redis key and every field, each
        length-prefixed (no two entries or keys encode alike)."""
        if self._mac_key is None:
            self._mac_key = self._mac_key_of()
        mac = hashlib.blake2b(key=self._mac_key, digest_size=16)
        for part in (key.encode(), b"%d:%d:%d:%d" % (*entry.order(), entry.digest),
                     entry.state, _SEP.join(entry.recent).encode()):
            mac.update(len(part).to_bytes(8, "little"))
            mac.update(part)
        return mac.digest()

    def _signed(self, key: str, values: list[Any]) -> CachedState | None:
        """:func:`_entry` of ``values`` (:data:`_FIELDS`), if its MAC is the entry's;
        :class:`DamagedEntry` (kind ``mac``) if not: an entry no writer holding the key
        stored, however plausible its values."""
        entry = _entry(values[:-1])
        if entry is not None and not hmac.compare_digest(values[-1] or b"",
                                                         self._mac(key, entry)):
            raise DamagedEntry("mac", "an entry whose MAC does not match its fields (changed "
                                      "or forged outside the service)")
        return entry

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


_FIELDS = ("e", "c", "v", "d", "s", "r", "t", "m")  # (the MAC last: RedisStore._signed)


def _entry(values: list[bytes | str | None]) -> CachedState | None:
    """The entry in a hash's :data:`_FIELDS` but the MAC, or None for a missing entry or a
    tombstone; :class:`DamagedEntry` for one that no writer stored (the state itself is the
    tracer's to check). (The clients do not decode responses: every value found is bytes.)
    An entry without a digest was written before digests were kept: its digest is 0, as is
    the log digest of every learner then (migration 0005)."""
    e, c, v, d, s, r, t = cast("list[bytes | None]", values)
    if t is not None:  # a tombstone
        _int(e)
        return None
    if e is None and c is None and v is None and s is None:
        return None
    if c is None or v is None or s is None:
        raise DamagedEntry("incomplete", "an entry without its epoch, content version, "
                                         "version or state")
    epoch, content_version, version = _int(e), _int(c), _int(v)
    digest = 0 if d is None else _int(d)
    if version < 0 or not 0 <= digest < DIGEST_MODULUS:
        raise DamagedEntry("number", "a version or digest out of range")
    try:
        recent = tuple(r.decode().split(_SEP)) if r else ()
    except UnicodeDecodeError:
        raise DamagedEntry("text", "recent items that are not UTF-8") from None
    return CachedState(epoch=epoch, content_version=content_version, version=version,
                       state=s, recent=recent, digest=digest)


def _int(value: bytes | None) -> int:
    """An integer field as Redis stores one (an optional minus sign and at most 19 ASCII
    digits: ``int()`` would also take spaces, underscores and other scripts' digits)."""
    if value is not None and 0 < len(value) < 20 and value.isdigit():  # (bytes: ASCII only)
        return int(value)
    digits = b"" if value is None else value.removeprefix(b"-")
    if value is None or not (0 < len(digits) < 20 and digits.isdigit()):
        raise DamagedEntry("number", "an epoch, content version, version or digest that is "
                                     "not an integer")
    return int(value)


def _damage(exc: DamagedEntry | redis.ResponseError) -> DamagedEntry:
    """The damage ``exc`` reports: a :class:`DamagedEntry`, or Redis's WRONGTYPE error (a key
    of another type); any other ``ResponseError`` is raised again."""
    if isinstance(exc, DamagedEntry):
        return exc
    if not str(exc).startswith("WRONGTYPE"):
        raise exc
    return DamagedEntry("type", "a key of another Redis type")


def damaged(tenant_id: int, kind: str, why: str) -> None:
    """Count a damaged cache entry of ``kind`` (just dropped: the caller rebuilds the state
    from the log) on ``/metrics`` and log it, without naming the learner."""
    metrics.STATE_CACHE_DAMAGED.labels(kind).inc()
    log.warning("a damaged state cache entry of tenant %d was dropped and its state rebuilt "
                "from the log: %s", tenant_id, why)


def make_store(settings: Settings, engine: Engine) -> StateStore:
    """The state store ``settings`` name: Redis at ``redis_url``, its entries signed with the
    key that ``engine``'s database keeps (:func:`api.db.state_cache_key`), else in process."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, functools.partial(state_cache_key, engine))
    return InProcessStore()
