"""Secrets of the service, kept in the database that every worker and node shares: one now,
``state_cache_key``, the key of the MAC that signs each learner-state entry in Redis
(:mod:`api.store`). Drawn at random here, once per database, so that whoever can write to
Redis but not read the database cannot forge an entry that readers would take as sound.

Entries cached before the upgrade carry no MAC: each is dropped and rebuilt from the log once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "service_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),  # hex
    )
    op.bulk_insert(table, [{"name": "state_cache_key", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("service_secrets")
