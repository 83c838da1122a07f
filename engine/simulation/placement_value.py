"""What a placement test is worth: exercises to course mastery with and without one.

Placement only pays for learners who already know part of the course, and logs cannot say what
such a learner would have done without it; simulated learners with a known ground truth can.
The study (:func:`placement_study`) takes learners who know part of the course, ``known_share``
of its skills (half by default), and runs each of them in every arm with the same seed, so the
arms meet the same learners with the same luck:

* **prior**: the tracer starts every learner from the skills' priors (what the engine does for a
  learner who skips placement);
* **placement**: first a placement test over the course's items, at time 0: the learner
  answers each item with its true P(correct) and learns nothing from the test. ``method``
  ``skills`` (the default) is the per-skill test (:mod:`engine.placement.skills`, at most
  :data:`MAX_LENGTH` items, stopping earlier once every skill is classified at
  :data:`CONFIDENCE`): each skill's P(known) becomes its starting P(mastered). ``theta`` is
  the θ test (:class:`~engine.placement.session.Placement`, at most :data:`THETA_MAX_LENGTH`
  items, standard-error stop :data:`STOP_SE`): one ability, mapped to each skill's starting
  P(mastered) (:func:`~engine.placement.mastery.starting_mastery`). As in the API, the
  test's answers are folded into the tracer's state (a tracer with memory learns when each
  tested skill was last practised), then the result is written over it with ``with_mastery``;
* **oracle** (optional): the tracer starts from each learner's true state, at no cost: the
  ceiling of what any placement could save with this policy, tracer and schedule.

Then the same policy teaches for the same schedule. Exercises to course mastery count the
placement's items as exercises too (a test item costs the learner as much time as a practice
item), within the same budget: a learner who has not mastered the course after the schedule's
exercises, test items included, counts the budget in every arm (a restricted mean: the test
does not make a learner who never gets there look worse than one who skipped it). Paired
differences (placement - prior) with 95% intervals come from
:mod:`engine.simulation.metrics`, and so does the placement's **share of the oracle's saving**,
(prior - placement) / (prior - oracle) on exercises to mastery, with its bootstrap interval.
The placement's **classification accuracy** is the share of (learner, course skill) pairs where
the starting P(mastered) is on the true side of 0.5 (the truth: the family's mastery at time 0).

**What the learners know** (``known``):

* ``random`` (the default): each learner a random prerequisite-closed set of ``known_share`` of
  the course's skills (:func:`random_known`): the skills learnt first in a random learning
  order that respects the prerequisites (each next skill uniform among those whose
  prerequisites are known). Learners differ in what they know, as a class does;
* ``first``: every learner the first part of the course in prerequisite order
  (:func:`known_skills`): skills ordered by depth in the prerequisite graph, then by their items'
  mean difficulty, so what is known is closed under prerequisites and, as far as the course
  allows, is its easier part (what one θ can place).

**Prior knowledge per family** (:data:`PRIOR_KNOWLEDGE`), on top of what the family draws itself:

* ``prereq-forget``: the known skills are known at the start, as prior knowledge (the family's
  prior-knowledge stability, 60 days x the learner's memory, with a forgetting time drawn from
  it);
* ``irt-memory``: the known skills' base ability is raised to at least the skill's mastery
  threshold plus a half-normal margin (SD :data:`KNOWN_MARGIN_SD` logits), so they are mastered
  at the start and stay so (base ability does not fade).

``fitted-bkt`` has no item parameters and no prior-knowledge rule here, so the study refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.placement.irt import ItemBank
from engine.placement.knowledge import KnowledgeModel
from engine.placement.mastery import CLIP, starting_mastery
from engine.placement.session import Placement, PlacementSession, StopRule
from engine.placement.skills import DEFAULT_CONFIDENCE, SkillPlacement, SkillSession, SkillStop
from engine.selection.batch import scope
from engine.selection.policy import Policy
from engine.selection.prepared import prepare
from engine.simulation.base import NO_ITEM, Population
from engine.simulation.metrics import gain_share_ci, mean_ci, paired_ci, share_ci
from engine.simulation.prior_knowledge import (
    KNOWN_MARGIN_SD,
    PRIOR_KNOWLEDGE,
    known_skills,
    population_knowing,
    random_known,
)
from engine.simulation.run import (
    EPOCH,
    EngineTutor,
    PolicyRun,
    Schedule,
    learner_ids,
    run_tutor,
)
from engine.tracing.base import Tracer

__all__ = ["CONFIDENCE", "KNOWN", "KNOWN_MARGIN_SD", "MAX_LENGTH", "METHODS", "PRIOR_KNOWLEDGE",
           "STOP_SE", "THETA_MAX_LENGTH", "PlacementOutcome", "PlacementStudy", "classification",
           "course_bank",
           "course_model", "course_truth", "known_skills", "place", "placement_study",
           "population_knowing", "random_known"]

MAX_LENGTH = 20  #: most items of the per-skill test
CONFIDENCE = DEFAULT_CONFIDENCE  #: the per-skill test stops once every skill is classified at this
THETA_MAX_LENGTH = 12  #: most items of the θ test
STOP_SE = 0.3  #: the θ test stops once θ's standard error is at most this
METHODS = ("skills", "theta")  #: the placement tests (module doc)
KNOWN = ("random", "first")  #: what the learners know (module doc)


def course_bank(catalog: Catalog, course: str | None) -> tuple[ItemBank, np.ndarray]:
    """The course's items as an IRT bank (difficulty, discrimination and guessing from the
    catalog; 0, 1 and 0 where an item gives none; content group: the item's first skill), and
    their indices in catalog item order."""
    items = np.flatnonzero(scope(prepare(catalog), course)[0])
    ids = list(catalog.items)
    rows = [catalog.items[ids[j]] for j in items.tolist()]
    return ItemBank.build(
        [1.0 if i.discrimination is None else i.discrimination for i in rows],
        [0.0 if i.difficulty is None else i.difficulty for i in rows],
        [0.0 if i.guessing is None else i.guessing for i in rows],
        groups=[i.skills[0] for i in rows], ids=[i.id for i in rows]), items


def course_model(catalog: Catalog, course: str | None) -> KnowledgeModel:
    """The course's knowledge structure over its skills and items (the per-skill test's)."""
    items, skills, _ = scope(prepare(catalog), course)
    return KnowledgeModel.from_catalog(
        catalog, [s for s, inside in zip(catalog.skills, skills.tolist(), strict=True) if inside],
        [i for i, inside in zip(catalog.items, items.tolist(), strict=True) if inside])


@dataclass(frozen=True, eq=False)
class PlacementOutcome:
    """Each learner's placement: items used, starting P(mastered) of each skill the test
    estimates (skill id -> array over learners), and each learner's answers."""

    length: np.ndarray
    mastery: dict[str, np.ndarray]
    answers: list[list[tuple[str, bool]]]

    def of(self, i: int) -> dict[str, float]:
        """Learner ``i``'s starting masteries."""
        return {s: float(m[i]) for s, m in self.mastery.items()}

    def accuracy(self, truth: np.ndarray, skills: list[str]) -> np.ndarray:
        """Per learner, the share of ``skills`` classified right: starting P(mastered) on the
        true side of 0.5, against ``truth`` (bool, learners x ``skills``); a skill the test
        gives no mastery for counts as not known (the tracers' priors are below 0.5)."""
        placed = np.column_stack([self.mastery[s] >= 0.5 if s in self.mastery
                                  else np.zeros(len(self.length), dtype=bool) for s in skills])
        result: np.ndarray = (placed == truth).mean(axis=1)
        return result


def _test(catalog: Catalog, course: str | None, method: str,
          stop: StopRule | SkillStop | None) -> tuple[Placement | SkillPlacement, list[str]]:
    """The placement test of ``method`` over the course, and its items' ids."""
    if method == "skills":
        if stop is not None and not isinstance(stop, SkillStop):
            raise ValueError("the per-skill test takes a SkillStop")
        model = course_model(catalog, course)
        test: Placement | SkillPlacement = SkillPlacement(
            model, stop or SkillStop(max_length=MAX_LENGTH, confidence=CONFIDENCE))
        return test, [i.id for i in model.items]
    if method == "theta":
        if stop is not None and not isinstance(stop, StopRule):
            raise ValueError("the θ test takes a StopRule")
        bank = course_bank(catalog, course)[0]
        return Placement(bank, stop=stop or StopRule(max_length=THETA_MAX_LENGTH,
                                                     se=STOP_SE)), list(bank.ids)
    raise ValueError(f"unknown placement method {method!r}; one of {', '.join(METHODS)}")


def place(population: Population, catalog: Catalog, course: str | None, *, seed: int,
          method: str = "skills", stop: StopRule | SkillStop | None = None,
          level: float = 0.5) -> PlacementOutcome:
    """Every learner of ``population`` takes the placement test of ``method`` at time 0,
    answering with its true P(correct) and learning nothing (the population is only read);
    the result is each skill's starting P(mastered) (``level``, θ test only: the latent
    P(correct) that counts as mastery, :func:`~engine.placement.mastery.starting_mastery`)."""
    test, ids = _test(catalog, course, method, stop)
    n = population.n
    sessions: list[Any] = [test.start(seed * 1_000_003 + i) for i in range(n)]
    position = {item: j for j, item in enumerate(catalog.items)}
    rng = np.random.default_rng([seed, 0x91ACE])
    while True:
        asked = [s.next_item() for s in sessions]
        chosen = np.array([NO_ITEM if a is None else position[a] for a in asked], dtype=np.int64)
        if np.all(chosen == NO_ITEM):
            break
        correct = rng.random(n) < population.p_correct(chosen, 0.0)
        for session, item, right in zip(sessions, asked, correct.tolist(), strict=True):
            if item is not None:
                session.answer(item, right)
    lengths = np.array([s.length for s in sessions], dtype=np.int64)
    if method == "skills":
        starts = [s.mastery() for s in sessions if isinstance(s, SkillSession)]
    else:
        skill_items: dict[str, list[int]] = {}
        for k, item in enumerate(ids):
            for skill in catalog.items[item].skills:
                skill_items.setdefault(skill, []).append(k)
        assert isinstance(test, Placement)
        bank = test.bank
        per_skill = {s: (bank.a[ks], bank.b[ks]) for s, ks in skill_items.items()}
        starts = [starting_mastery(*s.posterior, per_skill, level) for s in sessions
                  if isinstance(s, PlacementSession)]
    return PlacementOutcome(lengths, {skill: np.array([m[skill] for m in starts])
                                      for skill in starts[0]}, [s.answers for s in sessions])


def course_truth(population: Population, catalog: Catalog,
                 course: str | None) -> tuple[np.ndarray, list[str]]:
    """The population's true mastery of the course's skills at time 0, and their ids."""
    in_course = scope(prepare(catalog), course)[1]
    ids = [s for s, inside in zip(catalog.skills, in_course.tolist(), strict=True) if inside]
    return population.mastery(0.0)[:, in_course], ids


def classification(family: str, catalog: Catalog, course: str | None, *, n: int, seed: int,
                   length: int, known_share: float = 0.5) -> dict[str, np.ndarray]:
    """Per learner, the classification accuracy over the course's skills after ``length``
    items (no other stop) for ``n`` learners of ``family`` who know a random
    prerequisite-closed ``known_share`` of the course each: ``skills`` (the per-skill test),
    ``theta`` (the θ test, mapped to the skills at level 0.5) and ``prior`` (no test: the
    skills' priors, which the tracer starts a learner from)."""
    mask = random_known(catalog, course, known_share, n, seed)
    population = population_knowing(family, catalog, mask, n, seed)
    truth, ids = course_truth(population, catalog, course)
    prior = PlacementOutcome(np.zeros(n, dtype=np.int64), {
        s: np.full(n, catalog.skills[s].bkt.prior) for s in ids}, [[] for _ in range(n)])
    return {
        "skills": place(population, catalog, course, seed=seed, stop=SkillStop(
            min_length=length, max_length=length, confidence=None)).accuracy(truth, ids),
        "theta": place(population, catalog, course, seed=seed, method="theta",
                       stop=StopRule(length, length)).accuracy(truth, ids),
        "prior": prior.accuracy(truth, ids)}


@dataclass(frozen=True, eq=False)
class PlacementStudy:
    """The arms of the study on one family: the runs, the placements, and the exercises to
    course mastery of the placement arm with its test items counted. ``oracle``, when run:
    the tracer starts from each learner's true state (0.99 for a skill mastered at the start,
    0.01 otherwise), free of charge: the most any placement could save with this policy and
    tracer, the ceiling the placement arm is read against. ``accuracy``: per learner, the
    placement's classification accuracy over the course's skills."""

    family: str
    method: str
    budget: int  #: exercises in the schedule
    known: np.ndarray  #: bool (learners, catalog skills): what each learner knows at the start
    prior: PolicyRun
    placed: PolicyRun
    placement: PlacementOutcome
    accuracy: np.ndarray
    oracle: PolicyRun | None = None

    @property
    def placed_exercises(self) -> np.ndarray:
        """Exercises to course mastery with placement, the test's items included, at most the
        budget (module doc)."""
        result: np.ndarray = np.minimum(
            self.placed.outcomes["exercises_to_mastery"] + self.placement.length, self.budget)
        return result

    def summary(self) -> dict[str, Any]:
        """Means with 95% intervals per arm, paired differences against the prior arm, the
        cut in exercises to mastery relative to the prior arm (its interval: the paired
        difference's, over the prior arm's mean), and with the oracle arm the placement's
        share of the oracle's saving (module doc)."""
        prior = self.prior.outcomes
        arms = {"placement": (self.placed_exercises, self.placed)}
        if self.oracle is not None:
            arms["oracle"] = (self.oracle.outcomes["exercises_to_mastery"], self.oracle)
        base = float(prior["exercises_to_mastery"].mean())
        result: dict[str, Any] = {
            "family": self.family, "method": self.method,
            "known_skills": float(self.known.sum(axis=1).mean()),
            "placement_items": mean_ci(self.placement.length.astype(float)),
            "classification_accuracy": mean_ci(self.accuracy),
            "prior": {"exercises_to_mastery": mean_ci(prior["exercises_to_mastery"]),
                      "post_test": mean_ci(prior["post_test"]),
                      "mastered_share": share_ci(self.prior.mastered)}}
        for arm, (exercises, run) in arms.items():
            diff = paired_ci(exercises, prior["exercises_to_mastery"])
            result[arm] = {
                "exercises_to_mastery": mean_ci(exercises),
                "exercises_difference": diff,
                "cut": -diff["mean"] / base if base else None,
                "cut_ci95": [-diff["ci95"][1] / base, -diff["ci95"][0] / base] if base
                else [None, None],
                "post_test": mean_ci(run.outcomes["post_test"]),
                "post_test_difference": paired_ci(run.outcomes["post_test"],
                                                  prior["post_test"]),
                "mastered_share": share_ci(run.mastered)}
        if self.oracle is not None:
            result["placement"]["oracle_share"] = gain_share_ci(
                prior["exercises_to_mastery"], self.placed_exercises,
                self.oracle.outcomes["exercises_to_mastery"])
            result["placement"]["post_test_vs_oracle"] = paired_ci(
                self.placed.outcomes["post_test"], self.oracle.outcomes["post_test"])
        return result


def placement_study(family: str, catalog: Catalog, course: str | None, policy: Policy, *,
                    n: int, seed: int, schedule: Schedule,
                    tracer: Callable[[], Tracer[Any]], known_share: float = 0.5,
                    known: str = "random", method: str = "skills",
                    stop: StopRule | SkillStop | None = None, level: float = 0.5,
                    oracle: bool = False) -> PlacementStudy:
    """The arms (module doc; ``oracle``: also the :class:`PlacementStudy` ceiling) for ``n``
    learners of ``family`` who know ``known_share`` of ``course`` (``known``: a random
    prerequisite-closed set each, or the first part); ``tracer()`` gives each arm's tracer,
    which must take starting masteries (``with_mastery``: the BKT family)."""
    if known == "random":
        mask = random_known(catalog, course, known_share, n, seed)
    elif known == "first":
        mask = np.zeros((n, len(catalog.skills)), dtype=bool)
        mask[:, known_skills(catalog, course, known_share)] = True
    else:
        raise ValueError(f"unknown known-skills mode {known!r}; one of {', '.join(KNOWN)}")
    learners = learner_ids(f"sim{seed}", family, n)
    runs: dict[str, PolicyRun] = {}
    outcome: PlacementOutcome | None = None
    accuracy = np.empty(0)
    for arm in ("prior", "placement", "oracle") if oracle else ("prior", "placement"):
        population = population_knowing(family, catalog, mask, n, seed)
        tutor = EngineTutor(catalog, course, policy, tracer(), learners)
        if arm == "placement":
            outcome = place(population, catalog, course, seed=seed, method=method, stop=stop,
                            level=level)
            accuracy = outcome.accuracy(*course_truth(population, catalog, course))
            tutor.states = _started(tutor, [outcome.of(i) for i in range(n)], outcome.answers)
        elif arm == "oracle":
            tutor.states = _started(tutor, _true_start(population, catalog, course))
        runs[arm] = run_tutor(family, catalog, course, tutor, n=n, seed=seed,
                              schedule=schedule, label=f"{policy!r} ({arm})",
                              population=population)
    assert outcome is not None
    return PlacementStudy(family, method, schedule.budget, mask, runs["prior"],
                          runs["placement"], outcome, accuracy, runs.get("oracle"))


def _true_start(population: Population, catalog: Catalog,
                course: str | None) -> list[dict[str, float]]:
    """Each learner's true state at the start as starting masteries (the oracle arm)."""
    truth, ids = course_truth(population, catalog, course)
    low, high = CLIP
    return [{s: high if known else low for s, known in zip(ids, row.tolist(), strict=True)}
            for row in truth]


def _started(tutor: EngineTutor, masteries: list[dict[str, float]],
             answers: list[list[tuple[str, bool]]] | None = None) -> Any:
    """The tutor's starting states with each learner's test ``answers`` folded in (given at
    the start), then their masteries written over (module doc)."""
    items = tutor.catalog.items
    states = []
    for i, (state, mastery) in enumerate(zip(tutor.states, masteries, strict=True)):
        if answers is not None:
            state = tutor.tracer.fold([AnswerEvent(tutor.learners[i], item, items[item].skills,
                                                   correct, EPOCH)
                                       for item, correct in answers[i]], start=state)
        states.append(tutor.tracer.with_mastery(state, mastery))
    return np.stack(states)
