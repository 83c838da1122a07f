"""A tenant's default policy and tracer (``PUT /v1/tenant/defaults``, ``tutor tenant
defaults``): ``policy`` and its ``policy_options``, and ``tracer``, the model built from the
content's own parameters. NULL means "not configured": the engine's default policy
(``engine.selection.registry.DEFAULT_POLICY``, ``teach`` from this release on) and that policy's
own tracer (its ``tracer_model``: ``bkt-memory`` for ``teach``). A registered (fitted) model still
serves instead of any tracer setting.

Until this release every tenant was served ``target-success`` on BKT. The upgrade keeps that, by
writing it down (policy ``target-success``, options ``{}``, tracer ``bkt``), for each tenant that
*named a policy*, which is exactly:

* a tenant whose ``target_success`` is not the default 0.75: it tuned the one option only the
  target-success policy read (the option stays on the tenant's row and is read as before);
* a tenant with an experiment, whatever its status: every stored arm names its policy, and its
  learners outside the experiment (and all of them after it stops) were served target-success,
  the baseline its results were read against.

Every other tenant configured nothing and moves to the new defaults, ``teach`` on ``bkt-memory``
(unless it registered a model, which keeps serving). Its content version is bumped when its
tracer changes (no registered model), so that no cached BKT state is read as a ``bkt-memory``
one: each learner's state is rebuilt from the answer log once, at their next request.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: the target a tenant got when it named none (``tutor tenant create``'s default)
_DEFAULT_TARGET = 0.75


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("policy", sa.String(64), nullable=True))
        batch.add_column(sa.Column("policy_options", sa.JSON, nullable=True))
        batch.add_column(sa.Column("tracer", sa.String(32), nullable=True))
    tenants = sa.table("tenants", sa.column("id", sa.Integer),
                       sa.column("target_success", sa.Float),
                       sa.column("content_version", sa.Integer),
                       sa.column("policy", sa.String), sa.column("policy_options", sa.JSON),
                       sa.column("tracer", sa.String))
    experiments = sa.table("experiments", sa.column("tenant_id", sa.Integer))
    models = sa.table("tracer_models", sa.column("tenant_id", sa.Integer))
    has_experiment = sa.exists().where(experiments.c.tenant_id == tenants.c.id)
    named = sa.or_(tenants.c.target_success != _DEFAULT_TARGET, has_experiment)
    op.execute(tenants.update().where(named).values(
        policy="target-success", policy_options={}, tracer="bkt"))
    has_model = sa.exists().where(models.c.tenant_id == tenants.c.id)
    op.execute(tenants.update().where(tenants.c.policy.is_(None), ~has_model).values(
        content_version=tenants.c.content_version + 1))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("tracer")
        batch.drop_column("policy_options")
        batch.drop_column("policy")
