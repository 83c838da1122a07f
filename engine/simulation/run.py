"""Policies run on simulated learners, paired: the outcome of each policy on the same learners.

One run (:func:`run_policy`) is a population (one learner-model family, a seed) working through
a course in sessions separated by time (a :class:`Schedule`: one session a day of
``per_session`` exercises, ``spacing`` seconds apart). Before every exercise the policy chooses
from the engine's tracer state, exactly as the API would (the same context: the last
:data:`RECENT` items and their outcomes, the learner's answer count and id as tie-break seed,
the moment of the choice, which is the learner's previous answer, as when the API returns the
``next`` exercise with an answer's response, or the exercise's own time for a learner who was
served nothing at the previous one: the ``GET /next`` of a learner who comes back, which
serves reviews that fell due since the course was complete); the simulated learner answers
with its true P(correct); the tracer is updated with the answer (through the
:class:`~engine.tracing.base.Tracer` contract only) and the population learns. Whoever chooses
and traces is a :class:`Tutor`: the engine in this process (:class:`EngineTutor`), or a running
server, driven over HTTP by :mod:`training.simulate_http` through the very same loop
(:func:`run_tutor`), which gets the same numbers for the same seed. :func:`compare` runs every
policy on every family with the same seed, so each policy meets the same learners (paired), and
summarizes with :mod:`engine.simulation.metrics`. A row may also be a tutor built on the
population itself (a :data:`TutorFactory`: the oracle of :mod:`engine.simulation.oracle`, which
reads the learners' true state), run through the same loop on the same learners; with the
fixed curriculum and the oracle both run, each policy's share of the oracle's gain on
exercises to mastery is reported (:func:`~engine.simulation.metrics.gain_share_ci`).

Outcomes per learner: exercises until every course skill is truly mastered (ground truth;
learners who never get there count as the whole budget, a lower bound, and the share who get
there is reported); exercises until the tutor *releases* the learner: first serves it nothing,
its course complete as the API says it (:func:`engine.selection.journey.choose`: every course
skill learned at the policy's mastery threshold and no review due; the whole budget if that
never happens, 0 for a learner who knows the course and a tutor that says so at once); of
those exercises, the ones spent on what the learner knew at the start (every
skill of the item truly mastered at time 0: practice a placement or a test-out could have
saved); the post-test (expected score on every course item right after the last
session), retention 7 and 30 days later with no practice in between, and the diagnostic AUC of
the tracer's P(mastered) against the true mastery over the course skills at the end of every
day. Curves for pictures: true mastery share per day, test score by days after the course.

Speed: all learners advance in lockstep, one batched call per exercise for the policy
(``choose_many``, with :func:`~engine.selection.spaced.complete_many` for the course's end)
and the tracer (``update_many``); ``lockstep=False`` runs the one-learner
calls instead, learner by learner (the reference the tests hold the batched path equal to).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.selection import journey
from engine.selection.batch import SelectionBatch, scope
from engine.selection.lockstep import choose_many, context_of
from engine.selection.policy import Policy
from engine.selection.prepared import prepare
from engine.selection.scope_prereqs import outside_prerequisites
from engine.selection.spaced import complete_many
from engine.simulation.base import DAY, NO_ITEM, Population, make_population
from engine.simulation.metrics import gain_share_ci, learner_auc, mean_ci, paired_ci, share_ci
from engine.tracing.base import Tracer

__all__ = ["METRICS", "RECENT", "REPORTED_DECIMALS", "Comparison",
           "EngineTutor", "PolicyRun", "PopulationFactory", "Schedule", "Tutor", "TutorFactory",
           "compare", "learner_ids", "run_policy", "run_tutor"]

#: recent items passed to policies (the API keeps as many)
RECENT = 10
#: the moment simulated time 0 stands for (tracers and policies take datetimes)
EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
#: days after the course at which the retention curve is measured
RETENTION_DAYS = (0, 1, 2, 3, 5, 7, 10, 14, 21, 30)
#: the per-learner outcomes, in report order
METRICS = ("exercises_to_mastery", "exercises_to_complete", "exercises_on_known",
           "post_test", "retention_7d", "retention_30d", "diagnostic_auc")

#: called with (steps done, steps in all, what is happening, metrics so far)
Progress = Callable[[int, int, str, Mapping[str, float]], None]


@dataclass(frozen=True)
class Schedule:
    """``days`` daily sessions of ``per_session`` exercises, ``spacing`` seconds apart."""

    days: int = 30
    per_session: int = 10
    spacing: float = 60.0

    def __post_init__(self) -> None:
        for name in ("days", "per_session"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0.0 < self.spacing <= DAY / self.per_session:
            raise ValueError(f"spacing must be positive and fit {self.per_session} exercises "
                             f"in a day, got {self.spacing!r}")

    @property
    def budget(self) -> int:
        """Exercises per learner in all."""
        return self.days * self.per_session

    @property
    def end(self) -> float:
        """Simulated time just after the last exercise (seconds)."""
        return (self.days - 1) * DAY + self.per_session * self.spacing


@dataclass(frozen=True, eq=False)
class PolicyRun:
    """One policy on one population: per-learner outcomes (arrays of shape (n,)) and curves."""

    family: str
    policy: str
    outcomes: dict[str, np.ndarray]
    mastered: np.ndarray  #: bool: reached course mastery within the schedule
    mastery_curve: np.ndarray  #: (days,): mean share of course skills truly mastered
    retention_curve: np.ndarray  #: (len(RETENTION_DAYS),): mean test score after the course


@dataclass
class Comparison:
    """Every policy on every family (same learners per family), the baseline policy, and
    ``gain``: the (fixed curriculum, oracle) rows each policy's share of the oracle's gain is
    measured between, where both were run."""

    runs: dict[str, dict[str, PolicyRun]] = field(default_factory=dict)
    baseline: str = ""
    gain: tuple[str, str] | None = None

    def summary(self) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
        """family -> policy -> metric -> ``{"mean", "ci95", "n"}``, with
        ``"vs_baseline"`` (paired difference and p-value) for every policy but the baseline,
        ``mastered_share`` (Wilson interval) for each policy, and ``share_of_oracle_gain``
        (:func:`~engine.simulation.metrics.gain_share_ci`) for each row but the two of
        ``gain``."""
        out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        for family, runs in self.runs.items():
            base = runs.get(self.baseline)
            out[family] = {}
            for name, run in runs.items():
                metrics: dict[str, dict[str, Any]] = {}
                for metric in METRICS:
                    metrics[metric] = mean_ci(run.outcomes[metric])
                    if base is not None and name != self.baseline:
                        metrics[metric]["vs_baseline"] = paired_ci(run.outcomes[metric],
                                                                   base.outcomes[metric])
                metrics["mastered_share"] = share_ci(run.mastered)
                if self.gain is not None and name not in self.gain:
                    floor, ceiling = (runs[g].outcomes["exercises_to_mastery"]
                                      for g in self.gain)
                    metrics["share_of_oracle_gain"] = gain_share_ci(
                        floor, run.outcomes["exercises_to_mastery"], ceiling)
                out[family][name] = metrics
        return out


#: decimals of the mastery the API reports: the in-process diagnostic reads its tracer at this
#: precision too, so that a served run (which can only read what the API reports) scores the
#: same numbers (``tests/simulation/test_http.py``)
REPORTED_DECIMALS = 6


class Tutor(Protocol):
    """Who chooses the learners' exercises and traces what they know: the engine in this
    process (:class:`EngineTutor`), or a running server over HTTP
    (:mod:`training.simulate_http`). :func:`run_tutor` drives either through the same
    simulated learners, so a served run can be held equal to the in-process one."""

    def choose(self, at: datetime) -> np.ndarray:
        """Per learner, the item (index in catalog order) to answer at ``at``, or ``NO_ITEM``
        (nothing served: the course complete). A learner who answered at the previous
        exercise gets the ``next`` of that answer's response (the API chooses it at the
        answer's time); one who did not (the first exercise, or nothing served then) asks now
        (``GET /next``, chosen at ``at``)."""
        ...

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        """Learner ``i`` answered ``items[i]`` at ``at``, right when ``correct[i]`` (learners
        with ``NO_ITEM`` did not answer)."""
        ...

    def mastery(self, at: datetime) -> np.ndarray:
        """P(mastered) of the course's skills (catalog order) that the tracer believes at
        ``at``, rounded to :data:`REPORTED_DECIMALS`; shape (n, course skills)."""
        ...


#: a tutor built on the population it teaches (``(population, catalog, course) -> Tutor``):
#: what reads the learners' true state, such as the oracle
TutorFactory = Callable[[Population, Catalog, str | None], Tutor]
#: the learners of a run, ``(family, catalog, n, seed) -> Population`` (default
#: :func:`~engine.simulation.base.make_population`; a study can give learners who know part of
#: the course)
PopulationFactory = Callable[[str, Catalog, int, int], Population]


class EngineTutor:
    """The engine in this process, serving what the API serves: ``policy``'s choice wrapped by
    :func:`engine.selection.journey.choose` (nothing for a learner whose course is complete at
    the moment of the choice: every skill learned at the policy's mastery threshold and no
    review due; reviews that fall due are chosen again), from ``tracer``'s states, with the
    context the API builds (the last :data:`RECENT` items and their outcomes, the learner's
    answer count as tie-break seed, the learner's id, the moment of the choice).

    ``lockstep`` (the default) makes one batched call per exercise for the whole population
    (``choose_many`` and :func:`~engine.selection.spaced.complete_many` at the levels
    :func:`engine.selection.journey.levels` gives, ``update_many``); without it every learner
    gets the one-learner calls, ``journey.choose`` itself (the reference the tests hold the
    batched path equal to). The batched reading of the journey holds where the journey reads
    completion by that rule and never leaves the course; for a policy with its own
    ``course_status``, or a course whose prerequisites lie outside it (which the journey
    offers when they lock the course), choices are made learner by learner even in lockstep.
    """

    def __init__(self, catalog: Catalog, course: str | None, policy: Policy,
                 tracer: Tracer[Any], learners: Sequence[str], *, lockstep: bool = True) -> None:
        self.catalog, self.course, self.policy, self.tracer = catalog, course, policy, tracer
        self.learners = tuple(learners)
        self.lockstep = lockstep
        self.batched = lockstep and not callable(getattr(policy, "course_status", None)) \
            and not (course is not None and outside_prerequisites(catalog, course))
        self.mastery_threshold, self.retention = journey.levels(policy)
        n = len(self.learners)
        self.prepared = prepare(catalog)
        self.course_skills = scope(self.prepared, course)[1]
        self.states = tracer.new_states(n) if lockstep else [tracer.new_state()
                                                             for _ in range(n)]
        self.recent = np.full((n, RECENT), NO_ITEM, dtype=np.int64)
        self.recent_correct = np.zeros((n, RECENT), dtype=bool)
        self.answered = np.zeros(n, dtype=np.int64)
        #: the learners who answered at the last exercise, and its time: their ``next`` is
        #: the one chosen then (the others ask when they come to the next exercise)
        self.replied = np.zeros(n, dtype=bool)
        self.answered_at = EPOCH

    def choose(self, at: datetime) -> np.ndarray:
        replied = self.replied
        if self.batched:
            chosen = self._chosen_many(self.answered_at, replied)
            asking = ~replied
            return np.where(asking, self._chosen_many(at, asking), chosen)
        batches = {moment: self._batch(moment) for moment in {at, self.answered_at}}
        chosen = np.full(len(self.learners), NO_ITEM, dtype=np.int64)
        for i, moment in enumerate(self.answered_at if r else at for r in replied.tolist()):
            found = journey.choose(self.policy, self.tracer, self.states[i], self.catalog,
                                   context_of(batches[moment], i, self.catalog))
            if found.choices:
                chosen[i] = self.prepared.item_index[found.choices[0].item]
        return chosen

    def _chosen_many(self, at: datetime, who: np.ndarray) -> np.ndarray:
        """The journey's first choice at ``at`` for the learners ``who`` (``NO_ITEM`` for the
        others): nothing where the course is complete, else the policy's. Only the learners
        concerned are read (a sub-batch: a choice depends on its learner alone), so learners
        done with the course cost nothing once they are many."""
        chosen = np.full(len(who), NO_ITEM, dtype=np.int64)
        asked = np.flatnonzero(who)
        if not len(asked):
            return chosen
        complete = complete_many(self.tracer, self._states_of(asked), self.catalog,
                                 self.course, at=at, retention=self.retention,
                                 mastery_threshold=self.mastery_threshold)
        open_ = asked[~complete]
        if len(open_):
            chosen[open_] = choose_many(self.policy, self.tracer, self._states_of(open_),
                                        self.catalog, self._batch(at, open_))
        return chosen

    def _states_of(self, learners: np.ndarray) -> Any:
        """The batch of ``learners``' states (the tracer's layout: an array, or a list)."""
        if len(learners) == len(self.learners):
            return self.states
        if isinstance(self.states, np.ndarray):
            return self.states[learners]
        return [self.states[i] for i in learners.tolist()]

    def _batch(self, at: datetime, learners: np.ndarray | None = None) -> SelectionBatch:
        """The context the API builds for a choice at ``at``, for ``learners`` (None: all)."""
        if learners is None or len(learners) == len(self.learners):
            return SelectionBatch(self.learners, self.recent, self.recent_correct,
                                  self.answered.copy(), course=self.course, at=at)
        return SelectionBatch(tuple(self.learners[i] for i in learners.tolist()),
                              self.recent[learners], self.recent_correct[learners],
                              self.answered[learners], course=self.course, at=at)

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        index = self.prepared.index
        if self.lockstep:
            self.states = self.tracer.update_many(self.states, index, items, correct, at=at)
        else:
            for i in np.flatnonzero(items != NO_ITEM).tolist():
                j = int(items[i])
                self.states[i] = self.tracer.update(self.states[i], AnswerEvent(
                    self.learners[i], index.item_ids[j], index.item_skills[j],
                    bool(correct[i]), timestamp=at))
        active = items != NO_ITEM
        self.recent[active, :-1] = self.recent[active, 1:]
        self.recent[active, -1] = items[active]
        self.recent_correct[active, :-1] = self.recent_correct[active, 1:]
        self.recent_correct[active, -1] = correct[active]
        self.answered += active
        self.replied, self.answered_at = active, at

    def mastery(self, at: datetime) -> np.ndarray:
        index = self.prepared.index
        believed = self.tracer.mastery_of_many(self.states, index, at=at) if self.lockstep \
            else np.array([self.tracer.mastery_of(s, index, at=at) for s in self.states])
        return np.round(believed[:, self.course_skills], REPORTED_DECIMALS)


def learner_ids(prefix: str, family: str, n: int) -> tuple[str, ...]:
    """The ids of a population's learners, ``PREFIX-FAMILY-I`` (tie-breaks depend on them;
    the default prefix is ``sim<seed>``, in process and on a server alike, so that the two
    runs of the same seed choose alike, and every family has learners of its own there)."""
    return tuple(f"{prefix}-{family}-{i}" for i in range(n))


def run_policy(family: str, catalog: Catalog, course: str | None, policy: Policy, *, n: int,
               seed: int, schedule: Schedule, tracer: Tracer[Any], label: str = "",
               lockstep: bool = True, learners: Sequence[str] | None = None,
               epoch: datetime = EPOCH, progress: Progress | None = None,
               population: Population | None = None) -> PolicyRun:
    """``policy`` on ``n`` learners of ``family`` (seed ``seed``), ``tracer`` tracing them in
    this process (:class:`EngineTutor`); ``learners`` are their ids (default
    :func:`learner_ids`), ``epoch`` the moment simulated time 0 stands for, ``population``
    as :func:`run_tutor` takes it."""
    learners = learner_ids(f"sim{seed}", family, n) if learners is None else tuple(learners)
    if len(learners) != n:
        raise ValueError(f"give one id per learner: {len(learners)} ids for {n} learners")
    tutor = EngineTutor(catalog, course, policy, tracer, learners, lockstep=lockstep)
    return run_tutor(family, catalog, course, tutor, n=n, seed=seed, schedule=schedule,
                     label=label or repr(policy), epoch=epoch, progress=progress,
                     population=population)


def run_tutor(family: str, catalog: Catalog, course: str | None, tutor: Tutor, *, n: int,
              seed: int, schedule: Schedule, label: str, epoch: datetime = EPOCH,
              progress: Progress | None = None,
              population: Population | None = None) -> PolicyRun:
    """``n`` learners of ``family`` (seed ``seed``) work through ``course`` on ``schedule``,
    answering whatever ``tutor`` chooses; their outcomes under the name ``label``.

    Each answer is drawn from the learner's true P(correct) with the run's own random stream,
    one draw per learner and exercise whoever chooses, so the same seed gives the same
    learners the same luck under every tutor. A learner's exercise is the ``next`` chosen
    at the time of its previous answer, as the API gives it with the answer's response, or,
    for a learner who did not answer at the previous exercise (nothing was served then), one
    chosen when the learner comes to the exercise (:meth:`Tutor.choose`).
    ``population``: the learners, when a study prepares them itself (default: a new one of
    ``family`` with ``n`` learners and ``seed``).

    A learner's exercises to complete are those answered before the tutor first serves the
    learner nothing (``NO_ITEM``: the course complete, as the API says it; 0 when that is so
    at the first choice); a served run reads it from the server's ``next`` alone.
    """
    prepared = prepare(catalog)
    course_items, course_skills, _ = scope(prepared, course)
    test_items = np.flatnonzero(course_items)
    if not len(test_items):
        raise ValueError(f"course {course!r} has no items to practise or test")
    if population is None:
        population = make_population(family, catalog, n, seed)
    elif population.n != n:
        raise ValueError(f"the population has {population.n} learners, the run {n}")
    answers_rng = np.random.default_rng([seed, 0x5EED])
    answered = np.zeros(n, dtype=np.int64)
    known = population.mastery(0.0)
    reached = np.where(known[:, course_skills].all(axis=1), 0, -1)
    # per learner and item: every skill of the item mastered at the start
    known_item = prepared.all_per_item(known[:, prepared.pair_skill])
    on_known = np.zeros(n, dtype=np.int64)
    released = np.full(n, -1, dtype=np.int64)
    rows = np.arange(n)
    mastery_curve = np.zeros(schedule.days)
    believed, truth = [], []
    for day in range(schedule.days):
        for k in range(schedule.per_session):
            t = day * DAY + k * schedule.spacing
            at = epoch + timedelta(seconds=t)
            chosen = tutor.choose(at)
            active = chosen != NO_ITEM
            released = np.where((released < 0) & ~active, answered, released)
            correct = (answers_rng.random(n) < population.p_correct(chosen, t)) & active
            population.practise(chosen, correct, t)
            tutor.record(chosen, correct, at)
            on_known += active & (released < 0) & known_item[rows, np.maximum(chosen, 0)]
            answered += active
            now_mastered = population.mastery(t)[:, course_skills].all(axis=1)
            reached = np.where((reached < 0) & now_mastered, answered, reached)
        t_day = day * DAY + schedule.per_session * schedule.spacing
        true_now = population.mastery(t_day)[:, course_skills]
        mastery_curve[day] = true_now.mean()
        believed.append(tutor.mastery(epoch + timedelta(seconds=t_day)))
        truth.append(true_now)
        if progress is not None:
            progress(day + 1, schedule.days, f"{family}: {label}",
                     {"mastered": float(true_now.mean())})
    end = schedule.end
    scores = {d: population.test_score(test_items, end + d * DAY) for d in RETENTION_DAYS}
    outcomes = {
        "exercises_to_mastery": np.where(reached >= 0, reached, schedule.budget).astype(float),
        "exercises_to_complete": np.where(released >= 0, released,
                                          schedule.budget).astype(float),
        "exercises_on_known": on_known.astype(float),
        "post_test": scores[0],
        "retention_7d": scores[7],
        "retention_30d": scores[30],
        "diagnostic_auc": learner_auc(np.concatenate(believed, axis=1),
                                      np.concatenate(truth, axis=1)),
    }
    return PolicyRun(family, label, outcomes, reached >= 0, mastery_curve,
                     np.array([scores[d].mean() for d in RETENTION_DAYS]))


def compare(families: Sequence[str], catalog: Catalog, course: str | None,
            policies: Mapping[str, Policy], *, n: int, seed: int, schedule: Schedule,
            tracer: Callable[[], Tracer[Any]], baseline: str | None = None,
            progress: Progress | None = None,
            tracers: Mapping[str, Callable[[], Tracer[Any]]] | None = None,
            tutors: Mapping[str, TutorFactory] | None = None,
            population: PopulationFactory = make_population,
            gain: tuple[str, str] | None = None) -> Comparison:
    """Every policy (label -> policy) on every family, each family's learners the same for
    every policy (seed ``seed``); ``tracer()`` gives the tracer of each run, ``tracers`` another
    one for the policies (by label) that run with their own (a spacing policy needs a tracer
    with memory); ``baseline`` (default: the first policy) is what paired differences are
    taken against. ``tutors`` (label -> factory) are rows after the policies, each built on
    the population it teaches; ``population`` makes each run's learners; ``gain``: the labels
    of the fixed curriculum and the oracle, for each row's share of the oracle's gain."""
    labels = [*policies, *(tutors or {})]
    if not policies:
        raise ValueError("give at least one policy")
    if len(labels) != len(set(labels)):
        raise ValueError(f"a tutor has a policy's label ({', '.join(labels)})")
    for what, label in [("baseline", baseline), *(("gain row", g) for g in gain or ())]:
        if label is not None and label not in labels:
            raise ValueError(f"{what} {label!r} is not among the policies "
                             f"({', '.join(labels)})")
    result = Comparison(baseline=baseline or next(iter(policies)), gain=gain)
    for family in families:
        runs = result.runs[family] = {}
        for label, policy in policies.items():
            runs[label] = run_policy(
                family, catalog, course, policy, n=n, seed=seed, schedule=schedule,
                tracer=(tracers or {}).get(label, tracer)(), label=label, progress=progress,
                population=population(family, catalog, n, seed))
        for label, build in (tutors or {}).items():
            learners = population(family, catalog, n, seed)
            runs[label] = run_tutor(family, catalog, course, build(learners, catalog, course),
                                    n=n, seed=seed, schedule=schedule, label=label,
                                    progress=progress, population=learners)
    return result
