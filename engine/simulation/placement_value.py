"""What a placement test is worth: exercises to course mastery with and without one.

Placement only pays for learners who already know part of the course, and logs cannot say what
such a learner would have done without it; simulated learners with a known ground truth can.
The study (:func:`placement_study`) takes learners who know the **first part of the course in
prerequisite order** (``known_share`` of its skills, half by default) and runs each of them
in every arm with the same seed, so the arms meet the same learners with the same luck:

* **prior**: the tracer starts every learner from the skills' priors (what the engine does for a
  learner who skips placement);
* **placement**: first a CAT over the course's items with their IRT parameters
  (:class:`~engine.placement.session.Placement`, at most :data:`MAX_LENGTH` items, standard-error
  stop :data:`STOP_SE`); the learner answers each with its true P(correct) at time 0 and learns
  nothing from the test; the θ posterior becomes each skill's starting P(mastered)
  (:func:`~engine.placement.mastery.starting_mastery`), written into the tracer's state with
  ``with_mastery``;
* **oracle** (optional): the tracer starts from each learner's true state, at no cost: the
  ceiling of what any placement could save with this policy, tracer and schedule.

Then the same policy teaches for the same schedule. Exercises to course mastery count the
placement's items as exercises too (a test item costs the learner as much time as a practice
item). Paired differences (placement - prior) with 95% intervals come from
:mod:`engine.simulation.metrics`.

"The first part in prerequisite order" (:func:`known_skills`): skills ordered by depth in the
prerequisite graph, then by their items' mean difficulty, so what is known is closed under
prerequisites and, as far as the course allows, is its easier part (what one θ can place).

**Prior knowledge per family** (:data:`PRIOR_KNOWLEDGE`), on top of what the family draws itself:

* ``prereq-forget``: the known skills are known at the start, as prior knowledge (the family's
  prior-knowledge stability, 60 days x the learner's memory, with a forgetting time drawn from
  it);
* ``irt-memory``: the known skills' base ability is raised to at least the skill's mastery
  threshold plus a half-normal margin (SD :data:`KNOWN_MARGIN_SD` logits), so they are mastered
  at the start and stay so (base ability does not fade).

``fitted-bkt`` has no item parameters (its answers ignore difficulty), so an IRT placement has
nothing to measure there and the study refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.catalog import Catalog
from engine.placement.irt import ItemBank
from engine.placement.mastery import CLIP, starting_mastery
from engine.placement.session import Placement, StopRule
from engine.selection.batch import scope
from engine.selection.policy import Policy
from engine.selection.prepared import prepare
from engine.simulation.base import DAY, NO_ITEM, Population, make_population
from engine.simulation.irt_memory import ABILITY_SD_SKILL, IRTMemoryPopulation
from engine.simulation.metrics import mean_ci, paired_ci, share_ci
from engine.simulation.prereq_forget import PRIOR_STABILITY_DAYS, PrereqForget
from engine.simulation.run import EngineTutor, PolicyRun, Schedule, learner_ids, run_tutor
from engine.tracing.base import Tracer

__all__ = ["KNOWN_MARGIN_SD", "MAX_LENGTH", "PRIOR_KNOWLEDGE", "STOP_SE", "PlacementOutcome",
           "PlacementStudy", "course_bank", "known_skills", "place", "placement_study",
           "population_knowing"]

MAX_LENGTH = 12  #: most items of the placement test
STOP_SE = 0.3  #: the test stops once θ's standard error is at most this
KNOWN_MARGIN_SD = ABILITY_SD_SKILL  #: irt-memory: SD of the half-normal margin above mastery


def _prereq_forget_knows(population: Population, skills: np.ndarray,
                         rng: np.random.Generator) -> None:
    assert isinstance(population, PrereqForget)
    population.known[:, skills] = True
    stability = PRIOR_STABILITY_DAYS * population.memory[:, None] * DAY
    population.stability[:, skills] = stability
    population.forget_at[:, skills] = rng.exponential(np.broadcast_to(
        stability, (population.n, len(skills))))


def _irt_memory_knows(population: Population, skills: np.ndarray,
                      rng: np.random.Generator) -> None:
    assert isinstance(population, IRTMemoryPopulation)
    floor = population.threshold[skills] + np.abs(
        rng.normal(0.0, KNOWN_MARGIN_SD, (population.n, len(skills))))
    population.base[:, skills] = np.maximum(population.base[:, skills], floor)


#: family -> how its learners are made to know given skills (indices in catalog skill order)
#: before the course (module doc)
PRIOR_KNOWLEDGE: dict[str, Callable[[Population, np.ndarray, np.random.Generator], None]] = {
    PrereqForget.family: _prereq_forget_knows,
    IRTMemoryPopulation.family: _irt_memory_knows,
}


def known_skills(catalog: Catalog, course: str | None, share: float) -> np.ndarray:
    """The first ``share`` of the course's skills in prerequisite order (catalog skill
    indices): ordered by depth in the prerequisite graph (a skill comes after all of its
    prerequisites), then by the mean difficulty of its items, so a learner who knows them knows
    every prerequisite of what they know, and the easier of two skills at the same depth."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the known share of the course must be in [0, 1], got {share}")
    in_course = scope(prepare(catalog), course)[1]
    position = {s: k for k, s in enumerate(catalog.skills)}
    depth: dict[str, int] = {}
    for sid in catalog.order:  # prerequisites first
        depth[sid] = 1 + max((depth[r] for r in catalog.skills[sid].requires), default=-1)
    difficulty: dict[str, list[float]] = {}
    for item in catalog.items.values():
        for sid in item.skills:
            difficulty.setdefault(sid, []).append(item.difficulty or 0.0)
    ordered = sorted((s for s in catalog.order if in_course[position[s]]),
                     key=lambda s: (depth[s], float(np.mean(difficulty.get(s, [0.0])))))
    return np.array([position[s] for s in ordered[:round(share * len(ordered))]],
                    dtype=np.int64)


def population_knowing(family: str, catalog: Catalog, skills: np.ndarray, n: int,
                       seed: int) -> Population:
    """``n`` learners of ``family`` (seed ``seed``) who know ``skills`` at the start."""
    try:
        knows = PRIOR_KNOWLEDGE[family]
    except KeyError:
        raise ValueError(f"the placement study supports the learner models "
                         f"{', '.join(sorted(PRIOR_KNOWLEDGE))}, not {family!r}") from None
    population = make_population(family, catalog, n, seed)
    knows(population, skills, np.random.default_rng([seed, 0xC0FFEE]))
    return population


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


@dataclass(frozen=True, eq=False)
class PlacementOutcome:
    """Each learner's placement: items used, and starting P(mastered) of every skill the
    course's items practise (skill id -> array over learners)."""

    length: np.ndarray
    mastery: dict[str, np.ndarray]

    def of(self, i: int) -> dict[str, float]:
        """Learner ``i``'s starting masteries."""
        return {s: float(m[i]) for s, m in self.mastery.items()}


def place(population: Population, catalog: Catalog, course: str | None, *, seed: int,
          stop: StopRule | None = None, level: float = 0.5) -> PlacementOutcome:
    """Every learner of ``population`` takes the placement test at time 0, answering with its
    true P(correct) and learning nothing (the population is only read); the θ posterior is
    mapped to starting masteries of the course's skills (``level``: the latent P(correct)
    that counts as mastery, :func:`~engine.placement.mastery.starting_mastery`)."""
    bank, items = course_bank(catalog, course)
    placement = Placement(bank, stop=stop or StopRule(max_length=MAX_LENGTH, se=STOP_SE))
    n = population.n
    sessions = [placement.start(seed * 1_000_003 + i) for i in range(n)]
    position = {item: j for item, j in zip(bank.ids, items.tolist(), strict=True)}
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
    skill_items: dict[str, list[int]] = {}
    for k, item in enumerate(bank.ids):
        for skill in catalog.items[item].skills:
            skill_items.setdefault(skill, []).append(k)
    per_skill = {s: (bank.a[ks], bank.b[ks]) for s, ks in skill_items.items()}
    starts = [starting_mastery(*s.posterior, per_skill, level) for s in sessions]
    return PlacementOutcome(np.array([s.length for s in sessions], dtype=np.int64),
                            {skill: np.array([m[skill] for m in starts]) for skill in per_skill})


@dataclass(frozen=True, eq=False)
class PlacementStudy:
    """The arms of the study on one family: the runs, the placements, and the exercises to
    course mastery of the placement arm with its test items counted. ``oracle``, when run:
    the tracer starts from each learner's true state (0.99 for a skill mastered at the start,
    0.01 otherwise), free of charge: the most any placement could save with this policy and
    tracer, the ceiling the placement arm is read against."""

    family: str
    known: tuple[str, ...]  #: the skills the learners know at the start
    prior: PolicyRun
    placed: PolicyRun
    placement: PlacementOutcome
    oracle: PolicyRun | None = None

    @property
    def placed_exercises(self) -> np.ndarray:
        """Exercises to course mastery with placement, the test's items included."""
        result: np.ndarray = self.placed.outcomes["exercises_to_mastery"] + self.placement.length
        return result

    def summary(self) -> dict[str, Any]:
        """Means with 95% intervals per arm, paired differences against the prior arm, and
        the cut in exercises to mastery relative to the prior arm (its interval: the paired
        difference's, over the prior arm's mean)."""
        prior = self.prior.outcomes
        arms = {"placement": (self.placed_exercises, self.placed)}
        if self.oracle is not None:
            arms["oracle"] = (self.oracle.outcomes["exercises_to_mastery"], self.oracle)
        base = float(prior["exercises_to_mastery"].mean())
        result: dict[str, Any] = {
            "family": self.family, "known_skills": len(self.known),
            "placement_items": mean_ci(self.placement.length.astype(float)),
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
        return result


def placement_study(family: str, catalog: Catalog, course: str | None, policy: Policy, *,
                    n: int, seed: int, schedule: Schedule,
                    tracer: Callable[[], Tracer[Any]], known_share: float = 0.5,
                    stop: StopRule | None = None, level: float = 0.5,
                    oracle: bool = False) -> PlacementStudy:
    """The arms (module doc; ``oracle``: also the :class:`PlacementStudy` ceiling) for ``n``
    learners of ``family`` who know the first ``known_share`` of ``course``; ``tracer()``
    gives each arm's tracer, which must take starting masteries (``with_mastery``: the BKT
    family)."""
    known = known_skills(catalog, course, known_share)
    learners = learner_ids(f"sim{seed}", family, n)
    runs: dict[str, PolicyRun] = {}
    outcome: PlacementOutcome | None = None
    for arm in ("prior", "placement", "oracle") if oracle else ("prior", "placement"):
        population = population_knowing(family, catalog, known, n, seed)
        tutor = EngineTutor(catalog, course, policy, tracer(), learners)
        if arm == "placement":
            outcome = place(population, catalog, course, seed=seed, stop=stop, level=level)
            tutor.states = _started(tutor, [outcome.of(i) for i in range(n)])
        elif arm == "oracle":
            tutor.states = _started(tutor, _true_start(population, catalog, course))
        runs[arm] = run_tutor(family, catalog, course, tutor, n=n, seed=seed,
                              schedule=schedule, label=f"{policy!r} ({arm})",
                              population=population)
    assert outcome is not None
    skill_ids = list(catalog.skills)
    return PlacementStudy(family, tuple(skill_ids[k] for k in known.tolist()), runs["prior"],
                          runs["placement"], outcome, runs.get("oracle"))


def _true_start(population: Population, catalog: Catalog,
                course: str | None) -> list[dict[str, float]]:
    """Each learner's true state at the start as starting masteries (the oracle arm)."""
    in_course = np.flatnonzero(scope(prepare(catalog), course)[1]).tolist()
    truth = population.mastery(0.0)
    ids = list(catalog.skills)
    low, high = CLIP
    return [{ids[k]: high if truth[i, k] else low for k in in_course}
            for i in range(population.n)]


def _started(tutor: EngineTutor, masteries: list[dict[str, float]]) -> Any:
    """The tutor's starting states with each learner's masteries written in."""
    return np.stack([tutor.tracer.with_mastery(state, m)
                     for state, m in zip(tutor.states, masteries, strict=True)])
