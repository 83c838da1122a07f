"""Courses whose prerequisites lie outside them: what to offer when they lock the course.

A course lists some of a catalog's skills; its skills may require skills it does not list
(``math.course.fractions`` starts with ``math.fractions-basics``, which requires
``math.division-facts`` of another course). A learner who has not learned those has nothing new
to do in the course: every policy gates new material on prerequisites, so it offers nothing, or
only reviews of what is learned already, again and again. This module names those *outside
prerequisites* and lets any policy choose among their items instead, as if they were a course
of their own (a derived catalog, built once per catalog, that holds one such course per course
of the catalog that has them): the policy's own rules (prerequisite order, target success,
reviews) then pick the next step towards the course. It knows no policy: the same for all.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from engine.catalog import Catalog, Course
from engine.selection import batch as b
from engine.selection.policy import Choice, Policy, SelectionContext
from engine.selection.prepared import prepare
from engine.selection.spaced import skill_memory
from engine.tracing.base import Tracer

__all__ = ["choose_outside", "learned_skills", "locked_outside", "outside_prerequisites"]

_CACHE_SIZE = 16  # catalogs (tenants) whose derived catalogs are kept at once


@dataclasses.dataclass(frozen=True, eq=False)
class _Derived:
    """A catalog, the same catalog with a course of each course's outside prerequisites, and
    those prerequisites per course (prerequisites first)."""

    catalog: Catalog
    derived: Catalog
    outside: Mapping[str, tuple[str, ...]]


_cache: OrderedDict[int, _Derived] = OrderedDict()
_lock = threading.Lock()


def prerequisite_course(course: str) -> str:
    """The id of the derived course of ``course``'s outside prerequisites."""
    return f"{course}#outside-prerequisites"


def outside_prerequisites(catalog: Catalog, course: str) -> tuple[str, ...]:
    """The skills that ``course``'s skills require, directly or through one another, and that
    the course does not list, prerequisites first (empty: the course is self-contained)."""
    return _derived(catalog).outside.get(course, ())


def learned_skills(tracer: Tracer[Any], state: Any, catalog: Catalog, *, at: datetime,
                   mastery_threshold: float, retention: float = 0.9) -> np.ndarray:
    """Per skill of ``catalog`` (its order), whether the learner learned it: P(known right
    after the last practice) for a tracer with memory (as reviews read it), mastery at ``at``
    otherwise, at least ``mastery_threshold``."""
    learned = skill_memory(tracer, state, prepare(catalog).index, at, retention).learned
    return np.asarray(learned >= mastery_threshold, dtype=bool)


def locked_outside(learned: np.ndarray, catalog: Catalog, course: str) -> tuple[str, ...]:
    """The outside prerequisites of ``course`` not learned yet, when they lock it: some skill
    of the course is not learned, and none of those is open (each has a prerequisite not
    learned). Empty otherwise. ``learned`` per skill, as :func:`learned_skills` gives it.

    (Every such lock leads outside the course: the prerequisites of a locked skill that the
    course lists are locked too, or not learned and open, and the prerequisite graph has no
    cycles.)"""
    prepared = prepare(catalog)
    outside = outside_prerequisites(catalog, course)
    if not outside:
        return ()
    todo = prepared.course_skills[course] & ~learned
    blocked = b.blocked_many(prepared, learned[None, :])[0]
    if not todo.any() or (todo & ~blocked).any():
        return ()
    index = {s: k for k, s in enumerate(prepared.skill_ids)}
    return tuple(s for s in outside if not learned[index[s]])


def choose_outside(policy: Policy, tracer: Tracer[Any], state: Any, catalog: Catalog,
                   context: SelectionContext) -> list[Choice]:
    """``policy``'s choices among the items of the outside prerequisites of ``context.course``
    (items all of whose skills are such prerequisites), each reason saying so; empty when the
    course has none, or the policy finds nothing among them."""
    course = context.course
    if course is None or not outside_prerequisites(catalog, course):
        return []
    derived = _derived(catalog).derived
    scope = prerequisite_course(course)
    choices = policy.choose(tracer, state, derived,
                            dataclasses.replace(context, course=scope))
    words = f"the prerequisites outside course {course!r}"
    return [dataclasses.replace(c, reason=(
        f"outside course {course!r}: its skills require skills it does not teach, learned "
        f"first; {c.reason.replace(f'course {scope!r}', words)}")) for c in choices]


def _derived(catalog: Catalog) -> _Derived:
    """``catalog``'s :class:`_Derived`, built on first use and cached (LRU, keyed by the
    catalog's id and holding the catalog, as :func:`engine.selection.prepared.prepare`)."""
    with _lock:
        found = _cache.get(id(catalog))
        if found is not None and found.catalog is catalog:
            _cache.move_to_end(id(catalog))
            return found
    outside = {cid: _closure(catalog, course) for cid, course in catalog.courses.items()}
    outside = {cid: skills for cid, skills in outside.items() if skills}
    courses = {**catalog.courses, **{
        prerequisite_course(cid): Course(prerequisite_course(cid),
                                         f"prerequisites outside {catalog.courses[cid].name}",
                                         skills) for cid, skills in outside.items()}}
    found = _Derived(catalog, Catalog(catalog.skills, catalog.items, courses, catalog.order),
                     outside)
    with _lock:
        _cache[id(catalog)] = found
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return found


def _closure(catalog: Catalog, course: Course) -> tuple[str, ...]:
    """The skills ``course``'s skills require, transitively, that it does not list, in the
    catalog's prerequisite order."""
    listed = set(course.skills)
    seen: set[str] = set()
    stack = [r for s in course.skills for r in catalog.skills[s].requires]
    while stack:
        skill = stack.pop()
        if skill in seen:
            continue
        seen.add(skill)
        stack.extend(catalog.skills[skill].requires)
    return tuple(s for s in catalog.order if s in seen and s not in listed)
