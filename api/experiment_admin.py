"""Defining experiments (create, list, stop) and setting a learner's consent.

A definition is fixed once created: the arms' weights are what the sample-ratio-mismatch check
compares the counts with, and learners enrolled under one split must not be mixed with those
of another (a new split is a new experiment, see :mod:`engine.experiments.assignment`). At most
one experiment of a tenant runs at any moment, so each learner has one policy: a new one may
not overlap the time of another that has not stopped. The database enforces it: a tenant's
creations take a lock on the tenant's row (:func:`_serialise_creations`), so two at once cannot
both see no overlap and both be stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from api.db import experiments, learners, retry_if_disconnected, tenants
from api.experiment_schemas import INT64_MAX, INT64_MIN, ExperimentIn, ExperimentResponse
from api.experiments import Experiment
from api.responses import Consent
from api.service import Conflict, Invalid, NotFound, TutorService
from api.tenant_defaults import build_policy, memory_refusal, served_tracer, tenant_of
from engine.experiments import Arm, check_arms

Status = Literal["scheduled", "running", "stopped"]


def status(experiment: Experiment, now: datetime) -> Status:
    if experiment.stops_at is not None and experiment.stops_at <= now:
        return "stopped"
    return "running" if experiment.starts_at <= now else "scheduled"


def describe(experiment: Experiment, now: datetime) -> ExperimentResponse:
    return {"name": experiment.name,
            "arms": [{"name": a.name, "weight": a.weight, "policy": a.policy,
                      "options": {k: _renderable(v) for k, v in a.options.items()}}
                     for a in experiment.arms],
            "require_consent": experiment.require_consent, "starts_at": experiment.starts_at,
            "stops_at": experiment.stops_at, "created_at": experiment.created_at,
            "status": status(experiment, now)}


def create_experiment(service: TutorService, tenant_id: int,
                      body: ExperimentIn) -> ExperimentResponse:
    """Store a new experiment; :class:`Invalid` for arms or times that cannot be (an arm
    whose policy needs a tracer with memory, where the tenant's has none, too), and
    :class:`Conflict` for a name taken or a time overlapping another experiment's."""
    now = datetime.now(UTC)
    starts = body.starts_at or now
    # the options given, not the defaults (a whole-number float of an integer option as an int)
    arms: list[dict[str, Any]] = [{"name": a.name, "weight": a.weight, "policy": a.policy,
             "options": a.options.model_dump(exclude_unset=True)} for a in body.arms]
    try:
        check_arms([Arm(a.name, a.weight) for a in body.arms])
        for arm in arms:  # the policy's own checks: the same rules as the document's
            build_policy(arm["policy"], arm["options"])
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if body.stops_at is not None and (body.stops_at <= starts or body.stops_at <= now):
        raise Invalid("stops_at must be later than starts_at and than now")
    with service.log.writer, service.engine.begin() as conn:
        _serialise_creations(conn, tenant_id)
        tracer, _ = served_tracer(conn, tenant_of(conn, tenant_id))
        for arm in arms:  # a policy that needs memory, on a tracer without it
            problem = memory_refusal(arm["policy"], tracer, f"arm {arm['name']!r}")
            if problem is not None:  # the tenant's tracer is its state, not the request's
                raise Conflict(problem)
        others = [Experiment.of(r) for r in conn.execute(
            select(experiments).where(experiments.c.tenant_id == tenant_id))]
        for other in others:
            if other.name == body.name:
                raise Conflict(f"experiment {body.name!r} exists already (a new split is a "
                               "new experiment, under another name)")
            if _overlap(other, starts, body.stops_at, now):
                raise Conflict(f"experiment {other.name!r} runs then too (until "
                               f"{_until(other.stops_at)}): one experiment at a time; stop it "
                               "first, or start this one later")
        conn.execute(insert(experiments).values(
            tenant_id=tenant_id, name=body.name, arms=arms,
            require_consent=body.require_consent, starts_at=starts, stops_at=body.stops_at,
            created_at=now))
        row = conn.execute(select(experiments).where(
            experiments.c.tenant_id == tenant_id, experiments.c.name == body.name)).one()
        # read back before the commit: a definition that cannot be served is not stored
        created = Experiment.of(row)
        created.check()
    service.experiments.forget(tenant_id)
    return describe(created, now)


@retry_if_disconnected
def list_experiments(service: TutorService, tenant_id: int) -> list[ExperimentResponse]:
    now = datetime.now(UTC)
    with service.engine.connect() as conn:
        rows = conn.execute(select(experiments).where(experiments.c.tenant_id == tenant_id)
                            .order_by(experiments.c.created_at, experiments.c.id)).all()
    return [describe(Experiment.of(r), now) for r in rows]


def find_experiment(service: TutorService, tenant_id: int, name: str) -> Experiment:
    """The tenant's experiment ``name``; :class:`NotFound` if it has none."""
    with service.engine.connect() as conn:
        row = conn.execute(select(experiments).where(
            experiments.c.tenant_id == tenant_id, experiments.c.name == name)).first()
    if row is None:
        raise NotFound(f"experiment {name!r} not found")
    return Experiment.of(row)


def stop_experiment(service: TutorService, tenant_id: int, name: str) -> ExperimentResponse:
    """Stop the experiment now (no learner is enrolled or served by its arms from now on;
    their assignments and answers stay for the analysis). Stopping a stopped one changes
    nothing."""
    now = datetime.now(UTC)
    experiment = find_experiment(service, tenant_id, name)
    if experiment.stops_at is None or experiment.stops_at > now:
        with service.log.writer, service.engine.begin() as conn:
            conn.execute(update(experiments).where(experiments.c.id == experiment.id)
                         .values(stops_at=now))
        service.experiments.forget(tenant_id)
        experiment = find_experiment(service, tenant_id, name)
    return describe(experiment, now)


def set_consent(service: TutorService, tenant_id: int, learner_id: str, personalization: bool,
                experiments_consent: bool | None) -> Consent:
    """Record the learner's choices (a learner never seen is created, without answers).
    Opting out takes effect at the learner's next exercise; an existing assignment stays in
    the record (and in the analysis, by the answers its arm served), but no arm serves them."""
    now = datetime.now(UTC)
    upsert: Any = (postgresql.insert if service.log.postgres else sqlite.insert)(learners)
    statement = upsert.values(
        tenant_id=tenant_id, learner_id=learner_id, created_at=now, last_seen=now, last_seq=0,
        personalization=personalization, experiment_consent=experiments_consent,
        consent_updated_at=now).on_conflict_do_update(
        index_elements=["tenant_id", "learner_id"],
        set_={"personalization": personalization, "experiment_consent": experiments_consent,
              "consent_updated_at": now})
    with service.log.writer, service.engine.begin() as conn:
        conn.execute(statement)
    return {"learner_id": learner_id, "personalization": personalization,
            "experiments": experiments_consent, "updated_at": now}


def _serialise_creations(conn: Connection, tenant_id: int) -> None:
    """Queue the tenant's experiment creations one behind the other, until ``conn``'s
    transaction ends: without it two creations at once each found no overlap and both were
    stored (issue 20: 8 at once left up to 4 running, and learners of a stopped one were
    enrolled again in another, with another arm).

    An update of the tenant's row that changes nothing: on PostgreSQL it locks the row (FOR
    NO KEY UPDATE: it does not hold up answers, whose foreign keys take KEY SHARE), and each
    creation's later statements see what those before it committed (READ COMMITTED); on
    SQLite, as the transaction's first statement, it takes the database's write lock at once
    (what BEGIN IMMEDIATE does), so no creation reads a snapshot that another's insert then
    makes stale (``service.log.writer`` queues only this process's writers)."""
    conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                 .values(target_success=tenants.c.target_success))


def _renderable(value: Any) -> Any:
    """An option's value as a response can carry it: an integer beyond 64 bits (stored
    before the API refused them; orjson renders none) as its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and not INT64_MIN <= value <= INT64_MAX:
        return str(value)
    return value


def _overlap(other: Experiment, starts: datetime, stops: datetime | None,
             now: datetime) -> bool:
    """Whether ``other``, as long as it has not stopped by ``now``, runs some time in
    [starts, stops)."""
    other_stops = other.stops_at
    if other_stops is not None and other_stops <= now:
        return False
    return (stops is None or other.starts_at < stops) and (other_stops is None
                                                           or starts < other_stops)


def _until(moment: datetime | None) -> str:
    return "it is stopped" if moment is None else moment.isoformat(timespec="seconds")
