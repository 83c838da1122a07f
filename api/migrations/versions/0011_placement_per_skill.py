"""Per-skill placement (issue 21): a placement's ``method`` (``skills``, the per-skill test on
the course's knowledge structure, the default from this release on; ``theta``, the one-ability
test), its classification stop ``confidence``, and its per-skill estimates ``skills`` (each
skill's P(known) and the answers on it, kept current while it runs, then its result).

Placements taken before the upgrade were θ tests: they keep running as such (the method's
server default), and show no per-skill estimates.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-11
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.add_column(sa.Column("method", sa.String(16), nullable=False,
                                   server_default="theta"))
        batch.add_column(sa.Column("confidence", sa.Float, nullable=True))
        batch.add_column(sa.Column("skills", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.drop_column("skills")
        batch.drop_column("confidence")
        batch.drop_column("method")
