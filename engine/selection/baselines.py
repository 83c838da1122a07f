"""The baselines every adaptive policy is measured against, behind the one Policy interface.

* :class:`FixedCurriculumPolicy`: the course in order (its skills in topological order), a skill
  passed after 3 correct answers in a row (the classic ASSISTments skill-builder rule); no model
  of the learner at all. After the last skill it starts over (review), so every policy gets the
  same number of exercises. It is the policy meant for learners who opt out of
  personalization (the API must then pass ``SelectionContext.recent_correct``).
* :class:`RandomPolicy`: any item of the course, uniformly (seeded): no model, no
  prerequisites.
* :class:`LowestMasteryPolicy`: OATutor's heuristic: the open skill (prerequisites mastered)
  with the lowest P(mastered), then an item of it.

Each has a one-learner path (``choose``, with the sentence saying why) and a batched path
(``choose_many``, see :mod:`engine.selection.lockstep`) computing the same first choice for a
whole population; tests check that they agree. Random draws are seeded tie-break keys
(:meth:`~engine.selection.prepared.PreparedCatalog.tie_keys` of the context's seed and learner),
so a choice is a pure function of the context: the API passes the answer count as the seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from engine.catalog import Catalog
from engine.selection import batch as b
from engine.selection.batch import SelectionBatch
from engine.selection.options import AVOID_RECENT, MASTERY_THRESHOLD, SEED, Option
from engine.selection.policy import Choice, SelectionContext
from engine.selection.prepared import PreparedCatalog, prepare
from engine.tracing.base import Tracer

__all__ = ["FixedCurriculumPolicy", "LowestMasteryPolicy", "RandomPolicy"]


def _seed(context: SelectionContext, default: int) -> int:
    return default if context.seed is None else context.seed


def _drawn(prepared: PreparedCatalog, allowed: np.ndarray, seed: int, learner: str) -> int:
    """The allowed item with the smallest seeded tie-break key: a draw fixed by (seed,
    learner), the one-learner twin of :func:`engine.selection.batch.first_by_tie_key`."""
    items = np.flatnonzero(allowed)
    return int(items[np.argmin(prepared.tie_keys(items, seed, learner))])


def _choice(prepared: PreparedCatalog, tracer: Tracer[Any], state: Any, item: int,
            context: SelectionContext, reason: str) -> list[Choice]:
    p = float(prepared.predict(tracer, state, np.array([item]), context.at)[0])
    return [Choice(prepared.item_ids[item], prepared.item_skills[item], p, reason)]


# ====================================================================== random
class RandomPolicy:
    """Any item of the scope, drawn uniformly (the no-model, no-prerequisite baseline)."""

    OPTIONS: ClassVar[tuple[Option, ...]] = (SEED,)

    def __init__(self, seed: int = 0) -> None:
        SEED.check(seed)
        self.seed = seed

    def __repr__(self) -> str:
        return f"RandomPolicy(seed={self.seed})"

    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        prepared = prepare(catalog)
        in_scope, _, where = b.scope(prepared, context.course)
        if not in_scope.any():
            return []
        item = _drawn(prepared, in_scope, _seed(context, self.seed), context.learner)
        reason = (f"drawn at random among the {int(in_scope.sum())} items of {where} (the "
                  "random baseline: no model of the learner, no prerequisites)")
        return _choice(prepared, tracer, state, item, context, reason)

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        in_scope, _, where = b.scope(prepare(catalog), context.course)
        return None if in_scope.any() else f"{where} has no items"

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        prepared = prepare(catalog)
        in_scope, _, _ = b.scope(prepared, batch.course)
        return b.first_by_tie_key(prepared, np.broadcast_to(in_scope, (len(batch),
                                                                       len(in_scope))), batch)


# ====================================================================== lowest mastery first
class LowestMasteryPolicy:
    """OATutor's heuristic: the open skill with the lowest P(mastered), then an item of it.

    A skill is *open* when every prerequisite has P(mastered) >= ``mastery_threshold`` and it
    has an item whose skills are all open (and in the course). Unmastered open skills come
    first; when every open skill is mastered, the lowest of them is reviewed. Ties between
    skills go to the first in catalog order. The item is drawn (seeded) among the skill's open
    items, skipping the last ``avoid_recent`` answered unless no other is left.
    """

    OPTIONS: ClassVar[tuple[Option, ...]] = (MASTERY_THRESHOLD, AVOID_RECENT, SEED)

    def __init__(self, mastery_threshold: float = 0.95, avoid_recent: int = 3,
                 seed: int = 0) -> None:
        MASTERY_THRESHOLD.check(mastery_threshold)
        AVOID_RECENT.check(avoid_recent)
        SEED.check(seed)
        self.mastery_threshold = mastery_threshold
        self.avoid_recent = avoid_recent
        self.seed = seed

    def __repr__(self) -> str:
        return (f"LowestMasteryPolicy(mastery_threshold={self.mastery_threshold}, "
                f"avoid_recent={self.avoid_recent}, seed={self.seed})")

    def _open(self, prepared: PreparedCatalog, mastery: np.ndarray, in_scope: np.ndarray,
              scope_skills: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(open items, open skills, the pool of skills to pick from), each (n, ...)."""
        mastered = mastery >= self.mastery_threshold
        blocked = b.blocked_many(prepared, mastered)
        items = in_scope & b.all_per_item_many(prepared, ~blocked[:, prepared.pair_skill])
        has_item = _skills_of_items(prepared, items)
        skills = scope_skills & ~blocked & has_item
        unmastered = skills & ~mastered
        pool = np.where(unmastered.any(axis=1)[:, None], unmastered, skills)
        return items, skills, pool

    def _pick(self, prepared: PreparedCatalog, mastery: np.ndarray, items: np.ndarray,
              pool: np.ndarray, recent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the chosen skill per learner, the items allowed for it), both (n, ...)."""
        skill = np.where(pool, mastery, np.inf).argmin(axis=1)
        of_skill = items & _contains(prepared)[:, skill].T
        fresh = of_skill & ~recent
        return skill, np.where(fresh.any(axis=1)[:, None], fresh, of_skill)

    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        prepared = prepare(catalog)
        in_scope, scope_skills, _ = b.scope(prepared, context.course)
        mastery = prepared.mastery(tracer, state, context.at)[None, :]
        items, skills, pool = self._open(prepared, mastery, in_scope, scope_skills)
        if not pool.any():
            return []
        recent = np.zeros_like(items)
        recent[0, prepared.indices_of(context.recent_items[-self.avoid_recent:]
                                      if self.avoid_recent else ())] = True
        skill, allowed = self._pick(prepared, mastery, items, pool, recent)
        k = int(skill[0])
        item = _drawn(prepared, allowed[0], _seed(context, self.seed), context.learner)
        review = bool(mastery[0, k] >= self.mastery_threshold)
        what = (f"every open skill is mastered: reviews the lowest, {prepared.skill_ids[k]!r}"
                if review else f"{prepared.skill_ids[k]!r} is the open skill with the lowest "
                               "mastery")
        reason = (f"{what} (mastery {mastery[0, k]:.2f}, of {int(skills.sum())} open "
                  f"skills); item drawn at random among its {int(allowed.sum())} open items"
                  + ("" if (allowed & ~recent).any() else " (answered recently, but no "
                                                          "other is open)"))
        return _choice(prepared, tracer, state, item, context, reason)

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        prepared = prepare(catalog)
        in_scope, scope_skills, where = b.scope(prepared, context.course)
        mastery = prepared.mastery(tracer, state, context.at)[None, :]
        if self._open(prepared, mastery, in_scope, scope_skills)[2].any():
            return None
        if not in_scope.any():
            return f"{where} has no items"
        return (f"no skill of {where} is open: each item has a skill whose prerequisites are "
                f"below the mastery threshold {self.mastery_threshold:.2f}")

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        prepared = prepare(catalog)
        in_scope, scope_skills, _ = b.scope(prepared, batch.course)
        mastery = tracer.mastery_of_many(states, prepared.index, at=batch.at)
        items, _, pool = self._open(prepared, mastery, in_scope, scope_skills)
        _, allowed = self._pick(prepared, mastery, items, pool,
                                b.recent_mask(prepared, batch, self.avoid_recent))
        anything = np.asarray(pool.any(axis=1))
        return b.first_by_tie_key(prepared, allowed & anything[:, None], batch)


def _contains(prepared: PreparedCatalog) -> np.ndarray:
    """(items, skills): True where the item practises the skill."""
    contains = np.zeros((len(prepared.item_ids), len(prepared.skill_ids)), dtype=bool)
    contains[np.repeat(np.arange(len(prepared.item_ids)), prepared.pair_count),
             prepared.pair_skill] = True
    return contains


def _skills_of_items(prepared: PreparedCatalog, items: np.ndarray) -> np.ndarray:
    """(n, skills): True where at least one of the flagged items (n, items) practises it."""
    return (items.astype(np.float32) @ _contains(prepared).astype(np.float32)) > 0  # BLAS


# ====================================================================== fixed curriculum
#: correct answers in a row that pass a skill (the skill-builder rule), and the most a policy
#: may ask for: it keeps (1, streak) arrays per choice, and a skill passed after more than 100
#: answers in a row is a misconfiguration (2**53 allocated 64 PiB)
STREAK, MAX_STREAK = 3, 100
STREAK_OPTION = Option("streak", True, 1, MAX_STREAK)


class FixedCurriculumPolicy:
    """The course in order, a skill passed after ``streak`` correct answers in a row.

    The order is the course's skills in the catalog's topological order (prerequisites first).
    An item belongs to the skill of its skills that comes last in that order. The current skill
    is that of the learner's last answer (the first skill for a new learner, or one whose last
    answer is outside the course); it is passed once the last ``streak`` answers were all
    correct answers to its items (``SelectionContext.recent_correct`` must carry them), and the
    next skill in order becomes current; after the last skill the course starts over
    (review). Items are drawn (seeded) among the current skill's, skipping the last ``streak``
    answered unless no other is left. The learner model is never consulted: that is the point
    of the baseline.
    """

    OPTIONS: ClassVar[tuple[Option, ...]] = (STREAK_OPTION, SEED)

    def __init__(self, streak: int = STREAK, seed: int = 0) -> None:
        STREAK_OPTION.check(streak)
        SEED.check(seed)
        self.streak = streak
        self.seed = seed

    def __repr__(self) -> str:
        return f"FixedCurriculumPolicy(streak={self.streak}, seed={self.seed})"

    def _plan(self, prepared: PreparedCatalog, course: str | None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(items in scope, each item's skill, the skills in course order with an item,
        the scope in words)."""
        in_scope, _, where = b.scope(prepared, course)
        position = {s: p for p, s in enumerate(prepared.catalog.order)}
        rank = np.array([position[s] for s in prepared.skill_ids], dtype=np.int64)
        by_rank = np.argsort(rank)
        home = by_rank[np.maximum.reduceat(rank[prepared.pair_skill], prepared.pair_ptr[:-1])] \
            if prepared.item_ids else np.zeros(0, dtype=np.int64)
        sequence = np.array([k for k in by_rank.tolist() if (in_scope & (home == k)).any()],
                            dtype=np.int64)
        return in_scope, home, sequence, where

    def _current(self, home: np.ndarray, in_scope: np.ndarray, sequence: np.ndarray,
                 recent: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(current skill, whether the last skill was just passed) per learner, from the
        recent items (n, R; -1 padded) and their outcomes."""
        last = recent[:, -1]
        answered = last >= 0
        started = answered & in_scope[np.where(answered, last, 0)]
        skill = np.where(started, home[np.where(answered, last, 0)], sequence[0])
        tail = recent[:, -self.streak:]
        on_skill = (tail >= 0) & (home[np.where(tail >= 0, tail, 0)] == skill[:, None])
        passed = started & np.all(on_skill & correct[:, -self.streak:], axis=1)
        slot = np.full(len(home), -1, dtype=np.int64)
        slot[sequence] = np.arange(len(sequence))
        following = sequence[(slot[skill] + 1) % len(sequence)]
        return np.where(passed, following, skill), passed

    def _allowed(self, home: np.ndarray, in_scope: np.ndarray, skill: np.ndarray,
                 recent: np.ndarray) -> np.ndarray:
        of_skill = in_scope & (home[None, :] == skill[:, None])
        fresh = of_skill & ~recent
        return np.where(fresh.any(axis=1)[:, None], fresh, of_skill)

    def _history(self, prepared: PreparedCatalog, context: SelectionContext,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The context's last ``streak`` answers as (1, streak) arrays, -1 padded; answers
        without a known outcome count as wrong, items no longer in the catalog as none."""
        recent = np.full((1, self.streak), -1, dtype=np.int64)
        correct = np.zeros((1, self.streak), dtype=bool)
        items = context.recent_items[-self.streak:]
        outcomes = (False,) * len(context.recent_items) + context.recent_correct
        for pos, (item, right) in enumerate(zip(items, outcomes[-len(items):] if items else (),
                                                strict=True)):
            col = self.streak - len(items) + pos
            recent[0, col] = prepared.item_index.get(item, -1)
            correct[0, col] = right
        return recent, correct

    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        prepared = prepare(catalog)
        in_scope, home, sequence, where = self._plan(prepared, context.course)
        if not len(sequence):
            return []
        recent, correct = self._history(prepared, context)
        skill, passed = self._current(home, in_scope, sequence, recent, correct)
        recent_mask = np.zeros((1, len(home)), dtype=bool)
        recent_mask[0, recent[recent >= 0]] = True
        allowed = self._allowed(home, in_scope, skill, recent_mask)
        item = _drawn(prepared, allowed[0], _seed(context, self.seed), context.learner)
        k = int(skill[0])
        step = f"skill {int(np.flatnonzero(sequence == k)[0]) + 1} of {len(sequence)} of " \
               f"{where} in course order, {prepared.skill_ids[k]!r}"
        if passed[0]:
            done = prepared.skill_ids[int(home[recent[0, -1]])]
            head = (f"passed {done!r} with {self.streak} correct answers in a row; "
                    + ("course complete, review starts over at " if k == sequence[0]
                       else "next is ") + step)
        else:
            run = 0
            for j, right in zip(recent[0, ::-1].tolist(), correct[0, ::-1].tolist(),
                                strict=True):
                if j < 0 or not right or home[j] != k:
                    break
                run += 1
            head = f"{step}: {run} of {self.streak} correct in a row so far"
        reason = f"{head}; item drawn at random among its {int(allowed.sum())} items"
        return _choice(prepared, tracer, state, item, context, reason)

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        _, _, sequence, where = self._plan(prepare(catalog), context.course)
        return None if len(sequence) else f"{where} has no items"

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        prepared = prepare(catalog)
        in_scope, home, sequence, _ = self._plan(prepared, batch.course)
        if not len(sequence):
            return np.full(len(batch), b.NO_CHOICE, dtype=np.int64)
        recent = batch.recent_items[:, -self.streak:]
        if recent.shape[1] < self.streak:  # fewer columns than the streak: pad on the left
            pad = self.streak - recent.shape[1]
            recent = np.pad(recent, ((0, 0), (pad, 0)), constant_values=-1)
            correct = np.pad(batch.recent_correct[:, -self.streak:], ((0, 0), (pad, 0)))
        else:
            correct = batch.recent_correct[:, -self.streak:]
        skill, _ = self._current(home, in_scope, sequence, recent, correct)
        allowed = self._allowed(home, in_scope, skill,
                                b.recent_mask(prepared, batch, self.streak))
        return b.first_by_tie_key(prepared, allowed, batch)
