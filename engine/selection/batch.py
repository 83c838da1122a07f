"""Choices for many learners at once: the batch of contexts, and the array helpers the batched
policies share (scope, locked skills, per-item reductions, seeded tie-break keys).

The simulator advances a thousand learners in lockstep for hundreds of exercises under several
policies: millions of choices, and one Python ``choose`` call per learner and exercise (tens of
microseconds each) would cost more than everything else together. A policy's ``choose_many``
(see :mod:`engine.selection.lockstep`) returns, for every learner of a :class:`SelectionBatch`,
the item its ``choose`` ranks first for that learner, computed with a few array operations over
all learners.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from engine.selection.prepared import PreparedCatalog, _hash64, _splitmix64

__all__ = ["NO_CHOICE", "SelectionBatch", "all_per_item_many", "blocked_many",
           "first_by_tie_key", "recent_mask", "scope"]

#: in a batch's choices: nothing can be recommended to this learner
NO_CHOICE = -1


@dataclass(frozen=True, eq=False)
class SelectionBatch:
    """What :class:`~engine.selection.policy.SelectionContext` carries, for ``n`` learners
    (one choice each; :func:`engine.selection.lockstep.context_of` gives learner ``i``'s).

    ``recent_items`` (n, R) holds item indices in the catalog's order, most recent last, padded
    on the left with -1 where a learner has answered fewer than R; ``recent_correct`` (n, R)
    whether each was answered right; ``seeds`` (n,) the tie-break seed of each learner (the API
    passes the learner's answer count, so ties move on as the learner answers); ``learners`` the
    ids that make tie-breaks differ between learners.
    """

    learners: tuple[str, ...]
    recent_items: np.ndarray
    recent_correct: np.ndarray
    seeds: np.ndarray
    course: str | None = None
    at: datetime | None = None
    target_success: float | None = None
    retention: float | None = None

    def __post_init__(self) -> None:
        n = len(self.learners)
        if self.recent_items.ndim != 2 or len(self.recent_items) != n:
            raise ValueError(f"recent_items must have shape ({n}, R), got "
                             f"{self.recent_items.shape}")
        if self.recent_correct.shape != self.recent_items.shape:
            raise ValueError("recent_correct must have the shape of recent_items")
        if self.seeds.shape != (n,):
            raise ValueError(f"seeds must have shape ({n},), got {self.seeds.shape}")

    def __len__(self) -> int:
        return len(self.learners)


# ====================================================================== shared array helpers
def scope(prepared: PreparedCatalog, course: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(items in scope, skills in scope, the scope in words) of ``course`` (None: the whole
    catalog); ValueError listing the courses for an unknown one."""
    if course is None:
        return prepared.every_item, prepared.every_skill, "the catalog"
    if course not in prepared.course_items:
        known = ", ".join(repr(c) for c in prepared.course_items) or "none"
        raise ValueError(f"unknown course {course!r} (courses: {known})")
    return prepared.course_items[course], prepared.course_skills[course], f"course {course!r}"


def blocked_many(prepared: PreparedCatalog, mastered: np.ndarray) -> np.ndarray:
    """(n, skills): True where a skill has a prerequisite the learner has not mastered."""
    missing = ~mastered[:, prepared.edge_req]  # (n, edges)
    blocked = np.zeros(mastered.shape, dtype=bool)
    rows, edges = np.nonzero(missing)
    blocked[rows, prepared.edge_skill[edges]] = True
    return blocked


def all_per_item_many(prepared: PreparedCatalog, pair_flags: np.ndarray) -> np.ndarray:
    """(n, items): True where every (item, skill) pair flag of the item is set."""
    return prepared.index.all_per_item(pair_flags)


def recent_mask(prepared: PreparedCatalog, batch: SelectionBatch, last: int) -> np.ndarray:
    """(n, items): True for each learner's ``last`` most recent items."""
    mask = np.zeros((len(batch), len(prepared.item_ids)), dtype=bool)
    if last:
        recent = batch.recent_items[:, -last:]
        rows, cols = np.nonzero(recent >= 0)
        mask[rows, recent[rows, cols]] = True
    return mask


def first_by_tie_key(prepared: PreparedCatalog, allowed: np.ndarray,
                     batch: SelectionBatch) -> np.ndarray:
    """Per learner, the allowed item with the smallest tie-break key
    (:meth:`PreparedCatalog.tie_keys` with the learner's seed and id), or :data:`NO_CHOICE`.

    The keys are a dense (learners, items) matrix, disallowed items at the largest key, and one
    ``argmin`` per row (the first smallest, as the one-learner path takes it). A learner with a
    single allowed item needs no key, which saves the per-learner hash in most steps of the
    target-success policy.
    """
    count = allowed.sum(axis=1)
    chosen = np.where(count > 0, allowed.argmax(axis=1), NO_CHOICE).astype(np.int64)
    tied = np.flatnonzero(count > 1)
    if not len(tied):
        return chosen
    mix = np.array([_hash64(f"{int(batch.seeds[i])}\x1f{batch.learners[i]}")
                    for i in tied.tolist()], dtype=np.uint64)
    keys = _splitmix64(prepared.item_hash[None, :] ^ mix[:, None])
    keys[~allowed[tied]] = np.iinfo(np.uint64).max
    chosen[tied] = keys.argmin(axis=1)
    return chosen
