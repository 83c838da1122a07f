"""Administration: tenants, their API keys and their content packs, as the ``tutor`` commands
(:mod:`api.cli`) and the content routes use them.

A tenant may hold several keys at once: rotating without downtime is ``tutor key create``,
moving the apps to the new key, then ``tutor key revoke`` of the old one (``tutor key rotate``
does both at once, for a key that leaked). A revoked key is deleted; a server that looked it up
recently keeps accepting it for at most ``TUTOR_KEY_CACHE_SECONDS``.

Removing a content pack is refused while another pack depends on it (a skill that requires one
of its skills, an item or course on them); it bumps the content version like an import.
Learners keep their answers on the removed pack's items, which the model then ignores.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from api.db import api_keys, bump_content_version, content_packs, learners, tenants
from api.models import check_covers, model_skills
from api.tenants import KEY_PREFIX, _hash, load_packs
from content.packs import Pack, catalog_from_packs
from engine.catalog import ContentError

PREFIX_CHARS = 10  #: the characters of a key that are stored, to tell keys apart


@dataclass(frozen=True, slots=True)
class TenantInfo:
    id: int
    name: str
    created_at: datetime
    target_success: float
    content_version: int
    keys: int
    packs: tuple[str, ...]
    learners: int
    #: the default policy and tracer the tenant set (None: the engine's, ``tutor tenant
    #: defaults`` says which)
    policy: str | None = None
    tracer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "id": self.id, "created_at": _iso(self.created_at),
                "target_success": self.target_success,
                "content_version": self.content_version, "keys": self.keys,
                "packs": list(self.packs), "learners": self.learners,
                "policy": self.policy, "tracer": self.tracer}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An API key as stored: its id, its first characters and when it was created."""

    id: int
    prefix: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "prefix": self.prefix, "created_at": _iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class PackInfo:
    name: str
    title: str
    skills: int
    items: int
    courses: int
    imported_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "skills": self.skills,
                "items": self.items, "courses": self.courses,
                "imported_at": _iso(self.imported_at)}


def _iso(moment: datetime) -> str:
    """UTC, ISO 8601 (SQLite hands times back without their zone)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


# ---------------------------------------------------------------------- tenants
def list_tenants(engine: Engine) -> list[TenantInfo]:
    """Every tenant, by name, with its numbers of keys and learners and its packs."""
    with engine.connect() as conn:
        rows = conn.execute(select(tenants).order_by(tenants.c.name)).all()
        keys: dict[int, int] = {t: n for t, n in conn.execute(
            select(api_keys.c.tenant_id, func.count()).group_by(api_keys.c.tenant_id))}
        people: dict[int, int] = {t: n for t, n in conn.execute(
            select(learners.c.tenant_id, func.count()).group_by(learners.c.tenant_id))}
        packs: dict[int, list[str]] = {}
        for tenant_id, name in conn.execute(select(content_packs.c.tenant_id,
                                                   content_packs.c.name)
                                            .order_by(content_packs.c.name)):
            packs.setdefault(tenant_id, []).append(name)
    return [TenantInfo(r.id, r.name, r.created_at, r.target_success, r.content_version,
                       keys.get(r.id, 0), tuple(packs.get(r.id, ())), people.get(r.id, 0),
                       r.policy, r.tracer)
            for r in rows]


# ---------------------------------------------------------------------- API keys
def _new_key(conn: Connection, tenant_id: int, now: datetime) -> tuple[KeyInfo, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = conn.execute(insert(api_keys).values(
        tenant_id=tenant_id, key_hash=_hash(key), prefix=key[:PREFIX_CHARS], created_at=now)
        .returning(api_keys.c.id)).scalar_one()
    return KeyInfo(key_id, key[:PREFIX_CHARS], now), key


def create_key(engine: Engine, tenant_id: int) -> tuple[KeyInfo, str]:
    """A new API key for the tenant, besides its others (the only time the key is visible)."""
    with engine.begin() as conn:
        return _new_key(conn, tenant_id, datetime.now(UTC))


def list_keys(engine: Engine, tenant_id: int) -> list[KeyInfo]:
    """The tenant's keys, oldest first (never the keys themselves: only their prefixes)."""
    with engine.connect() as conn:
        rows = conn.execute(select(api_keys.c.id, api_keys.c.prefix, api_keys.c.created_at)
                            .where(api_keys.c.tenant_id == tenant_id)
                            .order_by(api_keys.c.created_at, api_keys.c.id)).all()
    return [KeyInfo(r.id, r.prefix, r.created_at) for r in rows]


def _find_key(conn: Connection, tenant_id: int, which: str | None) -> KeyInfo:
    """The tenant's key named by ``which``: its id, its prefix (as ``tutor key list`` shows
    it), or the whole key; ``None``: the tenant's only key. LookupError if that is not one key.
    """
    query = select(api_keys.c.id, api_keys.c.prefix, api_keys.c.created_at).where(
        api_keys.c.tenant_id == tenant_id)
    if which is None:
        pass
    elif which.isdigit():
        query = query.where(api_keys.c.id == int(which))
    elif len(which) > PREFIX_CHARS:
        query = query.where(api_keys.c.key_hash == _hash(which))
    else:
        query = query.where(api_keys.c.prefix == which)
    rows = conn.execute(query).all()
    if len(rows) != 1:
        if which is None:
            raise LookupError(f"the tenant has {len(rows)} keys: name the one to replace (by "
                              "the id or prefix `tutor key list` shows)")
        raise LookupError(f"no key {which!r} of this tenant (give the id or prefix that "
                          "`tutor key list` shows)" if not rows else
                          f"{len(rows)} keys of this tenant start with {which!r}: give its id")
    return KeyInfo(rows[0].id, rows[0].prefix, rows[0].created_at)


def revoke_key(engine: Engine, tenant_id: int, which: str) -> KeyInfo:
    """Delete one of the tenant's keys (by id, prefix or the key itself); the revoked key."""
    with engine.begin() as conn:
        found = _find_key(conn, tenant_id, which)
        conn.execute(delete(api_keys).where(api_keys.c.id == found.id))
    return found


def rotate_key(engine: Engine, tenant_id: int,
               which: str | None = None) -> tuple[KeyInfo, str, KeyInfo]:
    """Replace a key at once (one transaction): the new key, its secret and the revoked key.
    ``which`` as for :func:`revoke_key`; ``None`` when the tenant has only one key."""
    with engine.begin() as conn:
        old = _find_key(conn, tenant_id, which)
        conn.execute(delete(api_keys).where(api_keys.c.id == old.id))
        new, key = _new_key(conn, tenant_id, datetime.now(UTC))
    return new, key, old


# ---------------------------------------------------------------------- content packs
def list_packs(engine: Engine, tenant_id: int) -> list[PackInfo]:
    """The tenant's packs, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(content_packs.c.name, content_packs.c.document,
                                   content_packs.c.imported_at)
                            .where(content_packs.c.tenant_id == tenant_id)
                            .order_by(content_packs.c.name)).all()
    return [PackInfo(r.name, str(r.document.get("title", r.name)),
                     len(r.document.get("skills", ())), len(r.document.get("items", ())),
                     len(r.document.get("courses", ())), r.imported_at) for r in rows]


def dependents(removed: Pack, others: Sequence[Pack]) -> list[str]:
    """What in ``others`` uses a skill of ``removed``, as phrases (empty: nothing)."""
    gone = {s.id for s in removed.skills}
    found = []
    for pack in others:
        for skill in pack.skills:
            found += [f"skill {skill.id!r} of pack {pack.name!r} requires {s!r}"
                      for s in skill.requires if s in gone]
        for item in pack.items:
            found += [f"item {item.id!r} of pack {pack.name!r} practises {s!r}"
                      for s in item.skills if s in gone]
        for course in pack.courses:
            found += [f"course {course.id!r} of pack {pack.name!r} covers {s!r}"
                      for s in course.skills if s in gone]
    return found


def remove_pack(engine: Engine, tenant_id: int, name: str) -> Pack:
    """Remove a pack from the tenant's content and bump its content version; the removed pack.
    LookupError if the tenant has no such pack; ContentError (nothing changed) if another pack
    depends on it."""
    packs = load_packs(engine, tenant_id)
    removed = next((p for p in packs if p.name == name), None)
    if removed is None:
        raise LookupError(f"no pack {name!r} in this tenant's content (it has: "
                          f"{', '.join(repr(p.name) for p in packs) or 'none'})")
    others = [p for p in packs if p.name != name]
    needs = dependents(removed, others)
    if needs:
        shown = "; ".join(needs[:5]) + (f"; and {len(needs) - 5} more" if len(needs) > 5
                                         else "")
        raise ContentError(f"pack {name!r}", f"cannot be removed: other packs depend on it "
                           f"({shown}); remove or change those first")
    catalog = catalog_from_packs(others)  # what stays must still be valid
    with engine.begin() as conn:
        skills = model_skills(conn, tenant_id)
        if skills is not None:
            check_covers(skills, catalog.skills, what=f"the content without pack {name!r}")
        bump_content_version(conn, tenant_id)
        conn.execute(delete(content_packs).where(content_packs.c.tenant_id == tenant_id,
                                                 content_packs.c.name == name))
    return removed


# ---------------------------------------------------------------------- erasure
#: the tables that hold learners' data (every other table holds the tenants' own)
LEARNER_TABLES = ("events", "learners", "experiment_assignments", "placements")


def purge_erased(engine: Engine) -> list[str]:
    """Remove what erased learners left in the database files; the tables rewritten.

    PostgreSQL leaves a deleted row's bytes in the table's and its indexes' files until they
    are rewritten; a plain VACUUM only marks that space reusable. ``VACUUM FULL`` of the
    learner tables writes them (and their indexes and TOAST) anew and deletes the old files,
    under an exclusive lock on each table while it runs; then the same for the planner's
    statistics (``pg_statistic``), which sample column values. SQLite: ``VACUUM`` (erasures
    are clean already, with ``secure_delete``; this also cleans up after erasures made without
    it), then an emptied write-ahead log.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in LEARNER_TABLES:
                conn.exec_driver_sql(f"VACUUM (FULL, ANALYZE) {table}")
            # the planner's statistics may hold sampled learner ids: the ANALYZE above
            # replaced them, and this drops the old rows (a role that may not is warned and
            # skipped by PostgreSQL, not failed)
            conn.exec_driver_sql("VACUUM FULL pg_catalog.pg_statistic")
        return list(LEARNER_TABLES)
    with engine.connect() as conn:
        # on the driver's connection: VACUUM cannot run in the transaction SQLAlchemy begins
        dbapi = conn.connection.driver_connection
        assert dbapi is not None
        dbapi.execute("VACUUM")
        dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return ["(the whole database file)"]
