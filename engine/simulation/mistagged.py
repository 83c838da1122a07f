"""``mistagged``: prerequisite-and-forgetting learners on content whose tags are partly wrong.

Real content is tagged by people, and a share of its items practise another skill than their
tags say (Doroudi, Aleven & Brunskill 2019 count mis-specified skill models among the reasons
policies that look good in one simulation fail in another). Here 30% of the items
(:data:`SHARE`) practise one other skill of the catalog than their tags: the learners are
``prereq-forget`` learners (:mod:`engine.simulation.prereq_forget`), whose answers and learning
follow the items' *true* skills, while every tutor sees the tags. Which items, and their true
skills, are drawn by a generator seeded from the catalog's item ids: the same catalog is always
mistagged the same way, whatever the learners' seed.

True mastery is the latent bit of each skill, as in ``prereq-forget``: a course is mastered when
its skills are, whichever items taught them.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import replace

import numpy as np

from engine.catalog import Catalog
from engine.simulation.base import FAMILIES
from engine.simulation.prereq_forget import PrereqForget

__all__ = ["SHARE", "Mistagged", "true_catalog"]

#: the share of items whose true skill is not their tags
SHARE = 0.3


def true_catalog(catalog: Catalog, share: float = SHARE) -> Catalog:
    """``catalog`` with ``share`` of its items practising one other skill, drawn uniformly,
    instead of their tags; the same items and order. An item is left as tagged where moving
    it would leave one of its skills without any item (every skill stays learnable)."""
    items = list(catalog.items.values())
    skills = list(catalog.skills)
    if len(skills) < 2 or not items:
        return catalog
    rng = np.random.default_rng(zlib.crc32("\n".join(catalog.items).encode()))
    count = Counter(s for item in items for s in item.skills)
    for j in sorted(rng.permutation(len(items))[:round(share * len(items))].tolist()):
        if any(count[s] == 1 for s in items[j].skills):
            continue
        others = [s for s in skills if s not in items[j].skills]
        moved = replace(items[j], skills=(others[int(rng.integers(len(others)))],))
        count.subtract(items[j].skills)
        count.update(moved.skills)
        items[j] = moved
    return Catalog.build(catalog.skills.values(), items, catalog.courses.values())


class Mistagged(PrereqForget):
    """``prereq-forget`` learners answering and learning by the items' true skills (module
    docstring); :attr:`catalog` is the truth (the oracle tutor reads it), the tutors see the
    catalog they were given."""

    family = "mistagged"

    def __init__(self, catalog: Catalog, n: int, seed: int) -> None:
        super().__init__(true_catalog(catalog), n, seed)


FAMILIES[Mistagged.family] = Mistagged
