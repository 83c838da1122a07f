"""How far could any policy go? A tutor that reads the simulated learners' true state.

Every real policy sees a learner only through a tracer. The oracle tutor sees the ground truth
instead (:meth:`Population.mastery` and :meth:`Population.p_correct`, at the moment of each
choice), and runs through the same loop on the same learners (same seed, same answer draws):

* the first course skill in prerequisite order that the learner has not truly mastered (so a
  skill forgotten is taken up again at once, a skill mastered is never practised again);
* among that skill's items, the one whose true P(correct) is closest to :data:`TARGET` (as the
  target-success policy would with a perfect tracer);
* nothing (``NO_ITEM``) once every course skill is mastered: the course is complete.

It is greedy, not optimal, but it wastes nothing a tracer could save: no exercise on a skill
already mastered, none missing on one forgotten. Its exercises to course mastery, next to the
real policies', say how much room a better policy has on each learner model; each policy's
share of the oracle's gain over the fixed curriculum is the measure issue 21 sets targets on.
It is a :data:`~engine.simulation.run.TutorFactory`: ``compare(..., tutors={"oracle":
OracleTutor})`` builds one on each family's population, whatever the learner model.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from engine.catalog import Catalog
from engine.selection.batch import scope
from engine.selection.prepared import prepare
from engine.simulation.base import NO_ITEM, Population
from engine.simulation.run import EPOCH

__all__ = ["TARGET", "OracleTutor"]

#: the true P(correct) the oracle's item is chosen closest to
TARGET = 0.75


class OracleTutor:
    """Chooses from ``population``'s true state (module docstring); learns nothing. Its
    ``mastery`` is the truth (1 or 0), and it serves nothing exactly while the course is
    mastered: its course is complete then. ``epoch``: the moment simulated time 0 stands for
    (the run's)."""

    def __init__(self, population: Population, catalog: Catalog, course: str | None,
                 epoch: datetime = EPOCH) -> None:
        self.population = population
        self.epoch = epoch
        # the items by the skills they truly practise: the population's catalog (a family may
        # tag the content the tutors see otherwise; the same items and skills, in one order)
        prepared = prepare(population.catalog)
        items, skills, _ = scope(prepared, course)
        position = {s: p for p, s in enumerate(catalog.order)}
        self.order = np.array(sorted(np.flatnonzero(skills),
                                     key=lambda k: position[prepared.skill_ids[k]]))
        # an item belongs to the one of its skills that comes last in the order
        rank = np.full(len(prepared.skill_ids), -1)
        rank[self.order] = np.arange(len(self.order))
        owner = [max(prepared.pair_skill[prepared.pair_ptr[j]:prepared.pair_ptr[j + 1]],
                     key=lambda k: rank[k]) for j in range(len(prepared.item_ids))]
        by_skill: dict[int, list[int]] = {int(k): [] for k in self.order}
        for j in np.flatnonzero(items):
            by_skill[int(owner[j])].append(int(j))
        bare = [prepared.skill_ids[k] for k, js in by_skill.items() if not js]
        if bare:  # the oracle would stall on it, and call the course complete
            raise ValueError(f"the oracle needs an item of its own for every course skill (an "
                             f"item belongs to its last skill in prerequisite order); "
                             f"{', '.join(bare)} has none")
        width = max(len(v) for v in by_skill.values())
        self.items = np.full((len(prepared.skill_ids), width), NO_ITEM, dtype=np.int64)
        for k, js in by_skill.items():
            self.items[k, :len(js)] = js
        self.course_skills = skills

    def choose(self, at: datetime) -> np.ndarray:
        t = (at - self.epoch).total_seconds()
        pending = ~self.population.mastery(t)[:, self.order]
        skill = self.order[np.argmax(pending, axis=1)]
        best = np.full(len(skill), NO_ITEM, dtype=np.int64)
        gap = np.full(len(skill), np.inf)
        for r in range(self.items.shape[1]):
            candidate = self.items[skill, r]
            p = self.population.p_correct(np.where(candidate == NO_ITEM, 0, candidate), t)
            closer = (candidate != NO_ITEM) & (np.abs(p - TARGET) < gap)
            best = np.where(closer, candidate, best)
            gap = np.where(closer, np.abs(p - TARGET), gap)
        return np.where(pending.any(axis=1), best, NO_ITEM)

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        """Nothing to trace: the truth is read at every choice."""

    def mastery(self, at: datetime) -> np.ndarray:
        t = (at - self.epoch).total_seconds()
        return self.population.mastery(t)[:, self.course_skills].astype(float)
