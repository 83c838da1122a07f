"""Tenants, their API keys and their content.

A key is shown once, at creation; only its SHA-256 is stored. Lookups by key are cached in
process for a few seconds, so an answer costs no extra database round trip for authentication;
that delay is also how long another worker may serve the previous content after an import.
Unknown keys are cached too, and looked up together at a bounded rate (:class:`KeyCache`).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, delete, insert, select

from api.db import (
    api_keys,
    bump_content_version,
    content_packs,
    retry_if_disconnected,
    tenants,
)
from api.models import check_covers, model_skills
from api.tenant_row import Tenant
from content.packs import Pack, catalog_from_packs, parse_pack
from engine.catalog import Catalog, ContentError
from engine.ids import id_problem

KEY_PREFIX = "tk_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_tenant(engine: Engine, name: str, target_success: float = 0.75) -> tuple[Tenant, str]:
    """A new tenant and its first API key (the only time the key is visible)."""
    problem = id_problem(name)
    if problem is not None:
        raise ValueError(f"tenant name {problem} (got {name!r})")
    if not 0.0 < target_success < 1.0:
        raise ValueError("target success rate must be between 0 and 1")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if conn.execute(select(tenants.c.id).where(tenants.c.name == name)).first():
            raise ValueError(f"tenant {name!r} already exists")
        tenant_id = conn.execute(insert(tenants).values(
            name=name, created_at=now, target_success=target_success,
            content_version=0).returning(tenants.c.id)).scalar_one()
        conn.execute(insert(api_keys).values(tenant_id=tenant_id, key_hash=_hash(key),
                                             prefix=key[:10], created_at=now))
    return Tenant(tenant_id, name, target_success, 0), key


def tenant_by_name(engine: Engine, name: str) -> Tenant:
    with engine.connect() as conn:
        row = conn.execute(select(tenants).where(tenants.c.name == name)).first()
    if row is None:
        raise LookupError(f"no tenant named {name!r} (create it with `tutor tenant create`)")
    return Tenant.of(row)


#: seconds between two look-ups of keys never seen valid (a flood of random keys waits for
#: the next one, and shares it)
UNKNOWN_INTERVAL_S = 0.1
#: keys remembered, valid and unknown each (the oldest are forgotten first)
MAX_KEYS = 10_000
#: keys looked up by one statement
_BATCH = 500


class KeyCache:
    """API key -> tenant, remembered for ``ttl`` seconds, and so are unknown keys.

    Unknown keys are cheap. A key never seen valid is not looked up on its own: such keys are
    looked up together, by one statement, at most once per ``unknown_interval`` seconds; a
    request with one waits for the next look-up (0.1 s at most, at once when none ran in the
    last interval). So a flood of random keys costs this worker ten statements a second
    however fast it comes, and each such request is slowed down, while valid keys, served
    from the cache, are not. An unknown key is then refused without a look-up for ``ttl``
    seconds (the negative cache, keyed by the key's hash like the rest). A newly created key
    is accepted at once, in every worker: it was never looked up before, so no cached miss
    can stand in its way (keys are random; :meth:`forget` drops the misses too, for a worker
    that creates one). A revoked key is refused within ``ttl`` seconds. A key seen valid is
    looked up again at once when its ``ttl`` has passed, as before. Both caches are bounded
    (``max_entries`` keys each, the oldest dropped first).
    """

    def __init__(self, engine: Engine, ttl: float = 2.0,
                 unknown_interval: float = UNKNOWN_INTERVAL_S,
                 max_entries: int = MAX_KEYS) -> None:
        self._engine = engine
        self._ttl = ttl
        self.unknown_interval = unknown_interval
        self._max = max_entries
        self._known: dict[str, tuple[float, Tenant]] = {}  # hash -> (looked up, tenant)
        self._unknown: dict[str, float] = {}  # hash -> when it was found unknown
        self._batch: _Batch | None = None  # the next look-up of unknown keys, not yet run
        self._next_batch = 0.0  # monotonic time before which no batch starts

    async def tenant_for(self, key: str) -> Tenant | None:
        """The tenant of ``key``; None for an unknown key."""
        digest = _hash(key)
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None:
            if now - known[0] < self._ttl:
                return known[1]
            # a key seen valid: looked up again at once (it may have been revoked); requests
            # that come during the look-up take the tenant as it was (one look-up, not one each)
            self._known[digest] = (now, known[1])
            try:
                return (await self._found({digest}, now)).get(digest)
            except BaseException:
                self._known[digest] = known  # not looked up: the next request tries again
                raise
        missed = self._unknown.get(digest)
        if missed is not None and now - missed < self._ttl:
            return None
        batch = self._batch
        loop = asyncio.get_running_loop()
        if batch is None or batch.done.get_loop() is not loop:  # (a loop of an earlier app)
            batch = self._batch = _Batch(loop.create_future())
            batch.task = loop.create_task(self._run(batch, max(0.0, self._next_batch - now)))
        batch.digests.add(digest)
        found = await asyncio.shield(batch.done)
        return found.get(digest)

    async def _run(self, batch: _Batch, delay: float) -> None:
        """Look up ``batch``'s keys together, after ``delay`` seconds."""
        try:
            await asyncio.sleep(delay)
            self._batch = None  # keys that come from now on wait for the next batch
            now = time.monotonic()
            self._next_batch = now + self.unknown_interval
            batch.done.set_result(await self._found(batch.digests, now))
        except BaseException as exc:  # also cancellation: no waiter may hang
            if self._batch is batch:
                self._batch = None
            if not batch.done.done():
                batch.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise

    async def _found(self, digests: set[str], now: float) -> dict[str, Tenant]:
        """Look up the keys of hash ``digests``, remember what was found (and what was not);
        the tenants found by hash. The look-up runs in a thread (asyncio's own pool, not the
        routes' few): on the event loop, every request of the worker waited for the database
        meanwhile, ten times a second under a flood of unknown keys."""
        found = await asyncio.to_thread(self._lookup, sorted(digests))
        for digest in digests:
            tenant = found.get(digest)
            if tenant is None:
                self._known.pop(digest, None)
                _remember(self._unknown, digest, now, self._max)
            else:
                self._unknown.pop(digest, None)
                _remember(self._known, digest, (now, tenant), self._max)
        return found

    @retry_if_disconnected  # a read: safe to repeat on a fresh connection
    def _lookup(self, digests: list[str]) -> dict[str, Tenant]:
        found: dict[str, Tenant] = {}
        with self._engine.connect() as conn:
            for start in range(0, len(digests), _BATCH):
                for row in conn.execute(
                        select(api_keys.c.key_hash, tenants)
                        .join(api_keys, api_keys.c.tenant_id == tenants.c.id)
                        .where(api_keys.c.key_hash.in_(digests[start:start + _BATCH]))):
                    found[row.key_hash] = Tenant.of(row)
        return found

    def forget(self, tenant_id: int) -> None:
        """Drop cached lookups of one tenant, and every cached miss (after a change in this
        process: a key created, revoked, or content changed)."""
        self._known = {k: v for k, v in self._known.items() if v[1].id != tenant_id}
        self._unknown = {}

    def sizes(self) -> tuple[int, int]:
        """Keys remembered: valid, unknown."""
        return len(self._known), len(self._unknown)


@dataclass
class _Batch:
    """Unknown keys to look up together; ``done`` gives the tenants found, by key hash."""

    done: asyncio.Future[dict[str, Tenant]]
    digests: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None  # (held: the loop keeps only a weak reference)


_V = TypeVar("_V")


def _remember(cache: dict[str, _V], digest: str, value: _V, most: int) -> None:
    """``cache[digest] = value`` as its newest entry, dropping the oldest beyond ``most``."""
    cache.pop(digest, None)
    while len(cache) >= most:
        del cache[next(iter(cache))]
    cache[digest] = value


def load_packs(engine: Engine, tenant_id: int) -> list[Pack]:
    with engine.connect() as conn:
        rows = conn.execute(select(content_packs.c.name, content_packs.c.document)
                            .where(content_packs.c.tenant_id == tenant_id)
                            .order_by(content_packs.c.name)).all()
    return [parse_pack(row.document, source=f"pack {row.name!r}") for row in rows]


def import_pack(engine: Engine, tenant_id: int, document: Any, source: str,
                max_items: int | None = None) -> Pack:
    """Validate ``document`` together with the tenant's other packs, then store it (replacing a
    pack of the same name) and bump the tenant's content version. Nothing is stored on error:
    :class:`ContentError`, also when the tenant's content would hold more than ``max_items``
    items (every worker loads it, and any tenant's import would slow the others)."""
    if max_items is not None and isinstance(document, dict) \
            and len(document.get("items") or ()) > max_items:  # refused before parsing it
        raise ContentError(source, f"{len(document['items'])} items, more than the "
                           f"{max_items} a tenant's content may hold (TUTOR_MAX_CONTENT_ITEMS)",
                           ("items",))
    pack = parse_pack(document, source=source)
    others = [p for p in load_packs(engine, tenant_id) if p.name != pack.name]
    catalog = catalog_from_packs([*others, pack])  # raises ContentError naming the problem
    if max_items is not None and len(catalog.items) > max_items:
        raise ContentError(source, f"the tenant's content would hold {len(catalog.items)} "
                           f"items with it, more than the {max_items} it may hold "
                           "(TUTOR_MAX_CONTENT_ITEMS)")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        skills = model_skills(conn, tenant_id)
        if skills is not None:
            check_covers(skills, catalog.skills, what=source)
        bump_content_version(conn, tenant_id)
        conn.execute(delete(content_packs).where(content_packs.c.tenant_id == tenant_id,
                                                 content_packs.c.name == pack.name))
        conn.execute(insert(content_packs).values(tenant_id=tenant_id, name=pack.name,
                                                  document=pack.to_document(), imported_at=now))
    return pack


def load_catalog(engine: Engine, tenant_id: int) -> Catalog:
    return catalog_from_packs(load_packs(engine, tenant_id))
