"""Placement tests: a table of each learner's placement (its configuration and seed, then its
result), and a flag on the learner's row while one runs (its answers then take the locked
path, which gives the test's items).

Existing learners took no placement: they start from the prior, as before.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.add_column(sa.Column("in_placement", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
    op.create_table(
        "placements",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("learner_id", sa.String(128), primary_key=True),
        sa.Column("course", sa.String(128), nullable=True),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("max_length", sa.Integer, nullable=False),
        sa.Column("se_target", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answers", sa.Integer, nullable=False, server_default="0"),
        sa.Column("theta", sa.Float, nullable=True),
        sa.Column("se", sa.Float, nullable=True),
        sa.Column("mastery", sa.JSON, nullable=True),
        sa.Column("items", sa.JSON, nullable=True),
        sa.ForeignKeyConstraint(["tenant_id", "learner_id"],
                                ["learners.tenant_id", "learners.learner_id"],
                                ondelete="CASCADE", name="fk_placements_learner"),
    )


def downgrade() -> None:
    op.drop_table("placements")
    with op.batch_alter_table("learners") as batch:
        batch.drop_column("in_placement")
