"""Migration 0011: a placement test running at the upgrade was a θ test, and goes on as one
(method ``theta``, no per-skill estimates), on a database at 0010 with the rows as that
release wrote them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from api.app import create_app
from api.db import _alembic_config, make_engine, upgrade
from api.settings import Settings

from .conftest import make_tenant_on, new_event_id, pack_document

COURSE = "math.course.whole-numbers"


def test_a_theta_test_running_at_the_upgrade_goes_on_as_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    command.upgrade(_alembic_config(url), "0010")
    engine = make_engine(url)
    try:
        t = make_tenant_on(engine, ["math"])
        meta = sa.MetaData()
        meta.reflect(engine, only=["learners", "placements"])
        learners, placements = meta.tables["learners"], meta.tables["placements"]
        assert "method" not in placements.c
        now = datetime(2026, 12, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(learners.insert().values(
                tenant_id=t.tenant.id, learner_id="old", created_at=now, last_seen=now,
                last_seq=0, course=COURSE, in_placement=True))
            conn.execute(placements.insert().values(
                tenant_id=t.tenant.id, learner_id="old", course=COURSE, seed=12345,
                max_length=5, se_target=None, status="running", started_at=now, answers=0,
                items=[], theta=0.0, se=1.0, next_item=None))
        upgrade(url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT method, confidence, skills FROM placements "
                                       "WHERE learner_id = 'old'")).one()
        assert tuple(row) == ("theta", None, None)
        with TestClient(create_app(Settings(database_url=url))) as client:
            shown = client.get("/v1/learners/old/placement", headers=t.headers).json()
            assert shown["method"] == "theta" and shown["skills"] is None
            assert shown["next"]["reason"].startswith("placement test, item 1 of at most 5: "
                                                      "the most informative item for the ability")
            difficulty = {i["id"]: i["difficulty"] for i in pack_document("math")["items"]}
            item = shown["next"]["item"]
            for _ in range(5):
                r = client.post("/v1/learners/old/answers", headers=t.headers,
                                json={"item_id": item, "correct": difficulty[item] < 0,
                                      "event_id": new_event_id()})
                assert r.status_code == 200, r.text
                placement = client.get("/v1/learners/old/placement",
                                       headers=t.headers).json()
                if placement["status"] != "running":
                    break
                item = placement["next"]["item"]
            assert placement["status"] == "finished" and placement["items_used"] == 5
            assert placement["method"] == "theta" and placement["skills"] is None
            assert placement["mastery"]
            client.app.state.service.engine.dispose()  # type: ignore[attr-defined]
    finally:
        engine.dispose()
