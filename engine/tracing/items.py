"""A fixed set of items and the skills they practise, as index arrays.

Selection asks a tracer for P(correct) of every candidate item after every answer. Mapping ids to
a model's parameters item by item would cost microseconds per item (200 items: over a
millisecond), so the mapping is done once per :class:`ItemIndex` and per fitted model (each
tracer caches what it derives, see :meth:`engine.tracing.base.Tracer.predict_items`), and a call
costs a few vectorized operations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numba
import numpy as np


class ItemIndex:
    """Items ``item_ids`` practising skills ``skill_ids`` (every skill of every item, and
    possibly more); immutable.

    The (item, skill) pairs are stored CSR: the skills of item ``i`` are
    ``skill_ids[pair_skill[pair_ptr[i]:pair_ptr[i + 1]]]``.
    """

    __slots__ = ("item_ids", "item_skills", "pair_count", "pair_ptr", "pair_skill", "skill_ids")

    def __init__(self, items: Iterable[tuple[str, Sequence[str]]],
                 skills: Sequence[str] | None = None) -> None:
        pairs = [(item, tuple(item_skills)) for item, item_skills in items]
        self.item_ids: tuple[str, ...] = tuple(item for item, _ in pairs)
        self.item_skills: tuple[tuple[str, ...], ...] = tuple(s for _, s in pairs)
        if skills is None:
            skills = tuple(dict.fromkeys(s for _, item_skills in pairs for s in item_skills))
        self.skill_ids: tuple[str, ...] = tuple(skills)
        index = {s: k for k, s in enumerate(self.skill_ids)}
        for item, item_skills in pairs:
            if not item_skills:
                raise ValueError(f"item {item!r} needs at least one skill")
            missing = [s for s in item_skills if s not in index]
            if missing:
                raise ValueError(f"item {item!r} practises {missing[0]!r}, which is not among "
                                 "the index's skills")
        self.pair_count = np.array([len(s) for s in self.item_skills], dtype=np.intp)
        self.pair_ptr = np.concatenate(([0], np.cumsum(self.pair_count))).astype(np.intp)
        self.pair_skill = np.array(
            [index[s] for item_skills in self.item_skills for s in item_skills], dtype=np.intp)
        for array in (self.pair_count, self.pair_ptr, self.pair_skill):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.item_ids)

    def mean_per_item(self, per_pair: np.ndarray) -> np.ndarray:
        """The mean over each item's skills of a value given per (item, skill) pair; a leading
        learner axis (n, pairs) gives (n, items)."""
        values = np.ascontiguousarray(per_pair, dtype=np.float64)
        out = np.empty((*values.shape[:-1], len(self.item_ids)))
        _segment_means(_rows(values), self.pair_ptr, _rows(out))
        return out

    def all_per_item(self, pair_flags: np.ndarray) -> np.ndarray:
        """True for the items whose every (item, skill) pair flag is set; a leading learner
        axis (n, pairs) gives (n, items)."""
        flags = np.ascontiguousarray(pair_flags, dtype=np.bool_)
        out = np.empty((*flags.shape[:-1], len(self.item_ids)), dtype=np.bool_)
        _segment_all(_rows(flags), self.pair_ptr, _rows(out))
        return out

    def steps(self, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A batch's answers as (learner, skill) steps, for the tracers' ``update_many``:
        ``chosen[i]`` is learner ``i``'s item index (negative: no answer). Returns the learners
        who answered, the number of skills of each one's item, and the pair index (into
        ``pair_skill``) of every step, learner by learner in item order."""
        rows = np.flatnonzero(chosen >= 0)
        item = chosen[rows]
        counts = self.pair_count[item]
        ends = np.cumsum(counts)
        pairs = np.repeat(self.pair_ptr[item] - ends + counts, counts) + np.arange(
            ends[-1] if len(ends) else 0)
        return rows, counts, pairs


def _rows(array: np.ndarray) -> np.ndarray:
    """A (pairs,) or (n, pairs) array as (rows, pairs), a view (empty arrays too)."""
    return array.reshape(math.prod(array.shape[:-1]), array.shape[-1])


# compiled loops: numpy's reduceat costs tens of microseconds on 10,000 items, on every choice
@numba.njit(cache=True, nogil=True)
def _segment_means(values: np.ndarray, ptr: np.ndarray, out: np.ndarray) -> None:
    for i in range(values.shape[0]):
        for j in range(len(ptr) - 1):
            total = 0.0
            for p in range(ptr[j], ptr[j + 1]):
                total += values[i, p]
            out[i, j] = total / (ptr[j + 1] - ptr[j])


@numba.njit(cache=True, nogil=True)
def _segment_all(flags: np.ndarray, ptr: np.ndarray, out: np.ndarray) -> None:
    for i in range(flags.shape[0]):
        for j in range(len(ptr) - 1):
            every = True
            for p in range(ptr[j], ptr[j + 1]):
                every = every and flags[i, p]
            out[i, j] = every
