"""Tenants, their API keys and their content.

A key is shown once, at creation; only its SHA-256 is stored. Lookups by key are cached in
process for a few seconds, so an answer costs no extra database round trip for authentication;
that delay is also how long another worker may serve the previous content after an import.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from api.db import api_keys, bump_content_version, content_packs, tenants
from api.models import check_covers, model_skills
from content.packs import Pack, catalog_from_packs, parse_pack
from engine.catalog import Catalog

KEY_PREFIX = "tk_"


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    target_success: float
    content_version: int


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_tenant(engine: Engine, name: str, target_success: float = 0.75) -> tuple[Tenant, str]:
    """A new tenant and its first API key (the only time the key is visible)."""
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
    return Tenant(row.id, row.name, row.target_success, row.content_version)


class KeyCache:
    """API key -> tenant, remembered for ``ttl`` seconds (keys are random: no negative caching
    needed beyond the same window)."""

    def __init__(self, engine: Engine, ttl: float = 2.0) -> None:
        self._engine = engine
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Tenant | None]] = {}

    def tenant_for(self, key: str) -> Tenant | None:
        digest = _hash(key)
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        with self._engine.connect() as conn:
            row = conn.execute(
                select(tenants).join(api_keys, api_keys.c.tenant_id == tenants.c.id)
                .where(api_keys.c.key_hash == digest)).first()
        tenant = None if row is None else Tenant(row.id, row.name, row.target_success,
                                                 row.content_version)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now, tenant)
        return tenant

    def forget(self, tenant_id: int) -> None:
        """Drop cached lookups of one tenant (after a change in this process)."""
        self._cache = {k: v for k, v in self._cache.items()
                       if v[1] is None or v[1].id != tenant_id}


def load_packs(engine: Engine, tenant_id: int) -> list[Pack]:
    with engine.connect() as conn:
        rows = conn.execute(select(content_packs.c.name, content_packs.c.document)
                            .where(content_packs.c.tenant_id == tenant_id)
                            .order_by(content_packs.c.name)).all()
    return [parse_pack(row.document, source=f"pack {row.name!r}") for row in rows]


def import_pack(engine: Engine, tenant_id: int, document: Any, source: str) -> Pack:
    """Validate ``document`` together with the tenant's other packs, then store it (replacing a
    pack of the same name) and bump the tenant's content version. Nothing is stored on error."""
    pack = parse_pack(document, source=source)
    others = [p for p in load_packs(engine, tenant_id) if p.name != pack.name]
    catalog = catalog_from_packs([*others, pack])  # raises ContentError naming the problem
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
