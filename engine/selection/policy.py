"""Which item a learner should answer next: a small policy interface and its first policy.

The serving API calls a :class:`Policy` after every answer with the learner's tracer state. A
policy returns ranked :class:`Choice` objects, each carrying a sentence that says why it was
chosen (shown to teachers and useful when debugging content), or an empty list, in which case
:meth:`Policy.explain_empty` says why nothing can be recommended. Keeping the "why" out of the
return value of ``choose`` keeps the hot path small: the explanation is only computed when the
list is empty, which is rare.

:class:`TargetSuccessPolicy` picks, among the items whose skills are open (prerequisites
mastered), the one the learner is predicted to answer correctly with a probability closest to a
target (0.75 by default): hard enough to learn from, easy enough not to discourage. A later policy
adds spaced repetition behind the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

import numpy as np

from engine.catalog import Catalog
from engine.selection import batch as b
from engine.selection.batch import SelectionBatch
from engine.selection.options import AVOID_RECENT, MASTERY_THRESHOLD, SEED, TARGET_SUCCESS, Option
from engine.selection.prepared import PreparedCatalog, prepare
from engine.tracing.base import Tracer

__all__ = ["Choice", "Policy", "SelectionContext", "TargetSuccessPolicy"]

# Predictions of equally parametrized items can differ in the last bits when a multi-skill mean
# is summed in another order; distances equal to this many decimals count as ties.
_TIE_DECIMALS = 9


@dataclass(frozen=True, slots=True)
class Choice:
    """One recommended item, with the prediction it was chosen on and why, in words."""

    item: str
    skills: tuple[str, ...]
    p_correct: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (probability rounded to 6 decimals: float noise is not data)."""
        return {"item": self.item, "skills": list(self.skills),
                "p_correct": round(self.p_correct, 6), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class SelectionContext:
    """What a policy needs besides the learner's state.

    ``recent_items`` are the learner's last answered items, most recent last, and
    ``recent_correct`` whether each of the last ``len(recent_correct)`` of them was answered
    right (aligned at the end: policies that count streaks need it); ``course`` limits
    the choice to one course's items; ``target_success`` overrides the policy's target; ``n`` is
    how many choices to return; ``seed`` overrides the policy's tie-break seed; ``learner`` makes
    tie-breaks differ between learners (so equally good items are spread over a class) while
    staying fixed for one learner; ``at`` is the moment of the choice, which time-aware tracers
    predict for (None: right after the last answer); ``retention`` overrides a spacing policy's
    target retention (a review is due when predicted recall falls to it).
    """

    recent_items: tuple[str, ...] = ()
    recent_correct: tuple[bool, ...] = ()
    course: str | None = None
    target_success: float | None = None
    n: int = 1
    seed: int | None = None
    learner: str = ""
    at: datetime | None = None
    retention: float | None = None

    def __post_init__(self) -> None:
        if self.retention is not None and not 0.0 < self.retention < 1.0:
            raise ValueError(f"retention must be strictly between 0 and 1, got "
                             f"{self.retention!r}")
        if not isinstance(self.recent_items, tuple):
            object.__setattr__(self, "recent_items", tuple(self.recent_items))
        if not isinstance(self.recent_correct, tuple):
            object.__setattr__(self, "recent_correct", tuple(self.recent_correct))
        if len(self.recent_correct) > len(self.recent_items):
            raise ValueError(f"recent_correct has {len(self.recent_correct)} outcomes for "
                             f"{len(self.recent_items)} recent items (one per item at most)")
        if self.target_success is not None:
            TARGET_SUCCESS.check(self.target_success)
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n (how many choices) must be an integer >= 1, got {self.n!r}")


class Policy(Protocol):
    """An item-selection strategy; implementations must be safe to share between requests."""

    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        """Up to ``context.n`` distinct items, best first; empty when nothing can be
        recommended."""
        ...

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        """Why :meth:`choose` returns nothing for these arguments, or None when it returns
        something."""
        ...


@dataclass(frozen=True, slots=True)
class _Pool:
    """The candidate items of one call, before ranking."""

    prepared: PreparedCatalog
    mastery: np.ndarray  # P(mastered) per catalog skill
    mastered: np.ndarray
    candidates: np.ndarray  # bool per item
    learning: np.ndarray  # bool per item: practises at least one unmastered skill
    repeated: bool  # candidates are recent items, because nothing else is open
    recent_learning: bool  # recent items were the only ones practising unmastered skills
    scope: str  # "course 'x'" or "the catalog", for sentences
    scope_skills: np.ndarray  # bool per skill: in the course (all True without one)


class TargetSuccessPolicy:
    """Next item: predicted success closest to a target, among items whose skills are open.

    A skill is *open* when every prerequisite has P(mastered) >= ``mastery_threshold``; an item is
    a candidate when all its skills are open (and, given a course, all belong to the course). The
    last ``avoid_recent`` answered items are skipped unless nothing else is open, so a learner is
    not drilled on one item. Items practising an unmastered skill come first; only when there are
    none (or fewer than ``n``) does the policy fall back to reviewing mastered skills. Within each
    group the predicted P(correct) closest to the target wins; ties follow a pseudo-random order
    fixed by (seed, learner), so one learner in one state always gets the same answer.
    """

    #: the constructor's options, checked by it and stated by the API (engine.selection.options)
    OPTIONS: ClassVar[tuple[Option, ...]] = (TARGET_SUCCESS, MASTERY_THRESHOLD, AVOID_RECENT,
                                             SEED)

    def __init__(self, target_success: float = 0.75, mastery_threshold: float = 0.95,
                 avoid_recent: int = 3, seed: int = 0) -> None:
        TARGET_SUCCESS.check(target_success)
        MASTERY_THRESHOLD.check(mastery_threshold)
        AVOID_RECENT.check(avoid_recent)
        SEED.check(seed)
        self.target_success = target_success
        self.mastery_threshold = mastery_threshold
        self.avoid_recent = avoid_recent
        self.seed = seed

    def __repr__(self) -> str:
        return (f"TargetSuccessPolicy(target_success={self.target_success}, "
                f"mastery_threshold={self.mastery_threshold}, "
                f"avoid_recent={self.avoid_recent}, seed={self.seed})")

    # ------------------------------------------------------------------ Policy
    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        pool = self._pool(tracer, state, catalog, context)
        if isinstance(pool, str):
            return []
        prepared = pool.prepared
        target = self._target(context)
        learn = np.flatnonzero(pool.candidates & pool.learning)
        items = learn
        if len(learn) < context.n:  # not enough to learn from: fill up with review
            items = np.concatenate((learn, np.flatnonzero(pool.candidates & ~pool.learning)))
        review = ~pool.learning[items]
        p = prepared.predict(tracer, state, items, context.at)
        distance = np.round(np.abs(p - target), _TIE_DECIMALS)
        # the first n by (review, distance, seeded tie-break): only the items that can be among
        # them are sorted (a full sort of a 10,000-item catalog took most of a choice); review
        # adds 2 to a distance of at most 1, which keeps every order and every tie, and an
        # undefined distance counts 1.5, last of its group, as the sort puts NaN
        key = np.where(np.isnan(distance), 1.5, distance) + 2.0 * review
        last = min(context.n, len(key)) - 1
        cut = np.partition(key, last)[last]
        near = np.flatnonzero(key <= cut)
        seed = self.seed if context.seed is None else context.seed
        ties = prepared.tie_keys(items[near], seed, context.learner)
        ranked = near[np.lexsort((ties, distance[near], review[near]))[:context.n]]

        choices = []
        for pos, j in enumerate(ranked.tolist()):
            i = int(items[j])
            rank = pos if not review[j] else pos - len(learn)
            tied = int(np.count_nonzero((distance == distance[j]) & (review == review[j]))) - 1
            reason = self._reason(pool, i, bool(review[j]), len(learn), float(p[j]), target,
                                  rank, tied)
            choices.append(Choice(prepared.item_ids[i], prepared.item_skills[i], float(p[j]),
                                  reason))
        return choices

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        pool = self._pool(tracer, state, catalog, context)
        return pool if isinstance(pool, str) else None

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        """The first choice for every learner of ``batch`` at once (see
        :mod:`engine.selection.batch`): the same steps as :meth:`_pool` and :meth:`choose`,
        on arrays of shape (learners, items)."""
        prepared = prepare(catalog)
        in_scope, _, _ = b.scope(prepared, batch.course)
        mastered = tracer.mastery_of_many(states, prepared.index, at=batch.at) \
            >= self.mastery_threshold
        blocked = b.blocked_many(prepared, mastered)
        candidates = in_scope & b.all_per_item_many(prepared, ~blocked[:, prepared.pair_skill])
        learning = ~b.all_per_item_many(prepared, mastered[:, prepared.pair_skill])
        fresh = candidates & ~b.recent_mask(prepared, batch, self.avoid_recent)
        candidates = np.where(fresh.any(axis=1)[:, None], fresh, candidates)
        learn = candidates & learning
        group = np.where(learn.any(axis=1)[:, None], learn, candidates & ~learning)
        target = self.target_success if batch.target_success is None else batch.target_success
        p = tracer.predict_items_many(states, prepared.index, at=batch.at)
        distance = np.where(group, np.round(np.abs(p - target), _TIE_DECIMALS), np.inf)
        closest = group & (distance == distance.min(axis=1, initial=np.inf)[:, None])
        return b.first_by_tie_key(prepared, closest, batch)

    # ------------------------------------------------------------------ internals
    def _target(self, context: SelectionContext) -> float:
        return self.target_success if context.target_success is None else context.target_success

    def _pool(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
              context: SelectionContext) -> _Pool | str:
        """The candidates for ``context``, or the sentence saying why there are none."""
        prepared = prepare(catalog)
        in_scope, scope_skills, scope = b.scope(prepared, context.course)
        if not prepared.item_ids:
            return "the catalog has no items"
        if not in_scope.any():
            return f"{scope} has no items (none has all its skills in the course)"

        mastery = prepared.mastery(tracer, state, context.at)
        mastered = mastery >= self.mastery_threshold
        blocked = np.zeros(len(prepared.skill_ids), dtype=bool)
        blocked[prepared.edge_skill[~mastered[prepared.edge_req]]] = True
        candidates = in_scope & prepared.all_per_item(~blocked[prepared.pair_skill])
        if not candidates.any():
            return self._locked_reason(prepared, mastery, mastered, in_scope, blocked, scope)
        learning = ~prepared.all_per_item(mastered[prepared.pair_skill])

        repeated = recent_learning = False
        recent = prepared.indices_of(context.recent_items[-self.avoid_recent:]
                                     if self.avoid_recent else ())
        if recent:
            fresh = candidates.copy()
            fresh[recent] = False
            if fresh.any():
                recent_learning = bool((candidates & learning).any()
                                       and not (fresh & learning).any())
                candidates = fresh
            else:
                repeated = True
        return _Pool(prepared, mastery, mastered, candidates, learning, repeated,
                     recent_learning, scope, scope_skills)

    def _locked_reason(self, prepared: PreparedCatalog, mastery: np.ndarray,
                       mastered: np.ndarray, in_scope: np.ndarray, blocked: np.ndarray,
                       scope: str) -> str:
        """Why no item in scope is open, with the first locked skill as an example."""
        first = int(np.flatnonzero(in_scope)[0])
        lo, hi = prepared.pair_ptr[first], prepared.pair_ptr[first + 1]
        skill = next(int(k) for k in prepared.pair_skill[lo:hi] if blocked[k])
        missing = prepared.edge_req[(prepared.edge_skill == skill) & ~mastered[prepared.edge_req]]
        needs = " and ".join(f"{prepared.skill_ids[r]!r} (mastery {mastery[r]:.2f})"
                             for r in missing.tolist())
        where = "" if scope == "the catalog" else f" of {scope}"
        return (f"no item{where} is open: prerequisites not mastered (e.g. "
                f"{prepared.skill_ids[skill]!r} requires {needs}, below the mastery threshold "
                f"{self.mastery_threshold:.2f})")

    def _reason(self, pool: _Pool, item: int, review: bool, n_learning: int, p: float,
                target: float, rank: int, tied: int) -> str:
        """The sentence saying why ``item`` was chosen."""
        prepared = pool.prepared
        lo, hi = prepared.pair_ptr[item], prepared.pair_ptr[item + 1]
        skills = prepared.pair_skill[lo:hi].tolist()
        if review:
            what = "reviews " + _skill_list(prepared, pool.mastery, skills)
            if n_learning:
                why = (f"only {n_learning} open item{'s' if n_learning > 1 else ''} "
                       f"practise{'' if n_learning > 1 else 's'} an unmastered skill")
            elif pool.mastered[pool.scope_skills].all():
                why = f"every skill of {pool.scope} is mastered"
            elif pool.recent_learning:
                why = "the items practising unmastered skills were answered just now"
            else:
                why = "no open item practises an unmastered skill"
            head = f"{what} because {why}"
        else:
            unmastered = [k for k in skills if not pool.mastered[k]]
            prereqs = ("prerequisites mastered" if prepared.has_prereq[unmastered].any()
                       else "no prerequisites")
            head = "practises " + _skill_list(prepared, pool.mastery, unmastered, prereqs)
        closest = "the closest" if rank == 0 else f"the {_ordinal(rank + 1)} closest"
        text = f"{head}; predicted success {p:.2f} is {closest} to the target {target:.2f}"
        if tied:
            text += f" (tied with {tied} other item{'s' if tied > 1 else ''}; seeded tie-break)"
        if pool.repeated:
            text += "; answered recently, but no other item is open"
        return text


def _skill_list(prepared: PreparedCatalog, mastery: np.ndarray, skills: list[int],
                note: str = "") -> str:
    """``'a' (mastery 0.42; note)`` for one skill, ``'a' (mastery 0.42) and 'b' (...); note``
    for several."""
    if len(skills) == 1:
        k = skills[0]
        extra = f"; {note}" if note else ""
        return f"{prepared.skill_ids[k]!r} (mastery {mastery[k]:.2f}{extra})"
    text = " and ".join(f"{prepared.skill_ids[k]!r} (mastery {mastery[k]:.2f})" for k in skills)
    return f"{text}; {note}" if note else text


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
