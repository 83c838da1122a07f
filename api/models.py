"""Which knowledge-tracing model serves a tenant: a fitted model registered for it, else the
tracer its content's parameters define (the model its defaults name, :mod:`api.tenant_defaults`:
``bkt-memory`` for the default policy).

Any model of the registry can be registered: whatever its ``save`` wrote (a BKT parameter file
from ``tutor fit``, a DKT checkpoint directory) or pyBKT's ``coef_`` as JSON. It is stored in
the database as its registry name and its ``to_bytes`` blob, so every worker and every machine
serves the same model without shared files. Registering or removing one bumps the tenant's
content version: cached learner states of the old model stop matching and are rebuilt from
the answer log with the new one, so no learner keeps a state the model did not compute. A model
must know every skill of the tenant's content, checked at registration and at every later
content import. A model without memory is refused while a policy that needs memory serves the
tenant, and so is unregistering one when the tenant's content tracer has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from api.db import bump_content_version, tracer_models
from engine.catalog import Catalog, ContentError
from engine.tracing import Tracer, load_tracer, tracer_from_bytes


def register_model(engine: Engine, tenant_id: int, path: Path,
                   catalog: Catalog) -> dict[str, Any]:
    """Store the model saved at ``path`` as the tenant's; returns its summary."""
    from api.tenant_defaults import check_model_memory  # (it reads tenants: api.tenants)

    tracer = load_tracer(path)  # loads, or says why not
    check_covers(tracer.skills, catalog.skills, what=str(path))
    with engine.begin() as conn:
        check_model_memory(conn, tenant_id, tracer.name)
        conn.execute(delete(tracer_models).where(tracer_models.c.tenant_id == tenant_id))
        conn.execute(insert(tracer_models).values(
            tenant_id=tenant_id, kind=tracer.name,
            document={"model": tracer.name, "skills": list(tracer.skills),
                      "options": _plain(tracer.get_options())},
            weights=tracer.to_bytes(), registered_at=datetime.now(UTC)))
        bump_content_version(conn, tenant_id)
    return {"kind": tracer.name, "skills": len(tracer.skills)}


def unregister_model(engine: Engine, tenant_id: int) -> str | None:
    """Serve the tenant with its content's tracer again: that tracer's name; None if no model
    was registered. ValueError (nothing changed) if that tracer has no memory and a policy
    that needs memory serves the tenant."""
    from api.tenant_defaults import check_model_memory, content_tracer, tenant_of

    with engine.begin() as conn:
        tracer = content_tracer(tenant_of(conn, tenant_id))
        check_model_memory(conn, tenant_id, tracer)
        gone = conn.execute(delete(tracer_models).where(
            tracer_models.c.tenant_id == tenant_id)).rowcount
        if gone:
            bump_content_version(conn, tenant_id)
    return tracer if gone else None


def registered_tracer(engine: Engine, tenant_id: int) -> Tracer[Any] | None:
    """The model registered for the tenant (None: its content's tracer serves it)."""
    with engine.connect() as conn:
        row = conn.execute(select(tracer_models.c.kind, tracer_models.c.weights)
                           .where(tracer_models.c.tenant_id == tenant_id)).first()
    if row is None:
        return None
    return tracer_from_bytes(row.kind, row.weights, source=f"tenant {tenant_id}'s model")


def model_skills(conn: Connection, tenant_id: int) -> list[str] | None:
    """The skill ids of the tenant's registered model (None: served by its content's
    tracer)."""
    document = conn.execute(select(tracer_models.c.document).where(
        tracer_models.c.tenant_id == tenant_id)).scalar_one_or_none()
    return None if document is None else list(document["skills"])


def check_covers(model_skills: Iterable[str], skills: Iterable[str], *, what: str) -> None:
    """Refuse content with skills the model was not fitted on (it could not score them)."""
    known = set(model_skills)
    missing = sorted(s for s in skills if s not in known)
    if missing:
        raise ContentError(
            what, f"the registered model was not fitted on {len(missing)} skill(s) of this "
            f"content ({', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''})"
            "; fit it on answers to these skills (tutor export-log, then tutor fit) or serve "
            "the content's own BKT (tutor model unregister)")


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` as JSON values (paths as strings)."""
    return {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
