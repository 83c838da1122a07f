"""A learner's current course: the last course given with an answer or to ``GET /next``.

The answer path and ``GET /next`` both choose within it, so an app sends the course once and
every worker (and a restarted server) keeps to it. NULL: no course, the whole catalog.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.add_column(sa.Column("course", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.drop_column("course")
