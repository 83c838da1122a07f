"""Migration 0010: tenants that named a policy keep target-success on BKT; the others move to
the engine's defaults (their content version bumped where their tracer changes), on SQLite and
PostgreSQL, from a database at 0009 with rows as that release wrote them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import make_url

from api.db import _alembic_config, make_engine, upgrade
from api.tenant_defaults import read_defaults
from engine.selection.registry import DEFAULT_POLICY

from .conftest import PG_ADMIN_URL

NOW = datetime(2026, 12, 1, tzinfo=UTC)
#: name -> (target_success, has an experiment, has a registered model)
TENANTS = {"plain": (0.75, False, False), "tuned": (0.6, False, False),
           "tested": (0.75, True, False), "fitted": (0.75, False, True),
           "tuned-fitted": (0.7, False, True)}


@pytest.fixture(params=["sqlite", "postgres"])
def url_at_0009(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database migrated to 0009 (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        command.upgrade(_alembic_config(url), "0009")
        yield url
        return
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    name = f"tutor_mig_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(_alembic_config(url), "0009")
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _old_rows(engine: sa.Engine) -> dict[str, int]:
    """The tenants of :data:`TENANTS` as 0009 stored them; their ids."""
    meta = sa.MetaData()
    meta.reflect(engine, only=["tenants", "experiments", "tracer_models"])
    tenants, experiments, models = (meta.tables[n] for n in ("tenants", "experiments",
                                                             "tracer_models"))
    ids = {}
    with engine.begin() as conn:
        for name, (target, tested, fitted) in TENANTS.items():
            ids[name] = conn.execute(tenants.insert().values(
                name=name, created_at=NOW, target_success=target, content_version=3)
                .returning(tenants.c.id)).scalar_one()
            if tested:
                conn.execute(experiments.insert().values(
                    tenant_id=ids[name], name="old", arms=[
                        {"name": "a", "weight": 1.0, "policy": "target-success", "options": {}},
                        {"name": "b", "weight": 1.0, "policy": "random", "options": {}}],
                    require_consent=False, starts_at=NOW, stops_at=NOW, created_at=NOW))
            if fitted:
                conn.execute(models.insert().values(
                    tenant_id=ids[name], kind="bkt", document={"model": "bkt", "skills": []},
                    weights=b"", registered_at=NOW))
    return ids


def test_tenants_that_named_a_policy_keep_it_the_others_move(url_at_0009: str) -> None:
    engine = make_engine(url_at_0009)
    try:
        ids = _old_rows(engine)
        upgrade(url_at_0009)
        with engine.connect() as conn:
            rows = {r.name: r for r in conn.execute(sa.text(
                "SELECT name, policy, policy_options, tracer, content_version FROM tenants"))}
        pinned = {n: (r.policy, r.tracer) for n, r in rows.items() if r.policy is not None}
        assert pinned == {n: ("target-success", "bkt") for n in ("tuned", "tested",
                                                                 "tuned-fitted")}
        # a tracer changed (no registered model): cached BKT states no longer match
        assert {n: r.content_version for n, r in rows.items()} == {
            "plain": 4, "tuned": 3, "tested": 3, "fitted": 3, "tuned-fitted": 3}
        plain = read_defaults(engine, ids["plain"])
        assert (plain["policy"], plain["policy_source"], plain["tracer"]) == (
            DEFAULT_POLICY, "engine default", "bkt-memory")
        tuned = read_defaults(engine, ids["tuned"])
        assert (tuned["policy"], tuned["options"], tuned["tracer"], tuned["target_success"]) \
            == ("target-success", {}, "bkt", 0.6)
        fitted = read_defaults(engine, ids["fitted"])
        assert (fitted["policy"], fitted["tracer_source"]) == (DEFAULT_POLICY,
                                                               "registered model")
        command.downgrade(_alembic_config(url_at_0009), "0009")  # and back, cleanly
        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("tenants")}
        assert not columns & {"policy", "policy_options", "tracer"}
    finally:
        engine.dispose()
