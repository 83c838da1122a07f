"""Registered models of any kind: a row holds the model's registry name (``kind``), its skills
(``document``) and its ``to_bytes`` blob (``weights``).

Rows written by 0002 held a DKT checkpoint's ``model.json`` as the document and its
``weights.pt`` as the blob; DKT's blob is now a zip archive of those two files, so each such row
is rewritten into one (the same model, nothing retrained).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import io
import json
import zipfile

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_models = sa.table("tracer_models", sa.column("tenant_id", sa.Integer),
                   sa.column("kind", sa.String), sa.column("document", sa.JSON),
                   sa.column("weights", sa.LargeBinary))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_models.c.tenant_id, _models.c.document, _models.c.weights)
                        .where(_models.c.kind == "dkt")).all()
    for tenant_id, document, weights in rows:
        if "format" not in document:  # already in the new layout
            continue
        blob = io.BytesIO()
        with zipfile.ZipFile(blob, "w") as archive:
            archive.writestr("model.json", json.dumps(document))
            archive.writestr("weights.pt", weights)
        conn.execute(sa.update(_models).where(_models.c.tenant_id == tenant_id).values(
            document={"model": "dkt", "skills": document["skills"],
                      "options": document.get("config", {})},
            weights=blob.getvalue()))


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_models.c.tenant_id, _models.c.kind, _models.c.weights)).all()
    for tenant_id, kind, blob in rows:
        if kind != "dkt":  # 0002 served only DKT checkpoints
            conn.execute(sa.delete(_models).where(_models.c.tenant_id == tenant_id))
            continue
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            document = json.loads(archive.read("model.json"))
            weights = archive.read("weights.pt")
        conn.execute(sa.update(_models).where(_models.c.tenant_id == tenant_id).values(
            document=document, weights=weights))
