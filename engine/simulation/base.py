"""The contract every family of simulated learners implements.

A policy is only as good as the learning it produces, and logs cannot say what would have happened
under another choice; simulated learners with a known ground truth can. To keep conclusions from
hinging on one learner model, several families implement this one contract, and the runner, the
metrics and the HTTP driver only ever call it.

A :class:`Population` is ``n`` learners over one :class:`~engine.catalog.Catalog`, advanced in
lockstep so that a whole population costs a few numpy operations per exercise. Items and skills
are numbered in the catalog's order (``list(catalog.items)``, ``list(catalog.skills)``), the order
of :class:`~engine.tracing.items.ItemIndex`. Time is seconds since the population's start (a
float); it only moves forward.

Invariants every family keeps (tested for all in ``tests/simulation``):

* Ground truth is a pure function of the population's history: :meth:`Population.p_correct`,
  :meth:`Population.mastery` and :meth:`Population.test_score` never change the state, so reading
  it twice gives the same answer.
* Only :meth:`Population.practise` changes a learner, and only learners with an item (``>= 0``).
* Everything random comes from the ``seed`` given at construction: the same seed and the same
  calls give the same numbers (paired comparisons run every policy on the same learners).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np

from engine.catalog import Catalog
from engine.selection.batch import NO_CHOICE

__all__ = ["DAY", "FAMILIES", "NO_ITEM", "Population", "make_population"]

DAY = 86_400.0  #: seconds in a day, the unit sessions are scheduled in
#: in an ``items`` array: this learner does not practise now (what a policy's batched choice
#: holds where it has nothing to recommend, so choices go to :meth:`Population.practise` as is)
NO_ITEM = NO_CHOICE


class Population(ABC):
    """``n`` simulated learners over ``catalog``, with a known true state.

    Subclasses implement the four abstract methods; :meth:`test_score` has a generic
    implementation over :meth:`p_correct` that a family may override when it has a faster one.
    """

    #: the registry name of the family (``tutor simulate --learner-model NAME``)
    family: str = ""

    def __init__(self, catalog: Catalog, n: int, seed: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"a population needs n >= 1 learners, got {n!r}")
        self.catalog = catalog
        self.n = n
        self.seed = seed
        self.item_ids: tuple[str, ...] = tuple(catalog.items)
        self.skill_ids: tuple[str, ...] = tuple(catalog.skills)

    @abstractmethod
    def p_correct(self, items: np.ndarray, at: float) -> np.ndarray:
        """True P(correct) of learner ``i`` on item ``items[i]`` at time ``at``; shape ``(n,)``.

        Entries where ``items[i] == NO_ITEM`` are unspecified (callers ignore them)."""

    @abstractmethod
    def practise(self, items: np.ndarray, correct: np.ndarray, at: float) -> None:
        """Learner ``i`` answered ``items[i]`` at time ``at``, ``correct[i]``: learning (and the
        memory of that practice) happens here. Learners with ``NO_ITEM`` are untouched."""

    @abstractmethod
    def mastery(self, at: float) -> np.ndarray:
        """True mastery at time ``at``: bool, shape ``(n, n_skills)``.

        What "mastered" means is the family's (known, latent, or ability above its threshold),
        stated in its docstring; it is the ground truth the tracers' P(mastered) is scored
        against and that "exercises to course mastery" counts to."""

    def test_score(self, items: np.ndarray, at: float) -> np.ndarray:
        """Expected score (share correct) of each learner on a test of ``items`` (item indices,
        shape ``(m,)``) taken at ``at``, with no learning during the test; shape ``(n,)``.

        Post-test and retention tests are this at the end of the course and 7 and 30 days
        later. Expected scores (not sampled answers) keep the measuring noise out of the
        comparison of policies."""
        total = np.zeros(self.n)
        for j in np.asarray(items, dtype=np.int64).tolist():
            total += self.p_correct(np.full(self.n, j, dtype=np.int64), at)
        return total / max(len(items), 1)


#: family name -> constructor ``(catalog, n, seed) -> Population``; each family's module adds
#: itself here when :mod:`engine.simulation` is imported
FAMILIES: dict[str, Callable[[Catalog, int, int], Population]] = {}


def make_population(family: str, catalog: Catalog, n: int, seed: int) -> Population:
    """A population of the named family; the error lists the families there are."""
    try:
        make = FAMILIES[family]
    except KeyError:
        known = ", ".join(sorted(FAMILIES)) or "none"
        raise ValueError(f"unknown learner model {family!r} (learner models: {known})") from None
    return make(catalog, n, seed)
