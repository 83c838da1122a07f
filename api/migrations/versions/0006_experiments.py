"""Experiments and consent: a tenant's experiments and its learners' assignments to their arms;
each answer records the policy (and experiment arm) that chose its response's next exercise;
the learner's consent to personalization and to experiments.

Existing learners are personalized and have not been asked about experiments (NULL); existing
answers record no policy (NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.add_column(sa.Column("personalization", sa.Boolean, nullable=False,
                                   server_default=sa.true()))
        batch.add_column(sa.Column("experiment_consent", sa.Boolean, nullable=True))
        batch.add_column(sa.Column("consent_updated_at", sa.DateTime(timezone=True),
                                   nullable=True))
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("policy", sa.String(64), nullable=True))
        batch.add_column(sa.Column("experiment_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("arm", sa.String(128), nullable=True))
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.Integer, sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("arms", sa.JSON, nullable=False),
        sa.Column("require_consent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stops_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_experiments_name"),
    )
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.Integer,
                  sa.ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("learner_id", sa.String(128), primary_key=True),
        sa.Column("arm", sa.String(128), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id", "learner_id"],
                                ["learners.tenant_id", "learners.learner_id"],
                                ondelete="CASCADE", name="fk_assignments_learner"),
    )
    op.create_index("ix_assignments_learner", "experiment_assignments",
                    ["tenant_id", "learner_id"])


def downgrade() -> None:
    op.drop_index("ix_assignments_learner", "experiment_assignments")
    op.drop_table("experiment_assignments")
    op.drop_table("experiments")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("arm")
        batch.drop_column("experiment_id")
        batch.drop_column("policy")
    with op.batch_alter_table("learners") as batch:
        batch.drop_column("consent_updated_at")
        batch.drop_column("experiment_consent")
        batch.drop_column("personalization")
