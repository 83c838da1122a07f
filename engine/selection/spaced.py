"""Selection v2, the ``spaced`` policy: due reviews interleaved with new material.

The target-success policy never looks back: once a skill is mastered it is left alone, and the
learner forgets it. With a tracer that models memory (a
:class:`~engine.tracing.recall.RecallTracer`, such as ``bkt-memory``) this policy knows, per
skill, whether it was learned, how well it is recalled at the moment of the choice and when it
will fall below a target retention, and so sorts the open items into three kinds:

* **review**: every skill of the item learned, at least one *due* (predicted recall at or below
  the target retention, 0.9 by default; per tenant as the policy's option, per request as
  ``SelectionContext.retention``); the most forgotten first;
* **new**: the item practises a skill not yet learned whose prerequisites are learned; predicted
  success closest to the target (0.75), as the target-success policy chooses;
* **ahead**: nothing of the item is due (a review before its time), the least known now first
  (P(learned) x recall, so that these reviews rotate over the skills, with or without memory):
  only when neither of the others is open (a complete course keeps being practised).

Reviews and new material alternate (a review when one is due and the learner's previous answer
was not itself practice of learned material), reviews first for a learner who comes back after
a while, and at most ``max_reviews`` answers of a session (answers whose skills were all
practised within ``session_hours`` of the choice) go to learned material while new material is
open. The last ``avoid_recent`` items are skipped unless nothing else is open, so one skill's
items take turns (variety). Every choice says why. With a tracer without memory nothing is ever
due and the policy is the target-success policy's choice with prerequisites gated on mastery.

:func:`course_status` (is a course complete: its skills learned and nothing due) and
:func:`reviews` (due and upcoming reviews with their due times) are what the API serves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import numba
import numpy as np

from engine.catalog import Catalog
from engine.memory.reviews import REVIEW_HORIZON
from engine.selection import batch as b
from engine.selection.batch import SelectionBatch
from engine.selection.options import (
    AVOID_RECENT,
    SEED,
    TARGET_SUCCESS,
    Option,
)
from engine.selection.options import MASTERY_THRESHOLD as THRESHOLD_OPTION
from engine.selection.policy import Choice, SelectionContext
from engine.selection.prepared import PreparedCatalog, prepare
from engine.tracing.base import Tracer
from engine.tracing.items import ItemIndex
from engine.tracing.recall import SkillMemory, has_memory

__all__ = ["CourseStatus", "DueReview", "SpacedPolicy", "complete_many", "course_status",
           "reviews", "skill_memory"]

#: P(known right after the last practice) at which a skill counts as learned: 0.9 measured a
#: little better than the target-success policy's 0.95 on every simulated family (fewer
#: exercises to mastery, higher retention; 200 learners, generated:20, seed 1)
MASTERY_THRESHOLD = 0.9
#: ranks of the three kinds of item when a review is the turn, and when new material is
_REVIEW, _NEW, _AHEAD = 0, 1, 2
_NONE = 99


@dataclass(frozen=True, slots=True)
class DueReview:
    """A learned skill's review: due at ``due`` (recall then at or below the retention; None:
    not within the horizon after the time asked for, and ``reason`` says so); ``recall`` is the
    predicted recall at the time asked for, ``last`` the last practice."""

    skill: str
    due: datetime | None
    recall: float
    last: datetime
    due_now: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"skill": self.skill, "due": None if self.due is None else self.due.isoformat(),
               "recall": round(self.recall, 6), "last_practised": self.last.isoformat(),
               "due_now": self.due_now}
        return out if self.reason is None else {**out, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CourseStatus:
    """Where a learner stands in a course: ``complete`` when every skill is learned and no
    review is due."""

    complete: bool
    skills: int
    learned: int
    due: int


def _memory(tracer: Tracer[Any], states: Any, index: ItemIndex, at: datetime | None,
            retention: float) -> SkillMemory:
    """The batch's memory per skill; for a tracer without memory, mastery as ``learned`` and
    nothing ever forgotten or due."""
    if has_memory(tracer):
        return tracer.memory_of_many(states, index, at=None if at is None else at.timestamp(),
                                     retention=retention)
    learned = tracer.mastery_of_many(states, index, at=at)
    nan = np.full(learned.shape, np.nan)
    return SkillMemory(learned, np.ones(learned.shape), nan, nan)


def skill_memory(tracer: Tracer[Any], state: Any, index: ItemIndex, at: datetime | None,
                 retention: float) -> SkillMemory:
    """One learner's memory per skill of ``index`` (for a tracer without memory, mastery as
    ``learned``, nothing forgotten or due): what the reviews, the course's end and the
    outside prerequisites read."""
    memory = _memory(tracer, _one(tracer, state), index, at, retention)
    return SkillMemory(memory.learned[0], memory.recall[0], memory.last[0], memory.due[0])


class SpacedPolicy:
    """Due reviews interleaved with new material (module docstring)."""

    RETENTION = Option("retention", False, 0.0, 1.0, exclusive_minimum=True,
                       exclusive_maximum=True)
    MAX_REVIEWS = Option("max_reviews", True, 0)
    SESSION_HOURS = Option("session_hours", False, 0.0, exclusive_minimum=True)
    OPTIONS: ClassVar[tuple[Option, ...]] = (TARGET_SUCCESS, THRESHOLD_OPTION, RETENTION,
                                             MAX_REVIEWS, SESSION_HOURS, AVOID_RECENT, SEED)

    def __init__(self, target_success: float = 0.75, mastery_threshold: float = MASTERY_THRESHOLD,
                 retention: float = 0.9, max_reviews: int = 5, session_hours: float = 2.0,
                 avoid_recent: int = 3, seed: int = 0) -> None:
        TARGET_SUCCESS.check(target_success)
        THRESHOLD_OPTION.check(mastery_threshold)
        self.RETENTION.check(retention)
        self.MAX_REVIEWS.check(max_reviews)
        self.SESSION_HOURS.check(session_hours)
        AVOID_RECENT.check(avoid_recent)
        SEED.check(seed)
        self.target_success = target_success
        self.mastery_threshold = mastery_threshold
        self.retention = retention
        self.max_reviews = max_reviews
        self.session_hours = session_hours
        self.avoid_recent = avoid_recent
        self.seed = seed

    def __repr__(self) -> str:
        return (f"SpacedPolicy(target_success={self.target_success}, "
                f"mastery_threshold={self.mastery_threshold}, retention={self.retention}, "
                f"max_reviews={self.max_reviews}, session_hours={self.session_hours}, "
                f"avoid_recent={self.avoid_recent}, seed={self.seed})")

    #: the tracer this policy is meant to run with (the simulator builds it from the content)
    tracer_model = "bkt-memory"
    #: whether a tracer without memory is refused (its reviews and reasons need recall)
    requires_memory = True

    # ------------------------------------------------------------------ Policy
    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        prepared = prepare(catalog)
        if not prepared.item_ids:
            return []
        batch = SelectionBatch(
            (context.learner,), _recent_row(prepared, context.recent_items),
            np.zeros((1, max(len(context.recent_items), 1)), dtype=bool),
            np.array([0 if context.seed is None else context.seed]), course=context.course,
            at=context.at, target_success=context.target_success, retention=context.retention)
        ranked = self._rank(tracer, _one(tracer, state), prepared, batch)
        # the first choice as choose_many finds it (cheap on large catalogs), the rest ranked
        candidates = np.flatnonzero(ranked.best[0]) if context.n == 1 \
            else np.flatnonzero(ranked.group[0] < _NONE)
        if not len(candidates):
            return []
        if len(candidates) > 1:  # the seeded tie-break (the first choice's ties differ by it alone)
            seed = self.seed if context.seed is None else context.seed
            ties = prepared.tie_keys(candidates, seed, context.learner)
            order = np.lexsort((ties, ranked.distance[0, candidates],
                                ranked.recall_key[0, candidates], ranked.group[0, candidates]))
            candidates = candidates[order[:context.n]]
        return [Choice(prepared.item_ids[i], prepared.item_skills[i], float(ranked.p[0, i]),
                       self._reason(prepared, ranked, i))
                for i in candidates.tolist()]

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        if self.choose(tracer, state, catalog, context):
            return None
        prepared = prepare(catalog)
        in_scope, _, scope = b.scope(prepared, context.course)
        if not prepared.item_ids:
            return "the catalog has no items"
        if not in_scope.any():
            return f"{scope} has no items (none has all its skills in the course)"
        return (f"no item of {scope} is open: prerequisites not learned (mastery below "
                f"{self.mastery_threshold:.2f})")

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        """The first choice of every learner of ``batch``: :meth:`choose`'s ranking (group,
        then recall, then distance to the target, then the seeded tie-break) on arrays."""
        prepared = prepare(catalog)
        return b.first_by_tie_key(prepared, self._rank(tracer, states, prepared, batch).best,
                                  batch)

    # ------------------------------------------------------------------ ranking
    def _rank(self, tracer: Tracer[Any], states: Any, prepared: PreparedCatalog,
              batch: SelectionBatch) -> _Ranked:
        """Every item's group, recall key and distance to the target, per learner."""
        retention = self.retention if batch.retention is None else batch.retention
        target = self.target_success if batch.target_success is None else batch.target_success
        in_scope, _, _ = b.scope(prepared, batch.course)
        memory = _memory(tracer, states, prepared.index, batch.at, retention)
        now = (np.nanmax(np.where(np.isnan(memory.last), -np.inf, memory.last), axis=1,
                         initial=-np.inf) if batch.at is None
               else np.full(len(batch), batch.at.timestamp()))
        p = np.ascontiguousarray(tracer.predict_items_many(states, prepared.index, at=batch.at))
        n, n_items = p.shape
        group = np.empty((n, n_items), dtype=np.int64)
        recall_key = np.empty((n, n_items))
        distance = np.empty((n, n_items))
        learned = np.empty(memory.learned.shape, dtype=np.bool_)
        due = np.empty(memory.learned.shape, dtype=np.bool_)
        review_turn = np.empty(n, dtype=np.bool_)
        best = np.empty((n, n_items), dtype=np.bool_)
        learned_p = np.ascontiguousarray(memory.learned, dtype=np.float64)
        _rank_kernel(learned_p, self._new_key(learned_p),
                     np.ascontiguousarray(memory.recall, dtype=np.float64),
                     np.ascontiguousarray(memory.last, dtype=np.float64), p,
                     now - self.session_hours * 3600.0, in_scope, prepared.pair_ptr,
                     prepared.pair_skill, prepared.edge_skill, prepared.edge_req,
                     np.ascontiguousarray(batch.recent_items, dtype=np.int64),
                     self.avoid_recent, self.max_reviews, self.mastery_threshold, retention,
                     target, group, recall_key, distance, learned, due, review_turn, best)
        return _Ranked(group, recall_key, distance, p, memory, learned, due, review_turn,
                       retention, target, now, best)

    def _new_key(self, learned: np.ndarray) -> np.ndarray:
        """Per learner and skill, the key new material of the skill is ranked by (lowest
        first, then closest to the target success): none here, the target decides."""
        return np.zeros_like(learned)

    # ------------------------------------------------------------------ reasons
    def _reason(self, prepared: PreparedCatalog, ranked: _Ranked, item: int) -> str:
        """The sentence saying why ``item`` was chosen (learner 0 of ``ranked``)."""
        memory = ranked.memory
        lo, hi = prepared.pair_ptr[item], prepared.pair_ptr[item + 1]
        skills = prepared.pair_skill[lo:hi].tolist()
        p = float(ranked.p[0, item])
        group = int(ranked.group[0, item])
        kind = group if ranked.review_turn[0] else {_NEW: _REVIEW, _REVIEW: _NEW}.get(group,
                                                                                       group)
        success = f"predicted success {p:.2f} (target {ranked.target:.2f})"
        if kind in (_REVIEW, _AHEAD):
            due = [k for k in skills if ranked.due[0, k]]
            k = min(due or skills, key=lambda s: memory.recall[0, s])
            recall = float(memory.recall[0, k])
            ago = _ago(ranked.now[0] - memory.last[0, k])
            if kind == _REVIEW:
                return (f"review: predicted recall {recall:.2f} < {ranked.retention:.2f}, "
                        f"last practised {ago} ({prepared.skill_ids[k]!r}); {success}")
            return (f"review ahead: nothing is due and nothing new is open; lowest predicted "
                    f"recall {recall:.2f} ({prepared.skill_ids[k]!r}, last practised {ago}); "
                    f"{success}")
        fresh = [k for k in skills if not ranked.learned[0, k]]
        names = " and ".join(f"{prepared.skill_ids[k]!r} (mastery {memory.learned[0, k]:.2f})"
                             for k in fresh)
        prereq = ("prerequisites learned" if prepared.has_prereq[fresh].any()
                  else "no prerequisites")
        why = "" if ranked.due[0].any() else "; nothing due"
        return f"new: practises {names}; {prereq}; {self._new_order(success)}{why}"

    def _new_order(self, success: str) -> str:
        """Why this item among the new material, in words."""
        return f"{success} is the closest"


@numba.njit(cache=True, nogil=True)
def _rank_kernel(learned_p: np.ndarray, new_key: np.ndarray, recall: np.ndarray,
                 last: np.ndarray, p: np.ndarray,
                 session_start: np.ndarray, in_scope: np.ndarray, pair_ptr: np.ndarray,
                 pair_skill: np.ndarray, edge_skill: np.ndarray, edge_req: np.ndarray,
                 recent: np.ndarray, avoid_recent: int, max_reviews: int, threshold: float,
                 retention: float, target: float, group: np.ndarray, key: np.ndarray,
                 distance: np.ndarray, learned: np.ndarray, due: np.ndarray,
                 review_turn: np.ndarray, best: np.ndarray) -> None:
    """Per learner and item: the group (review, new, ahead, in the order of this learner's
    turn; :data:`_NONE` for items not open), the recall key (the lowest recall of the due
    skills for a review; the lowest P(learned) x recall of all skills ahead, so that reviews
    ahead rotate, with a tracer without memory too; the lowest ``new_key`` of its skills not
    learned for new material) and the distance of
    predicted success to the target; with per skill ``learned`` and ``due``, whether a
    review is the learner's turn, and ``best``: the items ranked first (best group, then
    lowest key, then closest to the target) before the seeded tie-break. Two passes over the
    items per learner, for one learner or a batch."""
    n, n_items = p.shape
    n_skills = learned_p.shape[1]
    n_recent = recent.shape[1]
    blocked = np.zeros(n_skills, dtype=np.bool_)
    skill_kind = np.zeros(n_skills, dtype=np.int8)  # an item of this skill alone: its kind
    skill_key = np.zeros(n_skills)
    is_recent = np.zeros(n_items, dtype=np.bool_)
    kind = np.zeros(n_items, dtype=np.int8)  # 0 not open, 1 new, 2 review, 3 ahead
    group_of = np.empty(4, dtype=np.int64)   # kind -> group, by whose turn it is
    ties = np.empty(n_items, dtype=np.int64)
    for i in range(n):
        for k in range(n_skills):
            learned[i, k] = learned_p[i, k] >= threshold
            due[i, k] = learned[i, k] and recall[i, k] <= retention
            blocked[k] = False
        for e in range(len(edge_skill)):
            if not learned[i, edge_req[e]]:
                blocked[edge_skill[e]] = True
        for k in range(n_skills):
            skill_kind[k] = 0 if blocked[k] else (
                1 if not learned[i, k] else (2 if due[i, k] else 3))
            # (an undefined recall keys last, as min(inf, nan) does for items of several skills)
            # ahead of time the least known now first (P(learned) x recall): without memory
            # (recall 1) the lowest mastery, so a complete course's reviews rotate
            skill_key[k] = new_key[i, k] if skill_kind[k] == 1 else (
                np.inf if np.isnan(recall[i, k]) else (
                    recall[i, k] if skill_kind[k] == 2 else recall[i, k] * learned_p[i, k]))
        window = max(n_recent - avoid_recent, 0)
        for r in range(window, n_recent):
            if recent[i, r] >= 0:
                is_recent[recent[i, r]] = True
        # pass 1: each item's kind, key and distance; counts of new and review items, the last
        # items (skipped while others are open) counted apart
        any_fresh = False
        new_fresh = review_fresh = new_recent = review_recent = 0
        for j in range(n_items):
            kind[j] = 0
            if not in_scope[j]:
                continue
            lo, hi = pair_ptr[j], pair_ptr[j + 1]
            if hi - lo == 1:  # one skill: its kind and key
                c, item_key = skill_kind[pair_skill[lo]], skill_key[pair_skill[lo]]
            else:
                is_open, all_learned, has_due = True, True, False
                low_due, low_all, low_new = np.inf, np.inf, np.inf
                for q in range(lo, hi):
                    k = pair_skill[q]
                    is_open = is_open and not blocked[k]
                    all_learned = all_learned and learned[i, k]
                    if due[i, k]:
                        has_due = True
                        low_due = min(low_due, recall[i, k])
                    low_all = min(low_all, recall[i, k] * learned_p[i, k])
                    if not learned[i, k]:
                        low_new = min(low_new, new_key[i, k])
                c = 0 if not is_open else (1 if not all_learned else (2 if has_due else 3))
                item_key = low_new if c == 1 else (low_due if c == 2 else low_all)
            if c == 0:
                continue
            kind[j] = c
            key[i, j] = item_key
            gap = abs(p[i, j] - target)
            distance[i, j] = np.inf if np.isnan(gap) else gap  # no prediction: last
            if is_recent[j]:
                new_recent += c == 1
                review_recent += c == 2
            else:
                any_fresh = True
                new_fresh += c == 1
                review_fresh += c == 2
        if any_fresh:  # skip the last items while others are open
            for r in range(window, n_recent):
                if recent[i, r] >= 0:
                    kind[recent[i, r]] = 0
            any_new, any_review = new_fresh > 0, review_fresh > 0
        else:
            any_new, any_review = new_recent > 0, review_recent > 0
        # answers of this session (all skills practised since its start) to learned material
        reviewed, last_review = 0, False
        for r in range(n_recent):
            j = recent[i, r]
            if j < 0:
                continue
            practice = True
            for q in range(pair_ptr[j], pair_ptr[j + 1]):
                k = pair_skill[q]
                practice = practice and learned[i, k] and last[i, k] >= session_start[i]
            reviewed += practice
            if r == n_recent - 1:
                last_review = practice
        turn = any_review and (not any_new or (reviewed < max_reviews and not last_review))
        review_turn[i] = turn
        group_of[0], group_of[3] = _NONE, _AHEAD
        group_of[1], group_of[2] = (_NEW, _REVIEW) if turn else (_REVIEW, _NEW)
        # the first group's kind: reviews on their turn, else new material, else ahead
        top_kind = 2 if turn else (1 if any_new else 3)
        # pass 2: groups, and the items of the first group tied first (lowest key, closest)
        top_key, top_distance = np.inf, np.inf
        n_ties = 0
        for j in range(n_items):
            group[i, j] = group_of[kind[j]]
            if kind[j] != top_kind:
                continue
            if key[i, j] < top_key or (key[i, j] == top_key and distance[i, j] < top_distance):
                top_key, top_distance = key[i, j], distance[i, j]
                n_ties = 0
            if key[i, j] == top_key and distance[i, j] == top_distance:
                ties[n_ties] = j
                n_ties += 1
        best[i, :] = False
        for t in range(n_ties):
            best[i, ties[t]] = True
        for r in range(window, n_recent):
            if recent[i, r] >= 0:
                is_recent[recent[i, r]] = False


@dataclass(frozen=True, eq=False)
class _Ranked:
    group: np.ndarray
    recall_key: np.ndarray
    distance: np.ndarray
    p: np.ndarray
    memory: SkillMemory
    learned: np.ndarray
    due: np.ndarray
    review_turn: np.ndarray
    retention: float
    target: float
    now: np.ndarray
    best: np.ndarray


def _one(tracer: Tracer[Any], state: Any) -> Any:
    """A batch of one learner, in the tracer's batch layout."""
    return np.asarray(state)[None] if isinstance(state, np.ndarray) else [state]


def _recent_row(prepared: PreparedCatalog, recent: tuple[str, ...]) -> np.ndarray:
    indices = [prepared.item_index.get(i, -1) for i in recent] or [-1]
    return np.array([indices], dtype=np.int64)


def _ago(seconds: float) -> str:
    if math.isnan(seconds):
        return "never"
    days = int(seconds // 86_400)
    if days >= 1:
        return f"{days} day{'s' if days > 1 else ''} ago"
    hours = int(seconds // 3600)
    return f"{hours} hour{'s' if hours > 1 else ''} ago" if hours >= 1 else "just now"


#: the calendar's last second (epoch seconds): no due time later than it is a date
_LAST_SECOND = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


def _dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def reviews(tracer: Tracer[Any], state: Any, catalog: Catalog, *, at: datetime,
            retention: float = 0.9, mastery_threshold: float = MASTERY_THRESHOLD,
            course: str | None = None, horizon: timedelta = REVIEW_HORIZON) -> list[DueReview]:
    """Every learned skill's review (of ``course``, or the catalog), due ones first, then
    upcoming ones, by due time (those not due within ``horizon`` of ``at`` last, without a due
    time): what app notifications need. Empty for a tracer without memory (nothing is ever
    due). Any retention in (0, 1) and any ``at`` give dates within the calendar: a due time is
    given only up to ``horizon`` ahead, because a low retention puts it centuries away (or
    past any date: the tracer's due time is then infinite)."""
    prepared = prepare(catalog)
    _, in_course, _ = b.scope(prepared, course)
    memory = skill_memory(tracer, state, prepared.index, at, retention)
    learned = (memory.learned >= mastery_threshold) & in_course & ~np.isnan(memory.due)
    t = at.timestamp()
    until = min(t + horizon.total_seconds(), _LAST_SECOND)
    beyond = (f"not due within {horizon.days} days of the time asked for: predicted recall "
              f"stays above {retention:g} until later")
    out = []
    for k in np.flatnonzero(learned).tolist():
        due, recall = float(memory.due[k]), float(memory.recall[k])
        due_now = recall <= retention
        within = due <= until  # (due now: due by `at`, whole days; never beyond the horizon)
        out.append(DueReview(prepared.skill_ids[k], _dt(due) if within else None, recall,
                             _dt(float(memory.last[k])), due_now,
                             None if within else beyond))
    return sorted(out, key=lambda r: (not r.due_now, r.due is None,
                                      0.0 if r.due is None else r.due.timestamp() - t, r.skill))


def course_status(tracer: Tracer[Any], state: Any, catalog: Catalog, course: str | None, *,
                  at: datetime, retention: float = 0.9,
                  mastery_threshold: float = MASTERY_THRESHOLD) -> CourseStatus:
    """Whether ``course`` (None: the whole catalog) is complete for this learner at ``at``:
    every skill learned (P(known) after the last practice at least ``mastery_threshold``) and
    no review due."""
    total, learned, due = _standing(tracer, _one(tracer, state), catalog, course, at,
                                    retention, mastery_threshold)
    n_learned, n_due = int(learned[0]), int(due[0])
    return CourseStatus(n_learned == total and n_due == 0, total, n_learned, n_due)


def complete_many(tracer: Tracer[Any], states: Any, catalog: Catalog, course: str | None, *,
                  at: datetime, retention: float = 0.9,
                  mastery_threshold: float = MASTERY_THRESHOLD) -> np.ndarray:
    """:func:`course_status`'s ``complete`` for every learner of a batch (bool, shape (n,));
    ``course`` None: the whole catalog."""
    total, learned, due = _standing(tracer, states, catalog, course, at, retention,
                                    mastery_threshold)
    return (learned == total) & (due == 0)


def _standing(tracer: Tracer[Any], states: Any, catalog: Catalog, course: str | None,
              at: datetime, retention: float, mastery_threshold: float,
              ) -> tuple[int, np.ndarray, np.ndarray]:
    """(skills of the course, learned ones per learner, due ones per learner)."""
    prepared = prepare(catalog)
    _, in_course, _ = b.scope(prepared, course)
    memory = _memory(tracer, states, prepared.index, at, retention)
    learned = (memory.learned >= mastery_threshold) & in_course
    due = learned & (memory.recall <= retention)
    return int(in_course.sum()), learned.sum(axis=1), due.sum(axis=1)
