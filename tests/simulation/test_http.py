"""The served path is the evaluated path: simulated learners driving the API over HTTP get
exactly the numbers of the in-process run with the same seeds, on both backends.

The server is the app in process (the serving tests' fixtures, see ``conftest.py``: a
TestClient per app, SQLite or PostgreSQL with Redis); the tenant holds a generated course as a
pack, and the in-process run uses the same catalog, the tenant's tracer and its policy (the
engine's default policy, at the tenant's target, unless a test configures another). Both serve
nothing once a learner's course is complete (engine.selection.journey), and a served run
counts exercises to complete from the ``next`` the server returns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serving.conftest import Backend, Server, TenantKey, make_tenant_on
from typer.testing import CliRunner

import engine.simulation  # noqa: F401  (registers the families)
from api.tenant_defaults import policy_tracer
from content.packs import Pack, catalog_from_packs, parse_pack
from engine.catalog import Catalog
from engine.selection import make_policy
from engine.selection.registry import DEFAULT_POLICY
from engine.simulation.base import FAMILIES
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.run import METRICS, PolicyRun, Schedule, run_policy
from training.simulate_http import ServerError, past_epoch, run_served
from tutor.cli import app

SCHEDULE = Schedule(days=3, per_session=10)
TARGET = 0.7  # the tenant's target success (not the policy's default 0.75)


def _course_pack() -> dict[str, Any]:
    """A generated course of 4 skills (a prerequisite chain, a multi-skill item) as a pack."""
    generated = generated_catalog(4, seed=5, items_per_skill=3)
    return Pack("sim-course", "Simulated course", tuple(generated.skills.values()),
                tuple(generated.items.values()), tuple(generated.courses.values())
                ).to_document()


PACK = _course_pack()
#: the catalog the server builds from the pack, built here the same way
CATALOG: Catalog = catalog_from_packs([parse_pack(PACK)])


def _served_client(make_client: Callable[..., TestClient], tenant: TenantKey) -> TestClient:
    client = make_client()
    client.headers.update(tenant.headers)
    return client


def _in_process(family: str, n: int, seed: int, learners: list[str], epoch: datetime,
                policy: str = DEFAULT_POLICY, model: str | None = None) -> PolicyRun:
    """The run in process of ``policy`` (at the tenant's target) on ``model`` (default: the
    policy's own tracer, as a tenant that names none is served)."""
    return run_policy(family, CATALOG, GENERATED_COURSE,
                      make_policy(policy, target_success=TARGET), n=n, seed=seed,
                      schedule=SCHEDULE, tracer=CATALOG.tracer(model or policy_tracer(policy)),
                      learners=learners, epoch=epoch)


def _assert_same_run(served: PolicyRun, local: PolicyRun) -> None:
    for metric in METRICS:
        np.testing.assert_array_equal(served.outcomes[metric], local.outcomes[metric],
                                      err_msg=metric)
    np.testing.assert_array_equal(served.mastered, local.mastered)
    np.testing.assert_array_equal(served.mastery_curve, local.mastery_curve)
    np.testing.assert_array_equal(served.retention_curve, local.retention_curve)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_served_run_equals_the_in_process_run(family: str, backend: Any,
                                              make_client: Callable[..., TestClient]) -> None:
    """The engine's default policy on BKT (the tenant's tracer setting): learners complete
    the course and are served nothing from then on, in both runs alike."""
    tenant = make_tenant_on(backend.engine, [PACK], target_success=TARGET, tracer="bkt")
    client = _served_client(make_client, tenant)
    n, seed = 20, 11
    learners = [f"http-{family}-{i}" for i in range(n)]
    epoch = past_epoch(SCHEDULE)
    served = run_served(client, family, CATALOG, GENERATED_COURSE, n=n, seed=seed,
                        schedule=SCHEDULE, learners=learners, epoch=epoch, connections=4)
    local = _in_process(family, n, seed, learners, epoch, model="bkt")
    _assert_same_run(served, local)
    # the run says something: learners learned, some completed the course and were served
    # nothing after (fewer answers than the budget), and the diagnostic is defined for some
    assert local.mastery_curve[-1] > local.mastery_curve[0]
    assert (local.outcomes["exercises_to_complete"] < SCHEDULE.budget).any()
    assert np.isfinite(local.outcomes["diagnostic_auc"]).any()
    # and the server logged every answer the simulation made, at the simulated times: a
    # learner served nothing from the exercise after the one that completed the course on
    complete = local.outcomes["exercises_to_complete"].astype(int)
    for i in (0, int(np.argmin(complete))):
        history = client.get(f"/v1/learners/{learners[i]}/history",
                             params={"limit": 100}).json()
        assert len(history["events"]) == complete[i]
        assert history["events"][0]["answered_at"].startswith(epoch.isoformat()[:16])


def test_a_model_that_forgets_with_time_is_served_as_simulated(
        backend: Any, make_client: Callable[..., TestClient]) -> None:
    """A tenant that configures nothing: the engine's default policy on its tracer, which
    fades with time (bkt-memory). Equality needs the server to choose each ``next`` at the
    answer's own time, a learner's ``GET /next`` at the simulated time (a complete course's
    reviews fall due with time), and mastery at the end of each simulated day
    (``/progress?at=``), days before the server's clock."""
    tenant = make_tenant_on(backend.engine, [PACK], target_success=TARGET)
    client = _served_client(make_client, tenant)
    learners = [f"memory-{i}" for i in range(10)]
    epoch = past_epoch(SCHEDULE)
    served = run_served(client, "irt-memory", CATALOG, GENERATED_COURSE, n=10, seed=3,
                        schedule=SCHEDULE, learners=learners, epoch=epoch, connections=2)
    _assert_same_run(served, _in_process("irt-memory", 10, 3, learners, epoch))
    # the time matters: mastery now (days later) is below mastery at the end of the course
    end = epoch + timedelta(seconds=SCHEDULE.end)
    now, then = (client.get(f"/v1/learners/{learners[0]}/progress", params=params).json()
                 for params in ({}, {"at": end.isoformat()}))
    assert sum(s["mastery"] for s in now["skills"]) < sum(s["mastery"] for s in then["skills"])


def test_another_tenant_target_changes_what_is_served(
        backend: Any, make_client: Callable[..., TestClient]) -> None:
    """The equality above is not luck: the same learners served with the default target
    (0.75) take other exercises, so the in-process run with the target 0.7 differs (here in
    the tracer's diagnostic: the learning these learners do is the same either way)."""
    tenant = make_tenant_on(backend.engine, [PACK], target_success=0.75, tracer="bkt")
    client = _served_client(make_client, tenant)
    learners = [f"target-{i}" for i in range(20)]
    epoch = past_epoch(SCHEDULE)
    served = run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=20, seed=11,
                        schedule=SCHEDULE, learners=learners, epoch=epoch)
    other = _in_process("prereq-forget", 20, 11, learners, epoch, model="bkt")
    assert any(not np.array_equal(served.outcomes[m], other.outcomes[m]) for m in METRICS)


def test_learner_ids_already_used_on_the_server_are_refused(
        backend: Any, make_client: Callable[..., TestClient]) -> None:
    tenant = make_tenant_on(backend.engine, [PACK], target_success=TARGET)
    client = _served_client(make_client, tenant)
    short = Schedule(days=1, per_session=2)
    epoch = past_epoch(short)

    def run(day_0: datetime) -> None:
        run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=2, seed=0,
                   schedule=short, learners=["again-0", "again-1"], epoch=day_0)

    run(epoch)
    with pytest.raises(ServerError, match="'again-0' already has answers on this server "
                                          r"\(2 answers\).*--learner-prefix"):
        run(epoch)


def test_a_server_without_the_course_or_key_says_what_is_wrong(
        backend: Any, make_client: Callable[..., TestClient]) -> None:
    tenant = make_tenant_on(backend.engine, ["mini"])
    client = _served_client(make_client, tenant)
    short = Schedule(days=1, per_session=1)
    with pytest.raises(ServerError, match=r"404 not_found.*course 'generated'"):
        run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=1, seed=0,
                   schedule=short, learners=["x"])
    client.headers["Authorization"] = "Bearer tk_wrong"
    with pytest.raises(ServerError, match="HTTP 401"):
        run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=1, seed=0,
                   schedule=short, learners=["y"])


def test_a_run_that_would_end_in_the_future_is_refused(
        backend: Any, make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    with pytest.raises(ValueError, match="end after now"):
        run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=1, seed=0,
                   schedule=SCHEDULE, learners=["z"],
                   epoch=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises(ValueError, match="one id per learner"):
        run_served(client, "prereq-forget", CATALOG, GENERATED_COURSE, n=2, seed=0,
                   schedule=SCHEDULE, learners=["z"])


def test_tutor_simulate_server_equals_tutor_simulate_on_a_real_server(
        sqlite_backend: Backend, tmp_path: Path) -> None:
    """``tutor simulate --server`` against ``tutor serve`` (a bundled course, a tenant served
    target-success on BKT at the default target 0.75) prints the numbers ``tutor simulate
    --policy target-success`` prints in process, for every learner model; a second run with
    the same learner ids is refused, saying what to do."""
    tenant = make_tenant_on(sqlite_backend.engine, ["vocab"], policy="target-success",
                            tracer="bkt")
    args = ["simulate", "--course", "es.course.first-steps", "--learners", "4", "--days", "2",
            "--per-session", "6", "--seed", "2", "--json"]
    runner = CliRunner()
    local = runner.invoke(app, [*args, "--policy", "target-success"])
    assert local.exit_code == 0, local.output
    server = Server(sqlite_backend, 1, tmp_path).start()
    try:
        served = runner.invoke(app, [*args, "--server", server.url, "--api-key", tenant.key])
        again = runner.invoke(app, [*args, "--server", server.url, "--api-key", tenant.key])
    finally:
        server.kill()
    assert served.exit_code == 0, served.output
    doc, reference = json.loads(served.stdout), json.loads(local.stdout)
    assert doc["policies"] == ["served"] and doc["server"] == server.url
    assert set(doc["results"]) == set(FAMILIES)
    for family in FAMILIES:
        assert doc["results"][family]["served"] == reference["results"][family]["target-success"]
        assert doc["curves"][family]["served"] == reference["curves"][family]["target-success"]
    assert again.exit_code != 0
    assert "already has answers" in again.output and "--learner-prefix" in again.output


def test_tutor_simulate_server_options_say_what_to_fix() -> None:
    runner = CliRunner()
    base = ["simulate", "--course", "generated:3", "--learners", "2"]
    for extra, message in (
            (["--server", "http://127.0.0.1:9", "--policy", "random"], "serves its own"),
            (["--server", "http://127.0.0.1:9"], "--api-key KEY"),
            (["--api-key", "tk_x"], "go with --server"),
            (["--server", "http://127.0.0.1:9", "--api-key", "tk_x"], "ConnectError")):
        result = runner.invoke(app, [*base, *extra], env={"TUTOR_API_KEY": ""})
        assert result.exit_code != 0, extra
        assert message in result.output, (extra, result.output)
