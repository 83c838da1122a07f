"""The placement tests the API gives (:mod:`api.placement` stores and serves them): their two
methods and defaults, what each worker caches to give them, a running test restored from its
row, its result, and how a row is shown.

**Methods.** ``skills`` (the default): the per-skill test (:mod:`engine.placement.skills`)
over the course's calibrated items on the course's knowledge structure
(:mod:`engine.placement.knowledge`): items chosen for what they tell about which skills the
learner knows, a result for every skill of the course (its P(known)), and θ estimated alongside
over the same answers, shown as before. ``theta``: the one-ability test
(:mod:`engine.placement.session`): θ mapped to the skills its items practise
(:func:`engine.placement.starting_mastery`). Both draw from the same bank (the course's items
with a ``difficulty``) and restore from the same row: its seed, the answers (the learner's
first ones) and the item given now.

**Cache.** A bank's IRT tables and a course's knowledge model (4,096 knowledge states drawn
from a fixed seed: every worker and every restart draws the same) depend on the content only:
each worker builds them once per tenant, content version and course, and keeps them in a cache
bounded in bytes (:class:`TablesCache`, least recently used evicted).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Row

from api.responses import PlacementResponse, PlacementSkill
from api.runtimes import Runtime
from engine.catalog import Catalog, Item
from engine.placement import (
    Grid,
    ItemBank,
    KnowledgeModel,
    Placement,
    PlacementSession,
    SkillPlacement,
    SkillSession,
    SkillStop,
    StopRule,
    probability,
    starting_mastery,
)
from engine.placement.select import Tables
from engine.placement.skills import DEFAULT_CONFIDENCE
from engine.selection import Choice

__all__ = ["DEFAULT_CONFIDENCE", "GRID", "METHODS", "MIN_LENGTH", "RANDOMESQUE",
           "PlacementConflict", "PlacementLimits", "PlacementNotFound", "PlacementTests",
           "Session", "TablesCache", "choice", "item_bank", "placeable", "progress", "result",
           "utc", "view"]

METHODS = ("skills", "theta")
#: no test ends on precision before this many items (one lucky answer is not a placement)
MIN_LENGTH = 3
#: each item is drawn from the 3 most informative (exposure control: the first items of a
#: course are not every learner's same item; a skill's items are about equally informative)
RANDOMESQUE = 3
#: the quadrature grid of every test (one object: the cached tables are built on it)
GRID = Grid.normal()

Session = PlacementSession | SkillSession


class PlacementNotFound(LookupError):
    """No placement for the learner, or a course the content does not have."""


class PlacementConflict(ValueError):
    """A placement that cannot be started, answered or stopped as asked."""


@dataclass(frozen=True, slots=True)
class PlacementLimits:
    """What one tenant's placements may cost a worker (``TUTOR_*`` settings, api.settings).

    ``bank_items``: the most calibrated items a test draws from (a course with more cannot be
    placed in: a bank's tables are 4 x 81 x items floats, 2.6 kB an item, and an answer's
    selection is a pass over them); ``cache_bytes``: the banks' tables and the courses'
    knowledge models kept per worker, least recently used evicted first."""

    bank_items: int = 2_000
    cache_bytes: int = 64 * 1024 * 1024


class Sized(Protocol):
    """What :class:`TablesCache` keeps: anything that says its size."""

    @property
    def nbytes(self) -> int: ...


class TablesCache:
    """Banks' tables and knowledge models by key, bounded by their size in bytes, least
    recently used evicted first; an entry larger than the whole budget is not kept.
    Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._kept: OrderedDict[Hashable, Sized] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            entry = self._kept.get(key)
            if entry is not None:
                self._kept.move_to_end(key)
            return entry

    def put(self, key: Hashable, entry: Sized) -> None:
        size = entry.nbytes
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            if size > self.max_bytes:
                return
            while self.bytes + size > self.max_bytes:
                _, evicted = self._kept.popitem(last=False)
                self.bytes -= evicted.nbytes
            self._kept[key] = entry
            self.bytes += size

    def __len__(self) -> int:
        return len(self._kept)


class PlacementTests:
    """The tests of every tenant's courses, on the worker's cache."""

    def __init__(self, limits: PlacementLimits) -> None:
        self.limits = limits
        self.cache = TablesCache(limits.cache_bytes)

    def tables(self, rt: Runtime, tenant_id: int, course: str | None) -> Tables:
        """The IRT tables of ``course``'s bank (:class:`PlacementConflict`: no calibrated
        item, or more than the bank limit)."""
        key = (tenant_id, rt.content_version, course, "tables")
        tables: Tables | None = self.cache.get(key)
        if tables is None:
            tables = Tables.build(item_bank(rt.catalog, course, self.limits.bank_items), GRID)
            self.cache.put(key, tables)
        return tables

    def model(self, rt: Runtime, tenant_id: int, course: str | None,
              bank: ItemBank) -> KnowledgeModel:
        """The knowledge model of ``course``'s skills (None: every skill) over ``bank``'s
        items, in the bank's order."""
        key = (tenant_id, rt.content_version, course, "skills")
        model: KnowledgeModel | None = self.cache.get(key)
        if model is None:
            skills = rt.catalog.courses[course].skills if course else tuple(rt.catalog.skills)
            model = KnowledgeModel.from_catalog(rt.catalog, skills, bank.ids)
            self.cache.put(key, model)
        return model

    def test(self, rt: Runtime, tenant_id: int, course: str | None, method: str,
             max_length: int, se_target: float | None,
             confidence: float | None) -> Placement | SkillPlacement:
        """The test of ``method`` over ``course``'s calibrated items with this stopping rule."""
        tables = self.tables(rt, tenant_id, course)
        min_length = min(MIN_LENGTH, max_length)
        if method == "theta":
            return Placement(tables.bank, randomesque=RANDOMESQUE, grid=GRID,
                             stop=StopRule(min_length, max_length, se_target),
                             shared_tables=tables)
        return SkillPlacement(self.model(rt, tenant_id, course, tables.bank),
                              SkillStop(min_length, max_length, confidence, se_target),
                              randomesque=RANDOMESQUE, tables=tables)

    def session(self, rt: Runtime, row: Row[Any],
                answers: Sequence[tuple[str, bool]]) -> Session:
        """The running test of ``row`` after ``answers`` (all of them placement answers):
        restored from them and the row's item given now, or replayed from its seed for a
        test started before the row kept that (migration 0008)."""
        test = self.test(rt, row.tenant_id, row.course, row.method, row.max_length,
                         row.se_target, row.confidence)
        try:
            if row.next_item is not None:
                return test.restore(row.seed, answers, row.next_item)
            return test.resume(row.seed, answers)
        except (ValueError, KeyError) as exc:
            raise PlacementConflict(
                f"learner {row.learner_id!r}'s placement cannot be resumed on the tenant's "
                f"content as it is now ({exc})") from None


# ---------------------------------------------------------------------- results
def _estimates(session: SkillSession) -> list[dict[str, Any]]:
    """The session's per-skill estimates as the row stores them (6 digits)."""
    return [{"skill": e.skill, "p_known": round(e.p_known, 6), "answered": e.answered}
            for e in session.skills()]


def progress(session: Session) -> dict[str, Any]:
    """The estimates of a running session as its row keeps them: θ and its standard error,
    and a per-skill test's skills."""
    estimate = session.estimate()
    values: dict[str, Any] = {"theta": None if estimate is None else float(estimate.theta),
                              "se": None if estimate is None else float(estimate.se)}
    if isinstance(session, SkillSession):
        values["skills"] = _estimates(session)
    return values


def result(catalog: Catalog, session: Session) -> dict[str, Any]:
    """An ended session's result as its row stores it: :func:`progress` and the starting
    masteries (6 digits: what is stored is what a rebuild uses)."""
    if isinstance(session, SkillSession):
        mastery = session.mastery()
    else:
        bank = session.placement.bank
        per_skill: dict[str, list[int]] = {}
        for i, item_id in enumerate(bank.ids):
            for skill in catalog.items[item_id].skills:
                per_skill.setdefault(skill, []).append(i)
        mastery = starting_mastery(*session.posterior, {
            s: (bank.a[idx], bank.b[idx]) for s, idx in per_skill.items()})
    return {**progress(session), "mastery": {s: round(p, 6) for s, p in mastery.items()}}


# ---------------------------------------------------------------------- the item given
def choice(rt: Runtime, item_id: str, row: Any) -> Choice:
    """The test's item to give now, with its IRT P(correct) at the estimate and why it is
    given; ``row``: the placement's row, or anything with its ``method``, ``theta``, ``se``,
    ``answers``, ``max_length`` and ``skills`` (what the session is about to store)."""
    item = rt.catalog.items[item_id]
    p = float(probability(_bank(item), row.theta)[0, 0])
    head = f"placement test, item {row.answers + 1} of at most {row.max_length}: "
    if row.method == "theta":
        why = (f"the most informative item for the ability estimate so far ({row.theta:.2f}, "
               f"standard error {row.se:.2f})")
    else:
        known = {e["skill"]: e["p_known"] for e in row.skills or ()}
        why = ("the item whose answer tells the most about which of the course's skills the "
               "learner knows (P(known) so far: " + ", ".join(
                   f"{s} {known[s]:.2f}" for s in item.skills if s in known) + ")")
    return Choice(item_id, item.skills, p, head + why)


@dataclass(frozen=True, slots=True)
class _Pending:
    """What :func:`choice` reads of a row, for a session about to be stored."""

    method: str
    theta: float
    se: float
    answers: int
    max_length: int
    skills: list[dict[str, Any]] | None


def session_choice(rt: Runtime, session: Session, method: str) -> Choice:
    """The running session's next item as :func:`view` will show it from the row it is
    about to be written to (the same numbers: the row's)."""
    item_id = session.next_item()
    values = progress(session)
    assert item_id is not None and values["theta"] is not None
    return choice(rt, item_id, _Pending(method, values["theta"], values["se"],
                                        session.length, session.placement.stop.max_length,
                                        values.get("skills")))


# ---------------------------------------------------------------------- the bank
def placeable(catalog: Catalog, course: str | None, item_id: str | None) -> bool:
    """Whether ``item_id`` is one of ``course``'s calibrated items (see :func:`item_bank`)."""
    item = None if item_id is None else catalog.items.get(item_id)
    if item is None or item.difficulty is None:
        return False
    if course is None:
        return True
    return course in catalog.courses and set(item.skills) <= set(catalog.courses[course].skills)


def _bank(*items: Item) -> ItemBank:
    """The bank of calibrated ``items``: discrimination 1 and guessing 0 where the pack gives
    none; content group: the item's first skill."""
    return ItemBank.build([i.discrimination or 1.0 for i in items],
                          [i.difficulty for i in items if i.difficulty is not None],
                          [i.guessing or 0.0 for i in items],
                          groups=[i.skills[0] for i in items], ids=[i.id for i in items])


def item_bank(catalog: Catalog, course: str | None, max_items: int | None = None) -> ItemBank:
    """The calibrated items (with a ``difficulty``) of ``course`` (None: of the catalog) whose
    skills are all the course's (:class:`PlacementConflict`: none, or more than
    ``max_items``)."""
    if course is not None and course not in catalog.courses:
        raise PlacementConflict(f"course {course!r} is no longer in the tenant's content")
    skills = set(catalog.courses[course].skills) if course else set(catalog.skills)
    items = [i for i in catalog.items.values()
             if i.difficulty is not None and set(i.skills) <= skills]
    where = f"course {course!r}" if course else "the content"
    if not items:
        raise PlacementConflict(f"{where} has no calibrated items (items with a difficulty) "
                                "to place with")
    if max_items is not None and len(items) > max_items:
        raise PlacementConflict(
            f"{where} has {len(items)} calibrated items, more than the {max_items} a placement "
            "test may draw from (TUTOR_MAX_PLACEMENT_ITEMS): place in a smaller course")
    return _bank(*items)


# ---------------------------------------------------------------------- the row shown
def _shown(value: float) -> float:
    """A number as the API shows it: 6 decimals, and never ``-0.0`` (a symmetric posterior's
    mean comes out as -0.0 or 0.0 by rounding noise; JSON clients would print the sign)."""
    return round(float(value), 6) + 0.0


def _skills(row: Row[Any]) -> list[PlacementSkill] | None:
    """The row's per-skill estimates with their status at the test's confidence."""
    if row.skills is None:
        return None
    c = DEFAULT_CONFIDENCE if row.confidence is None else row.confidence
    return [{"skill": e["skill"], "p_known": e["p_known"], "answered": e["answered"],
             "status": "known" if e["p_known"] >= c else
             "not known" if e["p_known"] <= 1.0 - c else "uncertain"} for e in row.skills]


def view(rt: Runtime, row: Row[Any], pending: str | None) -> PlacementResponse:
    """The placement as its row stores it: while it runs, the estimates so far and
    ``pending`` (the item to give now: None, none shown); once ended, its result."""
    running = row.status == "running"
    return {"learner_id": row.learner_id, "course": row.course, "method": row.method,
            "status": row.status,
            "theta": None if row.theta is None else _shown(row.theta),
            "se": None if row.se is None else _shown(row.se),
            "items_used": row.answers, "items": list(row.items or []),
            "max_length": row.max_length, "se_target": row.se_target,
            "confidence": row.confidence, "skills": _skills(row),
            "mastery": None if row.mastery is None else dict(row.mastery),
            "next": None if not running or pending is None else rt.exercise(
                choice(rt, pending, row)),
            "reason": row.reason,
            "started_at": utc(row.started_at),
            "ended_at": None if row.ended_at is None else utc(row.ended_at)}


def utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
