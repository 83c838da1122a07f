"""A tenant's content: importing, listing and removing packs, reading skills and items."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.admin import list_packs, remove_pack
from api.browse import course_items, course_view, item_view, known, page, skill_view
from api.openapi import body_of, documented, parse_body
from api.render import JSON
from api.responses import (
    CourseResponse,
    CoursesPage,
    ItemResponse,
    ItemsPage,
    PacksResponse,
    PackSummary,
    SkillResponse,
    SkillsPage,
)
from api.routes.deps import Auth, FairRoute, keys, service
from api.schemas import CourseId, ItemId, PackIn, PackName, SkillId
from api.service import Conflict, NotFound
from api.tenants import Tenant, import_pack
from api.threads import run
from engine.catalog import ContentError

router = APIRouter(prefix="/v1/content", tags=["content"], default_response_class=JSON,
                   route_class=FairRoute)


@router.post("/packs", responses=documented(
    PackSummary, "The pack is imported (a pack of the same name replaced).", 422),
    openapi_extra=body_of(PackIn))
async def post_pack(request: Request, t: Auth) -> Any:
    """Import (or replace) a content pack; it is validated with the tenant's other packs.
    422 if the tenant's content would then hold more items than the server allows
    (`TUTOR_MAX_CONTENT_ITEMS`, 5,000 by default)."""
    # a pack is parsed in the tenant's thread, not on the event loop (tens of ms at 5,000
    # items, while every tenant's requests waited: bench/noisy_neighbour.py)
    return await run(_import, request, await request.body(), t, tenant=t.id)


def _import(request: Request, raw: bytes, t: Tenant) -> PackSummary:
    body = parse_body(PackIn, raw)
    pack = import_pack(service(request).engine, t.id, body.document(), f"pack {body.name!r}",
                       max_items=request.app.state.max_content_items)
    keys(request).forget(t.id)
    summary: PackSummary = {"name": pack.name, "skills": len(pack.skills),
                            "items": len(pack.items), "courses": len(pack.courses)}
    return summary


@router.get("/packs", responses=documented(PacksResponse, "The tenant's packs."))
def get_packs(request: Request, t: Auth) -> Any:
    """The tenant's content packs, by name, with their sizes and import times."""
    return {"packs": [p.to_json() for p in list_packs(service(request).engine, t.id)]}


@router.delete("/packs/{name}", status_code=204, responses=documented(
    None, "The pack is removed.", 404, 409, status=204))
def delete_pack(request: Request, name: PackName, t: Auth) -> Response:
    """Remove a content pack (409 while another pack depends on it). Learners keep their
    answers to its items; the model no longer counts them."""
    try:
        remove_pack(service(request).engine, t.id, name)
    except LookupError as exc:
        raise NotFound(str(exc)) from None
    except ContentError as exc:
        raise Conflict(str(exc)) from None
    keys(request).forget(t.id)
    return Response(status_code=204)


# ------------------------------------------------------------------ discovery
After = Annotated[str | None, Query(
    min_length=1, max_length=128, examples=["es.greetings"],
    description="Start after this id: the `next_after` of the previous page (omitted: from "
                "the first).")]
Limit = Annotated[int, Query(ge=1, le=1000, examples=[100],
                             description="At most this many per page.")]
InCourse = Annotated[str | None, Query(min_length=1, max_length=128,
                                       examples=["es.course.first-steps"],
                                       description="Only those of this course.")]


@router.get("/courses", responses=documented(CoursesPage, "A page of courses, by id."))
def get_courses(request: Request, t: Auth, after: After = None, limit: Limit = 100) -> Any:
    """The tenant's courses, by id, a page at a time."""
    catalog = service(request).runtimes.get(t).catalog
    courses, next_after = page(catalog.courses, after, limit,
                               lambda c: course_view(catalog, catalog.courses[c]))
    found: CoursesPage = {"courses": courses, "next_after": next_after}
    return found


@router.get("/courses/{course_id}", responses=documented(CourseResponse, "The course.", 404))
def get_course(request: Request, course_id: CourseId, t: Auth) -> Any:
    """A course: its skills and how many items it has."""
    catalog = service(request).runtimes.get(t).catalog
    return course_view(catalog, known(catalog.courses, course_id, "course"))


@router.get("/skills", responses=documented(SkillsPage, "A page of skills, by id.", 404))
def get_skills(request: Request, t: Auth, course: InCourse = None, after: After = None,
               limit: Limit = 100) -> Any:
    """The tenant's skills, by id, a page at a time, each with its prerequisites
    (`requires`) and items; `course` keeps a course's skills (404 if it has no such
    course)."""
    catalog = service(request).runtimes.get(t).catalog
    ids: Iterable[str] = catalog.skills
    if course is not None:
        ids = known(catalog.courses, course, "course").skills
    skills, next_after = page(ids, after, limit,
                              lambda s: skill_view(catalog, catalog.skills[s]))
    found: SkillsPage = {"skills": skills, "next_after": next_after}
    return found


@router.get("/skills/{skill_id}", responses=documented(SkillResponse, "The skill.", 404))
def get_skill(request: Request, skill_id: SkillId, t: Auth) -> Any:
    """A skill: its prerequisites (`requires`), BKT parameters and items."""
    catalog = service(request).runtimes.get(t).catalog
    return skill_view(catalog, known(catalog.skills, skill_id, "skill"))


@router.get("/items", responses=documented(ItemsPage, "A page of items, by id.", 404))
def get_items(request: Request, t: Auth, course: InCourse = None,
              skill: Annotated[str | None, Query(
                  min_length=1, max_length=128, examples=["es.greetings"],
                  description="Only the items that practise this skill.")] = None,
              after: After = None, limit: Limit = 100) -> Any:
    """The tenant's items, by id, a page at a time, with their content; `skill` keeps those
    that practise a skill, `course` those of a course (all of whose skills it lists: the
    items selection chooses from in it). 404 for a skill or course the tenant lacks."""
    rt = service(request).runtimes.get(t)
    ids: set[str] = set(rt.catalog.items)
    if skill is not None:
        ids &= {i.id for i in rt.catalog.items_for(known(rt.catalog.skills, skill, "skill").id)}
    if course is not None:
        ids &= set(course_items(rt.catalog, known(rt.catalog.courses, course, "course").id))
    items, next_after = page(ids, after, limit, lambda i: item_view(rt, rt.catalog.items[i]))
    found: ItemsPage = {"items": items, "next_after": next_after}
    return found


@router.get("/items/{item_id}", responses=documented(ItemResponse, "The item.", 404))
def get_item(request: Request, item_id: ItemId, t: Auth) -> Any:
    """An item: its skills and its content from the pack."""
    rt = service(request).runtimes.get(t)
    return item_view(rt, known(rt.catalog.items, item_id, "item"))
