"""Item selection for placement: the criteria, exposure control and content balancing.

**Criteria** (a score per item, the highest wins):

* ``max-info``: Fisher information at the current estimate (Lord 1980): the textbook rule,
  optimal when θ̂ is right, greedy when it is not (early in a test);
* ``posterior-info``: Fisher information averaged over the posterior (van der Linden 1998):
  hedges over where θ may still be, and becomes ``max-info`` as the posterior narrows;
* ``kl``: Kullback-Leibler information averaged over the posterior (Chang & Ying 1996): how
  well the item tells θ̂ apart from the other abilities the posterior still allows; a global
  measure, which matters most for the first items.

The posterior-weighted criteria cost one matrix-vector product with tables computed once per
bank (:class:`Tables`), so they are as fast as ``max-info``.

**Exposure control**, so that the best items do not become known to every examinee:

* *randomesque* (Kingsbury & Zara 1989): one of the ``k`` best items at random;
* *Sympson-Hetter* (1985): the best item is administered with its probability ``k_i`` and
  otherwise set aside for this examinee, the next best tried; the ``k_i`` are set by simulation
  (:func:`engine.placement.simulate.sympson_hetter`) so that no item is administered to more
  than a target share of the population.

Both combine: the randomesque draw orders the best ``k`` items, Sympson-Hetter walks that order.

**Content balancing** (Kingsbury & Zara 1989): each content group has a target share of the
test; the next item comes from the group furthest below its target so far.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from engine.placement.estimate import Grid
from engine.placement.irt import ItemBank, information, probability

__all__ = ["CRITERIA", "Tables", "choose", "next_group", "scores"]

#: the selection criteria :func:`scores` knows
CRITERIA = ("max-info", "posterior-info", "kl")


@dataclass(frozen=True, eq=False)
class Tables:
    """What selection and estimation need of a bank on a grid, computed once per bank."""

    bank: ItemBank
    grid: Grid
    p: np.ndarray         # P(correct), (points, items)
    log_p: np.ndarray     # log P
    log_q: np.ndarray     # log (1 - P)
    info: np.ndarray      # Fisher information, (points, items)
    index: Mapping[str, int]  # each item id's column

    @classmethod
    def build(cls, bank: ItemBank, grid: Grid) -> Tables:
        p = probability(bank, grid.points)
        return cls(bank, grid, p, np.log(p), np.log1p(-p), information(bank, grid.points),
                   MappingProxyType({item: i for i, item in enumerate(bank.ids)}))

    @property
    def nbytes(self) -> int:
        """About what the tables hold in memory (the four arrays, and ~100 bytes an item for
        the bank and the index): what a cache of them counts."""
        arrays = self.p.nbytes + self.log_p.nbytes + self.log_q.nbytes + self.info.nbytes
        return arrays + 100 * len(self.bank)


def scores(tables: Tables, criterion: str, theta: float, weights: np.ndarray) -> np.ndarray:
    """Every item's score under ``criterion`` at the estimate ``theta`` with posterior
    ``weights`` on the grid."""
    if criterion == "max-info":
        return information(tables.bank, theta)[0]
    if criterion == "posterior-info":
        return weights @ tables.info
    if criterion == "kl":
        # sum_q w_q KL(P_i(θ̂) || P_i(θ_q)) = p̂ log p̂ + q̂ log q̂ - p̂ (w·log P) - q̂ (w·log Q)
        p_hat = probability(tables.bank, theta)[0]
        q_hat = 1.0 - p_hat
        return (p_hat * np.log(p_hat) + q_hat * np.log(q_hat)
                - p_hat * (weights @ tables.log_p) - q_hat * (weights @ tables.log_q))
    raise ValueError(f"unknown selection criterion {criterion!r}; one of {', '.join(CRITERIA)}")


def next_group(targets: Mapping[str, float], counts: Mapping[str, int],
               open_groups: set[str]) -> str | None:
    """The group of ``open_groups`` (those with items left) furthest below its target share,
    given the items of each group given so far; ties go to the larger target, then the first
    named. None when no targeted group is open."""
    given = sum(counts.values())
    best: tuple[float, float] | None = None
    chosen = None
    for group, target in targets.items():
        if group not in open_groups:
            continue
        key = (target - counts.get(group, 0) / (given + 1), target)
        if best is None or key > best:
            best, chosen = key, group
    return chosen


def choose(score: np.ndarray, candidates: np.ndarray, rng: np.random.Generator,
           randomesque: int, control: np.ndarray | None) -> tuple[int, list[int]]:
    """The item to give among ``candidates`` (indexes, all available) by ``score``, and the
    items Sympson-Hetter set aside on the way (to be excluded for the rest of the test).

    ``randomesque``: the draw is among that many best; ``control``: Sympson-Hetter's
    probability of administering each item of the bank once it is selected (None: always).
    """
    order = candidates[np.argsort(-score[candidates], kind="stable")]
    if randomesque > 1:
        top = min(randomesque, len(order))
        order = np.concatenate([rng.permutation(order[:top]), order[top:]])
    if control is None:
        return int(order[0]), []
    rejected: list[int] = []
    draws = rng.random(len(order))
    for item, u in zip(order, draws, strict=True):
        if u < control[item]:
            return int(item), rejected
        rejected.append(int(item))
    return int(order[-1]), rejected[:-1]  # every item refused: the last one is still given
