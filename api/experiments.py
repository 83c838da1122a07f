"""Experiments while serving: which policy chooses a learner's exercises, and enrolment.

A learner is served by (in this order):

1. the fixed curriculum, if they opted out of personalization: no learner model is consulted,
   and they are never enrolled in an experiment;
2. their arm's policy, while an experiment of the tenant runs (``starts_at <= now <
   stops_at``) and they take part: assigned by the hash of (experiment, learner)
   (:func:`engine.experiments.assign`) at their first served exercise while it runs, stored,
   and served from the stored arm ever after (sticky). Learners who refused experiments
   (``experiment_consent`` false) are never enrolled, nor, for an experiment that requires
   consent, those who did not give it;
3. the tenant's default policy (:mod:`api.tenant_defaults`: the one it configured, else the
   engine's default, :data:`engine.selection.registry.DEFAULT_POLICY`), at the target its
   options set, else the tenant's.

At most one experiment of a tenant runs at a time (:mod:`api.experiment_admin` refuses
overlaps), so a learner's policy is never a mix. Each answer row records the policy, experiment
and arm that chose its response's ``next`` (:meth:`Served.columns`): the analysis replays from
the log alone.

Definitions are cached per process for :data:`CACHE_SECONDS` (like API keys): an experiment
created or stopped takes effect on every worker within that time (within twice that for the
check of the one-statement answers, which read the copy again in the background). An arm's
target success, when it sets one, overrides both the tenant's and a request's ``target``: an
experiment on targets would otherwise measure whatever apps send.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from api import threads
from api.db import events, experiment_assignments, experiments, learners, retry_if_disconnected
from api.responses import Assignment, Consent
from api.tenant_defaults import build_policy, tenant_policy
from api.tenants import Tenant
from engine.experiments import Arm, assign, check_arms
from engine.selection import Policy
from engine.selection.baselines import FixedCurriculumPolicy
from engine.selection.registry import DEFAULT_POLICY

#: how long a worker serves from its copy of a tenant's experiments
CACHE_SECONDS = 2.0
#: the policy an opted-out learner gets (arms may use any of the registry's,
#: engine.selection.registry.POLICIES; learners in no experiment get their tenant's default)
OPTED_OUT_POLICY = "fixed-curriculum"
#: policies that read the outcomes of the last answers (SelectionContext.recent_correct)
NEEDS_OUTCOMES = {"fixed-curriculum"}

log = logging.getLogger("tutor.api")


@dataclass(frozen=True, slots=True)
class ArmConfig:
    """An arm as stored: name, weight, policy name and options (built once, shared)."""

    name: str
    weight: float
    policy: str
    options: Mapping[str, Any]
    built: Policy = field(compare=False)

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> ArmConfig:
        options = dict(document.get("options") or {})
        return cls(document["name"], float(document["weight"]), document["policy"], options,
                   build_policy(document["policy"], options))


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment's definition."""

    id: int
    name: str
    arms: tuple[ArmConfig, ...]
    require_consent: bool
    starts_at: datetime
    stops_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Row[Any]) -> Experiment:
        return cls(row.id, row.name, tuple(ArmConfig.of(a) for a in row.arms),
                   bool(row.require_consent), _utc(row.starts_at), _utc_or_none(row.stops_at),
                   _utc(row.created_at))

    def running(self, at: datetime) -> bool:
        return self.starts_at <= at and (self.stops_at is None or at < self.stops_at)

    def arm(self, name: str) -> ArmConfig:
        return next(a for a in self.arms if a.name == name)

    def check(self) -> None:
        """ValueError unless the arms can assign learners (:func:`engine.experiments.
        check_arms`): the API refuses such a definition, yet a row stored before it did
        (weights too far apart for a share) may be read."""
        check_arms([Arm(a.name, a.weight) for a in self.arms])

    def assign(self, learner_id: str) -> str:
        """The arm the hash gives ``learner_id`` (its first assignment)."""
        return assign(self.name, learner_id, [Arm(a.name, a.weight) for a in self.arms])


@dataclass(frozen=True, slots=True)
class Served:
    """Who chooses a learner's exercises now: the policy and its name, the target it aims at
    when an arm sets one, the experiment and arm, and (for the fixed curriculum, which counts
    streaks) the outcomes of the learner's last answers, most recent last."""

    policy: Policy
    name: str
    target: float | None = None
    experiment_id: int | None = None
    arm: str | None = None
    recent_correct: tuple[bool, ...] = ()
    #: whether a course's end and its outside prerequisites wrap the policy's choice
    #: (engine.selection.journey): the tenants' policies; not the fixed curriculum of learners
    #: who opted out of personalization (no learner model is consulted for them), nor a
    #: placement test's items
    journey: bool = False

    def columns(self) -> dict[str, Any]:
        """The answer row's record of it."""
        return {"policy": self.name, "experiment_id": self.experiment_id, "arm": self.arm}


#: a learner's consent as the serving path reads it: personalization, experiment_consent


class ExperimentServing:
    """The policy for each learner (see the module's docstring), with the tenants' running
    experiments cached for :data:`CACHE_SECONDS`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: the tenants' default policies, built once per configuration (name, options' JSON)
        self._defaults: dict[tuple[str, str], Served] = {}
        self.opted_out = build_policy(OPTED_OUT_POLICY, {})
        self._streak = outcomes_read(self.opted_out)
        self._cache: dict[int, tuple[float, tuple[Experiment, ...]]] = {}
        self._lock = threading.Lock()
        self._refreshing: set[int] = set()  # tenants whose copy none_running is reading again
        self._refreshes: set[asyncio.Task[None]] = set()
        dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" \
            else sqlite.insert
        self._consent = select(learners.c.personalization, learners.c.experiment_consent).where(
            learners.c.tenant_id == bindparam("t"), learners.c.learner_id == bindparam("l"))
        self._assigned = select(experiment_assignments.c.arm).where(
            experiment_assignments.c.experiment_id == bindparam("x"),
            experiment_assignments.c.learner_id == bindparam("l"))
        self._outcomes = select(events.c.correct).where(
            events.c.tenant_id == bindparam("t"), events.c.learner_id == bindparam("l"),
            events.c.seq <= bindparam("last")).order_by(events.c.seq.desc()).limit(
            bindparam("n"))
        # GET /next for a learner never seen: the row the assignment refers to
        self._create_learner = dialect_insert(learners).values(
            tenant_id=bindparam("t"), learner_id=bindparam("l"), created_at=bindparam("now"),
            last_seen=bindparam("now"), last_seq=0).on_conflict_do_nothing(
            index_elements=["tenant_id", "learner_id"])
        # two workers enrolling one learner at once compute the same arm: either insert wins
        self._enrol = dialect_insert(experiment_assignments).values(
            experiment_id=bindparam("x"), tenant_id=bindparam("t"), learner_id=bindparam("l"),
            arm=bindparam("arm"), assigned_at=bindparam("now")).on_conflict_do_nothing(
            index_elements=["experiment_id", "learner_id"])

    def experiments(self, tenant_id: int) -> tuple[Experiment, ...]:
        """The tenant's experiments that have not stopped, as of at most
        :data:`CACHE_SECONDS` ago."""
        now = time.monotonic()
        cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        found = self._read(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now, found)
        return found

    @retry_if_disconnected  # a read, every CACHE_SECONDS on every answer's path
    def _read(self, tenant_id: int) -> tuple[Experiment, ...]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(experiments).where(
                experiments.c.tenant_id == tenant_id).order_by(experiments.c.created_at,
                                                               experiments.c.id)).all()
        return tuple(_servable(rows))

    def forget(self, tenant_id: int) -> None:
        """Drop the cached definitions (this process changed them)."""
        with self._lock:
            self._cache.pop(tenant_id, None)

    def running(self, tenant_id: int, at: datetime) -> Experiment | None:
        return next((e for e in self.experiments(tenant_id) if e.running(at)), None)

    async def none_running(self, tenant_id: int, at: datetime) -> bool:
        """Whether no experiment of the tenant runs at ``at``, for the event loop: from this
        process's copy, read again in a worker thread when it is stale (once per
        :data:`CACHE_SECONDS`; never a blocking read on the loop). A stale copy is read again
        in the background while answers go on using it: the answer that found it stale used to
        wait for a thread, behind whatever held the threads (another tenant's pack import: the
        quiet tenant's p99 in bench/noisy_neighbour.py), and the others queued a read each.
        A copy older than twice :data:`CACHE_SECONDS` (no answer came to refresh it) is read
        again before it is used, so a change takes effect within that time on every worker."""
        cached = self._cache.get(tenant_id)
        if cached is None or time.monotonic() - cached[0] >= 2 * CACHE_SECONDS:
            found = await threads.run(self.experiments, tenant_id, tenant=tenant_id)
        else:
            found = cached[1]
            if (time.monotonic() - cached[0] >= CACHE_SECONDS
                    and tenant_id not in self._refreshing):
                self._refreshing.add(tenant_id)
                task = asyncio.get_running_loop().create_task(self._refresh(tenant_id))
                self._refreshes.add(task)  # (held until done: the loop keeps weak references)
                task.add_done_callback(self._refreshes.discard)
        return not any(e.running(at) for e in found)

    async def _refresh(self, tenant_id: int) -> None:
        try:
            await threads.run(self.experiments, tenant_id, tenant=tenant_id)
        except Exception as exc:  # (the next answer tries again; the copy stays as it was)
            log.warning("reading tenant %d's experiments again failed: %s", tenant_id,
                        type(exc).__name__)
        finally:
            self._refreshing.discard(tenant_id)

    def default_for(self, tenant: Tenant) -> Served:
        """Who serves the tenant's learners outside experiments: its default policy, at the
        target its options set (else the tenant's). A configuration the registry no longer
        takes (a policy or option removed since it was stored) is logged and the engine's
        default serves: one stale setting must not fail every exercise of the tenant."""
        name, options = tenant_policy(tenant)
        key = (name, json.dumps(dict(options), sort_keys=True))
        served = self._defaults.get(key)
        if served is None:
            try:
                built = build_policy(name, options)
            except ValueError as exc:
                log.error("tenant %d's default policy cannot be served, the engine's default "
                          "serves: %s", tenant.id, exc)
                name, options, built = DEFAULT_POLICY, {}, build_policy(DEFAULT_POLICY, {})
            served = Served(built, name, options.get("target_success"), journey=True)
            with self._lock:
                self._defaults[key] = served
        return served

    def served(self, conn: Connection, tenant: Tenant, learner_id: str, at: datetime, *,
               enrol: bool, last_seq: int | None = None,
               consent: tuple[bool, bool | None] | None = None) -> Served | None:
        """Who serves the learner at ``at``, read on ``conn``. A learner to enrol now is
        enrolled when ``enrol`` (``conn`` in a write transaction: the learner's row is created
        if it has none), else None is returned: call again with ``enrol``. ``last_seq``: the
        learner's answers to take the fixed curriculum's recent outcomes from (None: all).
        ``consent``: the learner's (personalization, experiment_consent), when the caller read
        them with the learner's row (None: read here; no row, no learner yet)."""
        tenant_id = tenant.id
        if consent is None:
            row = conn.execute(self._consent, {"t": tenant_id, "l": learner_id}).first()
            consent = None if row is None else (row.personalization, row.experiment_consent)
        if consent is not None and not consent[0]:
            return Served(self.opted_out, OPTED_OUT_POLICY,
                          recent_correct=self._recent_correct(conn, tenant_id, learner_id,
                                                              last_seq, self._streak))
        experiment = self.running(tenant_id, at)
        refused = consent is not None and consent[1] is False
        unasked = consent is None or consent[1] is None
        if experiment is None or refused or (experiment.require_consent and unasked):
            return self.default_for(tenant)
        arm = conn.execute(self._assigned, {"x": experiment.id, "l": learner_id}).scalar()
        if arm is None:
            if not enrol:
                return None
            arm = experiment.assign(learner_id)
            if consent is None:
                conn.execute(self._create_learner, {"t": tenant_id, "l": learner_id, "now": at})
            conn.execute(self._enrol, {"x": experiment.id, "t": tenant_id, "l": learner_id,
                                       "arm": arm, "now": at})
        config = experiment.arm(arm)
        outcomes = self._recent_correct(conn, tenant_id, learner_id, last_seq,
                                        outcomes_read(config.built)) \
            if config.policy in NEEDS_OUTCOMES else ()
        return Served(config.built, config.policy, config.options.get("target_success"),
                      experiment.id, arm, outcomes, journey=True)

    def _recent_correct(self, conn: Connection, tenant_id: int, learner_id: str,
                        last_seq: int | None, n: int) -> tuple[bool, ...]:
        rows = conn.execute(self._outcomes, {"t": tenant_id, "l": learner_id,
                                             "n": n,
                                             "last": 2**31 - 1 if last_seq is None
                                             else last_seq}).scalars().all()
        return tuple(bool(c) for c in reversed(rows))


def outcomes_read(policy: Policy) -> int:
    """How many of a learner's last outcomes ``policy`` reads: the fixed curriculum's
    streak (an arm's own, not the opted-out learners' 3: a streak of 5 read from 3 outcomes
    never passed a skill), none for the others."""
    return policy.streak if isinstance(policy, FixedCurriculumPolicy) else 0


def _servable(rows: Iterable[Row[Any]]) -> Iterable[Experiment]:
    """The experiments of ``rows`` that can be served, oldest first (should two overlap,
    which the API refuses, the oldest serves, the same on every read). One that cannot (a
    row stored before the API refused its definition: weights too far apart, a policy or
    option no longer taken) is logged and skipped, its learners served by the tenant's
    default: one bad definition must not fail every exercise of the tenant."""
    for row in rows:
        try:
            experiment = Experiment.of(row)
            experiment.check()
        except (ValueError, TypeError, KeyError) as exc:
            log.error("experiment %d of tenant %d cannot be served, skipped: %s", row.id,
                      row.tenant_id, exc)
            continue
        yield experiment


def _utc(moment: datetime) -> datetime:
    """Timestamps are stored in UTC; SQLite hands them back without their zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_or_none(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def learner_record(conn: Connection, tenant_id: int, learner_id: str,
                   ) -> tuple[Consent, list[Assignment], dict[int, str]]:
    """What the experiments hold about a learner, for the export: their consent, their
    assignments, and the names of the tenant's experiments by id (the answer rows name them by
    id)."""
    row = conn.execute(select(learners.c.personalization, learners.c.experiment_consent,
                              learners.c.consent_updated_at).where(
        learners.c.tenant_id == tenant_id, learners.c.learner_id == learner_id)).first()
    consent: Consent = {
        "learner_id": learner_id,
        "personalization": True if row is None else bool(row.personalization),
        "experiments": None if row is None or row.experiment_consent is None
        else bool(row.experiment_consent),
        "updated_at": None if row is None else _utc_or_none(row.consent_updated_at)}
    names = {r.id: r.name for r in conn.execute(
        select(experiments.c.id, experiments.c.name).where(
            experiments.c.tenant_id == tenant_id))}
    assigned: list[Assignment] = [
        {"experiment": names[r.experiment_id], "arm": r.arm,
         "assigned_at": _utc(r.assigned_at)}
        for r in conn.execute(select(experiment_assignments).where(
            experiment_assignments.c.tenant_id == tenant_id,
            experiment_assignments.c.learner_id == learner_id).order_by(
            experiment_assignments.c.assigned_at))]
    return consent, assigned, names
