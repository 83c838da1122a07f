"""A tenant's content: importing packs, reading skills and items."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.render import JSON
from api.responses import ItemResponse, PackSummary, SkillResponse
from api.routes.deps import Auth, keys, service
from api.schemas import PackIn, PathId
from api.service import NotFound
from api.tenants import import_pack

router = APIRouter(prefix="/v1/content", tags=["content"], default_response_class=JSON)


@router.post("/packs")
def post_pack(request: Request, body: PackIn, t: Auth) -> Any:
    """Import (or replace) a content pack; it is validated with the tenant's other packs."""
    pack = import_pack(service(request).engine, t.id, body.document(), f"pack {body.name!r}")
    keys(request).forget(t.id)
    summary: PackSummary = {"name": pack.name, "skills": len(pack.skills),
                            "items": len(pack.items), "courses": len(pack.courses)}
    return summary


@router.get("/skills/{skill_id}")
def get_skill(request: Request, skill_id: PathId, t: Auth) -> Any:
    catalog = service(request).runtimes.get(t).catalog
    skill = catalog.skills.get(skill_id)
    if skill is None:
        raise NotFound(f"skill {skill_id!r} not found")
    found: SkillResponse = {
        "id": skill.id, "name": skill.name, "requires": list(skill.requires),
        "bkt": {k: getattr(skill.bkt, k) for k in skill.bkt.__slots__},
        "items": [i.id for i in catalog.items_for(skill.id)]}
    return found


@router.get("/items/{item_id}")
def get_item(request: Request, item_id: PathId, t: Auth) -> Any:
    item = service(request).runtimes.get(t).catalog.items.get(item_id)
    if item is None:
        raise NotFound(f"item {item_id!r} not found")
    found: ItemResponse = {"id": item.id, "skills": list(item.skills), "kind": item.kind,
                           "difficulty": item.difficulty, "metadata": dict(item.metadata)}
    return found
