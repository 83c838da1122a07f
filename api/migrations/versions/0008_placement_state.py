"""A running placement's state on its row: the item it gives now (``next_item``), with the
answers, items and estimate so far kept current, so that a read or an answer restores the test
in one step instead of replaying it from its seed; and why a test ended without its stopping
rule or the learner's stop (``reason``: its content is gone, or the learner opted out of
personalization).

Tests running at the upgrade have no ``next_item``: their next answer replays them once.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.add_column(sa.Column("next_item", sa.String(128), nullable=True))
        batch.add_column(sa.Column("reason", sa.String(512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("placements") as batch:
        batch.drop_column("reason")
        batch.drop_column("next_item")
