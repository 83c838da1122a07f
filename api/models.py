"""Which knowledge-tracing model serves a tenant: BKT from its content (the default), or a
trained DKT checkpoint registered for it.

A checkpoint is stored in the database (its ``model.json`` and ``weights.pt``), so every worker
and every machine serves the same model without shared files. Registering or removing one bumps
the tenant's content version: cached learner states of the old model stop matching and are
rebuilt from the answer log with the new one, so no learner keeps a state the model did not
compute. A model must know every skill of the tenant's content, checked at registration and at
every later content import.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from api.db import tenants, tracer_models
from content.catalog import Catalog, ContentError
from engine.tracing import BKT, Tracer

KIND_DKT = "dkt"


def register_model(engine: Engine, tenant_id: int, checkpoint: Path,
                   catalog: Catalog) -> dict[str, Any]:
    """Store a DKT checkpoint directory as the tenant's model; returns its summary."""
    from engine.tracing.dkt import DKT, WEIGHTS_FILE, read_checkpoint_doc

    doc = read_checkpoint_doc(checkpoint)
    weights = (checkpoint / WEIGHTS_FILE).read_bytes()
    DKT.from_checkpoint(doc, weights, source=str(checkpoint))  # loads, or says why not
    check_covers(doc["skills"], catalog.skills, what=str(checkpoint))
    with engine.begin() as conn:
        conn.execute(delete(tracer_models).where(tracer_models.c.tenant_id == tenant_id))
        conn.execute(insert(tracer_models).values(
            tenant_id=tenant_id, kind=KIND_DKT, document=doc, weights=weights,
            registered_at=datetime.now(UTC)))
        _bump(conn, tenant_id)
    return {"kind": KIND_DKT, "skills": len(doc["skills"]), **doc.get("config", {})}


def unregister_model(engine: Engine, tenant_id: int) -> bool:
    """Serve the tenant with BKT again; False if no model was registered."""
    with engine.begin() as conn:
        gone = conn.execute(delete(tracer_models).where(
            tracer_models.c.tenant_id == tenant_id)).rowcount
        if gone:
            _bump(conn, tenant_id)
    return bool(gone)


def tenant_tracer(engine: Engine, tenant_id: int, catalog: Catalog) -> Tracer[Any]:
    """The tracer that serves the tenant now."""
    with engine.connect() as conn:
        row = conn.execute(select(tracer_models.c.document, tracer_models.c.weights)
                           .where(tracer_models.c.tenant_id == tenant_id)).first()
    if row is None:
        return BKT().set_params(catalog.bkt_params())
    from engine.tracing.dkt import DKT

    return DKT.from_checkpoint(row.document, row.weights, source=f"tenant {tenant_id}'s model")


def model_skills(conn: Connection, tenant_id: int) -> list[str] | None:
    """The skill ids of the tenant's registered model (None: served by BKT)."""
    document = conn.execute(select(tracer_models.c.document).where(
        tracer_models.c.tenant_id == tenant_id)).scalar_one_or_none()
    return None if document is None else list(document["skills"])


def check_covers(model_skills: Iterable[str], skills: Iterable[str], *, what: str) -> None:
    """Refuse content with skills the model was not trained on (it could not score them)."""
    known = set(model_skills)
    missing = sorted(s for s in skills if s not in known)
    if missing:
        raise ContentError(
            what, f"the DKT model was not trained on {len(missing)} skill(s) of this content "
            f"({', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''}); "
            "train it on answers to these skills (tutor export-log, then tutor train dkt) or "
            "serve BKT (tutor model unregister)")


def _bump(conn: Connection, tenant_id: int) -> None:
    conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                 .values(content_version=tenants.c.content_version + 1))
