"""A catalog's item -> skills and skill -> prerequisites maps as padded index arrays.

Families advance a whole population per call, so every lookup "which skills does learner ``i``'s
item practise" or "are the prerequisites of those skills known" has to be one fancy-indexing
operation over all learners, not a Python loop: the ragged lists of the catalog become
rectangular arrays padded to the longest list, with a mask of the real entries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.catalog import Catalog
from engine.simulation.base import NO_ITEM


def _padded(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged integer lists as ``(index, mask)`` of shape ``(len(lists), longest)``; padding
    entries hold index 0 and mask False (a valid index, so gathering never needs a check)."""
    width = max((len(x) for x in lists), default=0)
    index = np.zeros((len(lists), max(width, 1)), dtype=np.intp)
    mask = np.zeros(index.shape, dtype=bool)
    for row, values in enumerate(lists):
        index[row, :len(values)] = values
        mask[row, :len(values)] = True
    return index, mask


@dataclass(frozen=True, eq=False)
class CatalogArrays:
    """Items' skills and skills' direct prerequisites, in the catalog's item and skill order
    (the numbering :class:`~engine.simulation.base.Population` uses)."""

    item_skill: np.ndarray  #: (n_items, width): skill indices of each item, padded with 0
    item_mask: np.ndarray  #: (n_items, width): which entries of ``item_skill`` are real
    prereq: np.ndarray  #: (n_skills, width): direct prerequisites of each skill, padded
    prereq_mask: np.ndarray  #: (n_skills, width): which entries of ``prereq`` are real

    @classmethod
    def of(cls, catalog: Catalog) -> CatalogArrays:
        skill_index = {s: k for k, s in enumerate(catalog.skills)}
        item_skill, item_mask = _padded(
            [[skill_index[s] for s in item.skills] for item in catalog.items.values()])
        prereq, prereq_mask = _padded(
            [[skill_index[r] for r in skill.requires] for skill in catalog.skills.values()])
        return cls(item_skill, item_mask, prereq, prereq_mask)

    def pairs(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The (learner, skill) pairs that practising ``items`` (one per learner, ``NO_ITEM``
        for none) touches: two flat index arrays, a learner once per skill of its item."""
        items = np.asarray(items, dtype=np.intp)
        learners = np.flatnonzero(items != NO_ITEM)
        rows = items[learners]
        mask = self.item_mask[rows]
        return (np.broadcast_to(learners[:, None], mask.shape)[mask],
                self.item_skill[rows][mask])

    def prerequisites_known(self, known: Callable[[np.ndarray, np.ndarray], np.ndarray],
                            learners: np.ndarray, skills: np.ndarray) -> np.ndarray:
        """Whether learner ``learners[p]`` knows every direct prerequisite of ``skills[p]``;
        True for a skill without prerequisites. ``known(rows, cols)`` says whether learner
        ``rows[...]`` knows skill ``cols[...]`` (broadcast index arrays): a family computes
        only the entries asked for."""
        pre = self.prereq[skills]
        ok = known(learners[:, None], pre) | ~self.prereq_mask[skills]
        result: np.ndarray = ok.all(axis=1)
        return result

    def safe_items(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The padded skill indices and mask of each learner's item, shapes ``(n, width)``
        (a ``NO_ITEM`` learner gets item 0's, which callers ignore)."""
        rows = np.where(np.asarray(items) == NO_ITEM, 0, items)
        return self.item_skill[rows], self.item_mask[rows]
