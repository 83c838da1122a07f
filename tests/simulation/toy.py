"""A hand-made course and learners whose every answer and outcome can be worked out by hand, for
the oracle and the measures of :mod:`engine.simulation.run`.

Course ``toy``: skills a, b (requires a), c (requires b); items a1, a2 (a), b1, b2 (b), c1 (c)
and bc (b and c). :class:`ToyLearners` master a skill on their second practice of it (right or
wrong, never forgotten); an item whose skills are all mastered is answered right with P 0.95,
another with its own P in :data:`P_UNMASTERED`.
"""

from __future__ import annotations

import numpy as np

from engine.catalog import Catalog, Course, Item, Skill
from engine.selection.prepared import prepare
from engine.simulation.base import NO_ITEM, Population

COURSE = "toy"
CATALOG = Catalog.build(
    [Skill("a", "A"), Skill("b", "B", requires=("a",)), Skill("c", "C", requires=("b",))],
    [Item("a1", ("a",)), Item("a2", ("a",)), Item("b1", ("b",)), Item("b2", ("b",)),
     Item("c1", ("c",)), Item("bc", ("b", "c"))],
    [Course(COURSE, "Toy course", ("a", "b", "c"))])
ITEMS = list(CATALOG.items)  # item indices, as a population numbers them
#: P(correct) of an item while one of its skills is not mastered (closest to 0.75: a2, b1, bc)
P_UNMASTERED = {"a1": 0.5, "a2": 0.7, "b1": 0.8, "b2": 0.3, "c1": 0.6, "bc": 0.74}
P_MASTERED = 0.95


class ToyLearners(Population):
    """``known``: (n, 3) bool, what each learner has mastered at the start (module doc)."""

    family = "toy"

    def __init__(self, known: np.ndarray, seed: int = 0) -> None:
        known = np.asarray(known, dtype=bool)
        super().__init__(CATALOG, len(known), seed)
        self.practised = np.where(known, 2, 0)
        prepared = prepare(CATALOG)
        self.item_skills = [prepared.pair_skill[prepared.pair_ptr[j]:prepared.pair_ptr[j + 1]]
                            for j in range(len(ITEMS))]
        self.p_unmastered = np.array([P_UNMASTERED[i] for i in ITEMS])

    def p_correct(self, items: np.ndarray, at: float) -> np.ndarray:
        mastered = self.mastery(at)
        ready = np.array([mastered[i, self.item_skills[j]].all() if j != NO_ITEM else False
                          for i, j in enumerate(items.tolist())])
        return np.where(ready, P_MASTERED, self.p_unmastered[np.maximum(items, 0)])

    def practise(self, items: np.ndarray, correct: np.ndarray, at: float) -> None:
        for i, j in enumerate(items.tolist()):
            if j != NO_ITEM:
                self.practised[i, self.item_skills[j]] += 1

    def mastery(self, at: float) -> np.ndarray:
        result: np.ndarray = self.practised >= 2
        return result
