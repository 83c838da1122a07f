"""An experiment's results, replayed from the answer log.

The unit is the learner (what is randomized): every metric is a per-learner value, averaged
over the arm's learners, with the always-valid interval of :mod:`engine.experiments.sequential`
(each arm's mean, and each arm's difference from the control, the first arm). Only answers
whose row records this experiment's arm count (the arm chose what they answered):

* ``answers``: answers served by the arm, per active learner;
* ``accuracy``: the share of them that were right, per active learner;
* ``exercises_to_mastery``: per learner who mastered a skill while in the arm, the mean number
  of the arm's answers to each such skill until its mastery (the tenant's tracer replayed over
  the learner's whole log, mastery at :data:`MASTERY_THRESHOLD`; skills mastered before the
  learner's first answer in the arm do not count);
* ``returned``: whether the learner answered again at least a day after their first answer in
  the arm, among learners whose first answer is at least a day old (the others could not have).

Learners per arm are checked against the weights (sample-ratio mismatch).

Replaying is the costly part (every answer of the experiment's learners through the tracer), so
one tenant polling its results must not take a worker's threads from the others: each worker
replays an experiment at most once per :data:`REPLAY_SECONDS` (concurrent requests wait for the
one replay under way and share it), and a replay that runs past the request budget
(``TUTOR_REQUEST_BUDGET_SECONDS``) stops with :class:`OverBudget`; ``tutor experiment report``
has no budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from api.db import events, experiment_assignments
from api.experiment_admin import find_experiment, status
from api.experiment_schemas import ArmResults, Difference, Estimate, ResultsResponse
from api.experiments import Experiment
from api.service import Conflict, TutorService
from api.tenants import Tenant
from engine.events import AnswerEvent
from engine.experiments import (
    Interval,
    Sample,
    difference_interval,
    mean_interval,
    srm_check,
)

METRICS: dict[str, str] = {
    "answers": "answers served by the arm, per learner",
    "accuracy": "share of a learner's answers that were right",
    "exercises_to_mastery": "answers to a skill until its mastery, per learner (mean over "
                            "the skills the learner mastered in the arm)",
    "returned": "share of learners who answered again at least a day after their first "
                "answer (learners whose first answer is at least a day old)",
}
BINARY = {"returned"}
#: the mastery that counts a skill mastered, the same for every arm whatever its policy's own
#: threshold (so arms compare on one yardstick): the target-success policy's, as results were
#: computed before the default policy changed (issue 21)
MASTERY_THRESHOLD = 0.95
RETURN_AFTER = timedelta(days=1)
#: how long a worker reuses an experiment's replay, and how many replays it keeps
REPLAY_SECONDS, REPLAYS_KEPT = 15.0, 64


class OverBudget(RuntimeError):
    """A computation that would take longer than a request may (the service's 503)."""


@dataclass
class _Learner:
    """One learner's values, as their log is replayed."""

    answers: int = 0
    correct: int = 0
    first: datetime | None = None
    returned: bool = False
    to_mastery: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Replayed:
    """An experiment's learners replayed at ``now``: their assigned arms and values."""

    now: datetime
    arm_of: dict[str, str]
    values: dict[str, _Learner]


_Key = tuple[str, int, int, int]


class _Replays:
    """Each (database, tenant, experiment, content version)'s replay, kept
    :data:`REPLAY_SECONDS`; one replay at a time per key, the others waiting for it (a burst of
    polls costs one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[_Key, threading.Lock] = {}
        self._done: OrderedDict[_Key, tuple[float, _Replayed]] = OrderedDict()

    def get(self, key: _Key, replay: Callable[[], _Replayed]) -> _Replayed:
        with self._lock:
            key_lock = self._keys.setdefault(key, threading.Lock())
        with key_lock:
            kept = self._done.get(key)
            if kept is not None and time.monotonic() - kept[0] < REPLAY_SECONDS:
                return kept[1]
            replayed = replay()
            with self._lock:
                self._done[key] = (time.monotonic(), replayed)
                self._done.move_to_end(key)
                while len(self._done) > REPLAYS_KEPT:
                    self._keys.pop(self._done.popitem(last=False)[0], None)
            return replayed


_REPLAYS = _Replays()


def experiment_results(service: TutorService, tenant: Tenant, name: str,
                       alpha: float = 0.05, budget_s: float | None = None) -> ResultsResponse:
    """The results of the tenant's experiment ``name`` (:class:`NotFound` if none,
    :class:`Conflict` if its stored definition cannot be served), from a replay at most
    :data:`REPLAY_SECONDS` old; :class:`OverBudget` if replaying takes more than
    ``budget_s`` seconds (None: no limit)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 1, got {alpha!r}")
    experiment = find_experiment(service, tenant.id, name)
    try:  # a definition stored before the API refused it: never served, no split to check
        experiment.check()
    except ValueError as exc:
        raise Conflict(f"experiment {name!r} cannot be served, nor analysed: {exc}") from None
    rt = service.runtimes.get(tenant)
    deadline = None if budget_s is None else time.monotonic() + budget_s
    replayed = _REPLAYS.get((str(service.engine.url), tenant.id, experiment.id,
                             rt.content_version),
                            lambda: _replay_all(service, tenant, experiment, deadline))
    arm_of, values = replayed.arm_of, replayed.values
    arms: list[ArmResults] = []
    samples: dict[str, dict[str, Sample]] = {}
    for arm in experiment.arms:
        members = [values[x] for x, a in arm_of.items() if a == arm.name and x in values
                   and values[x].answers]
        per_metric = _samples(members, replayed.now)
        samples[arm.name] = per_metric
        arms.append({"arm": arm.name, "policy": arm.policy, "weight": arm.weight,
                     "learners": sum(1 for a in arm_of.values() if a == arm.name),
                     "active": len(members), "answers": sum(m.answers for m in members),
                     "metrics": {k: _estimate(mean_interval(s, alpha, binary=k in BINARY), s.n)
                                 for k, s in per_metric.items()}})
    control = experiment.arms[0].name
    differences = {arm.name: {k: _difference(difference_interval(
        samples[control][k], samples[arm.name][k], alpha, binary=k in BINARY))
        for k in METRICS} for arm in experiment.arms[1:]}
    srm = srm_check([a["learners"] for a in arms], [a.weight for a in experiment.arms])
    return {"experiment": experiment.name, "status": status(experiment, datetime.now(UTC)),
            "computed_at": replayed.now, "alpha": alpha, "control": control, "metrics": METRICS,
            "arms": arms, "differences": differences,
            "srm": {"counts": list(srm.counts), "expected": [round(e, 6) for e in srm.expected],
                    "chi2": round(srm.chi2, 6), "p_value": srm.p_value,
                    "mismatch": srm.mismatch}}


def _replay_all(service: TutorService, tenant: Tenant, experiment: Experiment,
                deadline: float | None) -> _Replayed:
    """Every assigned learner's log through the tenant's tracer (:class:`OverBudget` past
    ``deadline``, a :func:`time.monotonic` time)."""
    now = datetime.now(UTC)
    rt = service.runtimes.get(tenant)
    threshold = MASTERY_THRESHOLD
    assigned = (select(experiment_assignments.c.learner_id)
                .where(experiment_assignments.c.experiment_id == experiment.id))
    with service.engine.connect() as conn:
        arm_of = dict(conn.execute(select(experiment_assignments.c.learner_id,
                                          experiment_assignments.c.arm).where(
            experiment_assignments.c.experiment_id == experiment.id)).all())
        rows = conn.execute(
            select(events.c.learner_id, events.c.item_id, events.c.skills, events.c.correct,
                   events.c.answered_at, events.c.experiment_id, events.c.arm)
            .where(events.c.tenant_id == tenant.id, events.c.learner_id.in_(assigned))
            .order_by(events.c.learner_id, events.c.seq)).all()
    values: dict[str, _Learner] = {}
    by_learner: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_learner[row.learner_id].append(row)
    for learner_id, log in by_learner.items():
        if deadline is not None and time.monotonic() > deadline:
            raise OverBudget(
                f"the results of experiment {experiment.name!r} take longer to replay than a "
                f"request may ({len(rows)} answers of {len(arm_of)} learners; "
                "TUTOR_REQUEST_BUDGET_SECONDS): `tutor experiment report` computes them "
                "without a limit")
        values[learner_id] = _replay(rt.tracer, learner_id, log, experiment.id,
                                     arm_of[learner_id], threshold, now, rt.catalog.skills)
    return _Replayed(now, arm_of, values)


def _replay(tracer: Any, learner_id: str, log: Sequence[Any], experiment_id: int, arm: str,
            threshold: float, now: datetime, skills: Any) -> _Learner:
    """Fold the learner's log, counting the answers the arm served."""
    found = _Learner()
    state = tracer.new_state()
    count: dict[str, int] = defaultdict(int)
    done: set[str] = set()
    for row in log:
        at = _as_utc(row.answered_at)
        tagged = row.experiment_id == experiment_id and row.arm == arm
        if tagged and found.first is None:  # skills mastered before the arm do not count
            mastery = tracer.mastery(state, list(skills), at=at)
            done = {s for s, p in mastery.items() if p >= threshold}
        state = tracer.update(state, AnswerEvent(learner_id, row.item_id, tuple(row.skills),
                                                 bool(row.correct), timestamp=at))
        if not tagged:
            continue
        found.answers += 1
        found.correct += bool(row.correct)
        if found.first is None:
            found.first = at
        elif at - found.first >= RETURN_AFTER:
            found.returned = True
        mastery = tracer.mastery(state, row.skills, at=at)
        for skill in row.skills:
            if skill in done:
                continue
            count[skill] += 1
            if mastery[skill] >= threshold:
                done.add(skill)
                found.to_mastery.append(count[skill])
    return found


def _samples(members: Sequence[_Learner], now: datetime) -> dict[str, Sample]:
    return {
        "answers": Sample.of(m.answers for m in members),
        "accuracy": Sample.of(m.correct / m.answers for m in members),
        "exercises_to_mastery": Sample.of(sum(m.to_mastery) / len(m.to_mastery)
                                          for m in members if m.to_mastery),
        "returned": Sample.of(float(m.returned) for m in members
                              if m.first is not None and now - m.first >= RETURN_AFTER),
    }


def _number(value: float) -> float | None:
    """JSON has no infinities nor NaN: null."""
    return round(value, 6) if math.isfinite(value) else None


def _estimate(interval: Interval, n: int) -> Estimate:
    return {"mean": _number(interval.estimate), "n": n,
            "ci": [_number(interval.low), _number(interval.high)]}


def _difference(interval: Interval) -> Difference:
    return {"estimate": _number(interval.estimate),
            "ci": [_number(interval.low), _number(interval.high)],
            "p_value": round(interval.p_value, 6), "significant": interval.excludes_zero}


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
