"""A learner's log digest: the identity of the answers its log holds, not only their number.

Each answer chains a random link into ``learners.log_digest`` (``2 * digest + link`` modulo
2**61 - 1, :func:`api.store.chain`) in the statement that takes its seq, and a cached state
records the digest it was computed at; a state is used only if the digest still matches. After
a restore of the database to an earlier point, a learner's new answers chain other links, so a
cached state of the answers that were lost never passes for the new log's, even at the same
seq. Existing learners start at 0, as do the cache entries written before (they hold no
digest): an entry of the old log stays valid until the learner answers again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.add_column(sa.Column("log_digest", sa.BigInteger, nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("learners") as batch:
        batch.drop_column("log_digest")
