"""A tenant's content as the discovery endpoints show it: courses, skills and items, listed by
id a page at a time (the cursor ``after`` is the last id of the previous page, so pages stay
consistent while content changes), and each one's shape."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from api.responses import CourseResponse, ItemResponse, SkillResponse
from api.runtimes import Runtime
from api.service import NotFound
from engine.catalog import Catalog, Course, Item, Skill
from engine.selection.prepared import prepare

_T = TypeVar("_T")


def page(ids: Iterable[str], after: str | None, limit: int,
         show: Callable[[str], _T]) -> tuple[list[_T], str | None]:
    """The ``limit`` first of ``ids`` (sorted) after ``after``, shown, and the ``after`` of
    the next page (None: this is the last)."""
    ordered = sorted(ids)
    start = 0 if after is None else bisect_right(ordered, after)
    chosen = ordered[start:start + limit]
    more = start + limit < len(ordered)
    return [show(i) for i in chosen], chosen[-1] if more and chosen else None


def known(things: Mapping[str, _T], key: str, what: str) -> _T:
    """``things[key]``, or :class:`NotFound` naming the ``what`` the tenant does not have."""
    found = things.get(key)
    if found is None:
        raise NotFound(f"{what} {key!r} not found")
    return found


def course_items(catalog: Catalog, course: str) -> list[str]:
    """The items of ``course``: those all of whose skills it lists (the items selection
    chooses from in that course)."""
    prepared = prepare(catalog)
    return [prepared.item_ids[i] for i in prepared.course_items[course].nonzero()[0].tolist()]


def course_view(catalog: Catalog, course: Course) -> CourseResponse:
    return {"id": course.id, "name": course.name, "skills": list(course.skills),
            "items": int(prepare(catalog).course_items[course.id].sum())}


def skill_view(catalog: Catalog, skill: Skill) -> SkillResponse:
    return {"id": skill.id, "name": skill.name, "description": skill.description,
            "requires": list(skill.requires),
            "bkt": {k: getattr(skill.bkt, k) for k in skill.bkt.__slots__},
            "items": [i.id for i in catalog.items_for(skill.id)]}


def item_view(rt: Runtime, item: Item) -> ItemResponse:
    return {"id": item.id, "skills": list(item.skills), **rt.content[item.id],
            "difficulty": item.difficulty}
