"""A tenant's content: skills, items, the prerequisite graph between skills, and courses.

A :class:`Catalog` is validated once when built and immutable afterwards, so the API can cache
one per tenant and share it between requests without locks. Its skills' and items' BKT
parameters define a tracer (:meth:`Catalog.tracer`), which serves learners until a model fitted
on answers replaces it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.ids import id_problem
from engine.tracing.base import Tracer
from engine.tracing.bkt import BKT
from engine.tracing.bkt_params import DEFAULT_CLASS, BKTParams

#: where in a catalog's input a problem is: e.g. ``("skills", 3, "requires", 0)``, the first
#: prerequisite of the fourth skill given to :meth:`Catalog.build`
Path = tuple[str | int, ...]


class ContentError(ValueError):
    """Content that cannot be served: ``where`` says which pack or entity, ``message`` what is
    wrong, and ``path`` where in the input it is (see :data:`Path`; empty when unknown), which
    the pack loader turns into a JSON path."""

    def __init__(self, where: str, message: str, path: Path = ()) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message
        self.path = path


def path_text(path: Path) -> str:
    """``("skills", 3, "requires", 0)`` as ``skills[3].requires[0]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _check(ok: bool, path: Path, message: str) -> None:
    if not ok:
        raise ContentError(path_text(path), message, path)


def _probability(value: float, name: str) -> None:
    _check(0.0 <= value <= 1.0, (name,), f"must be between 0 and 1, got {value}")


def _guess_plus_slip(guess: float, slip: float, path: Path, context: str = "") -> None:
    _check(guess + slip < 1.0, path, f"guess + slip must be below 1{context}, got {guess} + "
                                     f"{slip} (else knowing the skill would not make a correct "
                                     "answer likelier)")


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
            _probability(getattr(self, name), name)
        _guess_plus_slip(self.guess, self.slip, ())


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

    def __post_init__(self) -> None:
        for name in ("guess", "slip"):
            value = getattr(self, name)
            if value is not None:
                _probability(value, name)
        if self.discrimination is not None:
            _check(self.discrimination > 0, ("discrimination",),
                   f"must be above 0, got {self.discrimination}")
        if self.guessing is not None:
            _check(0.0 <= self.guessing < 1.0, ("guessing",),
                   f"must be at least 0 and below 1, got {self.guessing}")


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
        """Check ids, references and acyclicity; raise :class:`ContentError` naming the
        problem, with its :data:`Path` in the lists given (``skills``, ``items``,
        ``courses``)."""
        skill_map = _unique(skills, "skill")
        item_map = _unique(items, "item")
        course_map = _unique(courses, "course")
        known = tuple(skill_map)
        for i, skill in enumerate(skill_map.values()):
            _check(skill.id not in skill.requires, ("skills", i, "requires"),
                   f"skill {skill.id!r} cannot require itself")
            for j, req in enumerate(skill.requires):
                _known_skill(req, known, ("skills", i, "requires", j))
        for i, item in enumerate(item_map.values()):
            _check(item.id != DEFAULT_CLASS, ("items", i, "id"),
                   f"{DEFAULT_CLASS!r} is reserved (it names each skill's default guess/slip "
                   "class)")
            _check(bool(item.skills), ("items", i, "skills"), "must list at least one skill")
            for j, s in enumerate(item.skills):
                _known_skill(s, known, ("items", i, "skills", j))
            if item.guess is not None or item.slip is not None:
                for s in item.skills:  # the item's own guess/slip with its skills' for the rest
                    bkt = skill_map[s].bkt
                    _guess_plus_slip(bkt.guess if item.guess is None else item.guess,
                                     bkt.slip if item.slip is None else item.slip,
                                     ("items", i), f" (with skill {s!r})")
        for i, course in enumerate(course_map.values()):
            for j, s in enumerate(course.skills):
                _known_skill(s, known, ("courses", i, "skills", j))
        return cls(skill_map, item_map, course_map, _topological_order(skill_map))

    def items_for(self, skill: str) -> tuple[Item, ...]:
        return self._items_by_skill[skill]

    def tracer(self, model: str = "bkt") -> Tracer[Any]:
        """The tracer this content's own parameters define: BKT with each skill's prior, learn,
        forget, guess and slip, and each item's guess/slip where it sets them; ``model`` names
        another model of the BKT family built on the same parameters (``bkt-memory``)."""
        from engine.tracing.registry import make_tracer

        tracer = make_tracer(model)
        if not isinstance(tracer, BKT):
            raise ValueError(f"content packs hold BKT parameters: a {model} model cannot be "
                             "built from them")
        return tracer.set_params(self.bkt_params())

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
    """``things`` by id; a repeated id is an error pointing at both places."""
    out: dict[str, Any] = {}
    first: dict[str, int] = {}
    for i, thing in enumerate(things):
        problem = id_problem(thing.id)
        _check(problem is None, (f"{kind}s", i, "id"), f"{problem} (got {thing.id!r})")
        _check(thing.id not in out, (f"{kind}s", i, "id"), f"duplicate {kind} id {thing.id!r} "
               f"(first defined at {kind}s[{first.get(thing.id)}])")
        out[thing.id] = thing
        first[thing.id] = i
    return out


def _known_skill(skill: str, known: tuple[str, ...], path: Path) -> None:
    if skill not in known:
        close = difflib.get_close_matches(skill, known, n=1)
        _check(False, path, f"unknown skill {skill!r}"
                            + (f" (did you mean {close[0]!r}?)" if close else ""))


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
                        repr(s) for s in cycle) + "; remove one of these 'requires' entries")
                if nxt not in state:
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
                order.append(node)
    return tuple(order)
