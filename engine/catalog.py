"""A tenant's content: skills, items, the prerequisite graph between skills, and courses.

A :class:`Catalog` is validated once when built and immutable afterwards, so the API can cache
one per tenant and share it between requests without locks. Its skills' and items' BKT
parameters define a tracer (:meth:`Catalog.tracer`), which serves learners until a model fitted
on answers replaces it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.tracing.base import Tracer
from engine.tracing.bkt import BKT
from engine.tracing.bkt_params import DEFAULT_CLASS, BKTParams


class ContentError(ValueError):
    """Content that cannot be served: ``where`` says which pack/field, ``message`` what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


@dataclass(frozen=True, slots=True)
class BKTSkillParams:
    """Standard BKT parameters of one skill (forget 0 is standard BKT)."""

    prior: float = 0.2
    learn: float = 0.15
    guess: float = 0.2
    slip: float = 0.1
    forget: float = 0.0

    def __post_init__(self) -> None:
        for name in ("prior", "learn", "guess", "slip", "forget"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ContentError(name, f"must be between 0 and 1, got {value}")
        if self.guess + self.slip >= 1.0:
            raise ContentError("guess", "guess + slip must be below 1 (else mastery would not "
                                        "help answer correctly)")


@dataclass(frozen=True, slots=True)
class Skill:
    id: str
    name: str
    bkt: BKTSkillParams = field(default_factory=BKTSkillParams)
    requires: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """An exercise. ``guess``/``slip`` (when known) refine the skill's BKT emission for this item;
    ``difficulty``/``discrimination``/``guessing`` are its IRT (3PL) parameters for placement."""

    id: str
    skills: tuple[str, ...]
    kind: str = "exercise"
    difficulty: float | None = None
    discrimination: float | None = None
    guessing: float | None = None
    guess: float | None = None
    slip: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Course:
    id: str
    name: str
    skills: tuple[str, ...]


class Catalog:
    """Validated, immutable content; build with :meth:`build`."""

    __slots__ = ("_items_by_skill", "courses", "items", "order", "skills")

    skills: Mapping[str, Skill]
    items: Mapping[str, Item]
    courses: Mapping[str, Course]
    order: tuple[str, ...]

    def __init__(self, skills: Mapping[str, Skill], items: Mapping[str, Item],
                 courses: Mapping[str, Course], order: tuple[str, ...]) -> None:
        self.skills = MappingProxyType(dict(skills))
        self.items = MappingProxyType(dict(items))
        self.courses = MappingProxyType(dict(courses))
        self.order = order  # skills, prerequisites before the skills that require them
        by_skill: dict[str, list[Item]] = {s: [] for s in skills}
        for item in items.values():
            for s in item.skills:
                by_skill[s].append(item)
        self._items_by_skill = {s: tuple(v) for s, v in by_skill.items()}

    @classmethod
    def build(cls, skills: Iterable[Skill], items: Iterable[Item],
              courses: Iterable[Course] = ()) -> Catalog:
        """Check references and acyclicity; raise :class:`ContentError` naming the problem."""
        skill_map = _unique(skills, "skill")
        item_map = _unique(items, "item")
        course_map = _unique(courses, "course")
        for skill in skill_map.values():
            for req in skill.requires:
                if req not in skill_map:
                    raise ContentError(f"skill {skill.id!r}", f"requires unknown skill {req!r}")
                if req == skill.id:
                    raise ContentError(f"skill {skill.id!r}", "requires itself")
        for item in item_map.values():
            if item.id == DEFAULT_CLASS and (item.guess is not None or item.slip is not None):
                raise ContentError(f"item {item.id!r}", "this id names each skill's default "
                                   "guess/slip class; rename the item")
            if not item.skills:
                raise ContentError(f"item {item.id!r}", "needs at least one skill")
            for s in item.skills:
                if s not in skill_map:
                    raise ContentError(f"item {item.id!r}", f"practises unknown skill {s!r}")
        for course in course_map.values():
            for s in course.skills:
                if s not in skill_map:
                    raise ContentError(f"course {course.id!r}", f"lists unknown skill {s!r}")
        return cls(skill_map, item_map, course_map, _topological_order(skill_map))

    def items_for(self, skill: str) -> tuple[Item, ...]:
        return self._items_by_skill[skill]

    def tracer(self) -> Tracer[Any]:
        """The tracer this content's own parameters define: BKT with each skill's prior, learn,
        forget, guess and slip, and each item's guess/slip where it sets them."""
        return BKT().set_params(self.bkt_params())

    def bkt_params(self) -> BKTParams:
        """The skills' BKT parameters, with a guess/slip class for each item that sets its own."""
        skills = tuple(self.skills)
        names: list[str] = []
        guess: list[float] = []
        slip: list[float] = []
        ptr = [0]
        for sid in skills:
            p = self.skills[sid].bkt
            for item in self._items_by_skill[sid]:
                if item.guess is not None or item.slip is not None:
                    names.append(item.id)
                    guess.append(p.guess if item.guess is None else item.guess)
                    slip.append(p.slip if item.slip is None else item.slip)
            names.append(DEFAULT_CLASS)
            guess.append(p.guess)
            slip.append(p.slip)
            ptr.append(len(names))
        return BKTParams(
            skills=skills,
            prior=np.array([self.skills[s].bkt.prior for s in skills]),
            learn=np.array([self.skills[s].bkt.learn for s in skills]),
            forget=np.array([self.skills[s].bkt.forget for s in skills]),
            gs_ptr=np.array(ptr, dtype=np.int64), gs_names=tuple(names),
            guess=np.array(guess), slip=np.array(slip),
        )


def _unique(things: Iterable[Any], kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for thing in things:
        if not thing.id:
            raise ContentError(kind, "id must be a non-empty string")
        if thing.id in out:
            raise ContentError(f"{kind} {thing.id!r}", "defined twice")
        out[thing.id] = thing
    return out


def _topological_order(skills: Mapping[str, Skill]) -> tuple[str, ...]:
    """Skills with prerequisites first; a cycle raises an error that spells the cycle out."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    order: list[str] = []
    for root in skills:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                state[node] = 1
                path.append(node)
            reqs = skills[node].requires
            if i < len(reqs):
                stack.append((node, i + 1))
                nxt = reqs[i]
                if state.get(nxt) == 1:
                    cycle = [*path[path.index(nxt):], nxt]
                    raise ContentError("prerequisites", "cycle " + " -> ".join(
                        repr(s) for s in cycle))
                if nxt not in state:
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
                order.append(node)
    return tuple(order)
