"""``bkt-memory``: Bayesian Knowledge Tracing whose knowledge fades on FSRS-6's forgetting curve.

BKT (:mod:`engine.tracing.bkt`) says whether a skill was learned; it has no clock, so a skill
learned eleven months ago counts as much as one learned today. This model adds one memory per
learner and skill, shared by every item of the skill (an answer to any of them is a practice of
the skill's memory):

* **learned** ``m``: BKT's P(known) right after the skill's last practice (guess, slip, learn
  as fitted or as the content pack sets them);
* **recall** ``R(t)``: FSRS-6's power forgetting curve, ``(1 + F * days / S) ** -w20`` with
  ``days`` the whole days since the last practice (py-fsrs counts whole days) and ``S`` the
  memory's stability; 1 for a skill never practised (prior knowledge is not dated);
* **P(known at t)** = ``m * R(t)``: this is ``mastery(..., at)``, and P(correct) is BKT's
  ``know * (1 - slip) + (1 - know) * guess`` with it, so predictions fall as recall decays.

An answer at ``t`` is BKT's evidence step on ``m * R(t)`` followed by its learning step, and one
FSRS review of the skill's memory rated Good (right) or Again (wrong) at ``t``: stability grows
most after a success when recall had fallen (spaced practice), little after a massed one, and
drops after a lapse. The FSRS part is py-fsrs's own arithmetic with its default FSRS-6
parameters (``fsrs.scheduler.DEFAULT_PARAMETERS``) and a scheduler without learning steps,
restated here as a compiled kernel because py-fsrs's ``review_card`` copies a ``Card`` object per
review (tens of microseconds, and no batch form); a test replays random review sequences through
``fsrs.Scheduler.review_card`` and checks the same stability, difficulty and recall.

Constant time per answer; the state is four floats per skill (learned, stability, difficulty,
last practice in epoch seconds). ``update``, ``update_many`` and ``predict_log`` run the one
kernel, so online and batch agree exactly. Fitting is BKT's EM on the answers (time plays no part
in the fit; the memory parameters are FSRS's defaults): fitting them on answer logs is not done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numba
import numpy as np
from fsrs.scheduler import DEFAULT_PARAMETERS, MAX_DIFFICULTY, MIN_DIFFICULTY, STABILITY_MIN

from engine.events import NO_TIMESTAMP, AnswerEvent, AnswerLog
from engine.tracing.bkt import BKT, _ItemView, _with_fallback, layout
from engine.tracing.items import ItemIndex
from engine.tracing.recall import SkillMemory

__all__ = ["FSRS_PARAMETERS", "BKTMemory", "recall_at"]

DAY = 86_400.0
#: FSRS-6's default parameters, as py-fsrs ships them (w0..w20)
FSRS_PARAMETERS = np.array(DEFAULT_PARAMETERS, dtype=np.float64)
_DECAY = -FSRS_PARAMETERS[20]
_FACTOR = 0.9 ** (1 / _DECAY) - 1
#: rows of a state (4, skills)
LEARNED, STABILITY, DIFFICULTY, LAST = range(4)
_ROWS = 4
_BOUNDS = np.array([STABILITY_MIN, MIN_DIFFICULTY, MAX_DIFFICULTY, _DECAY, _FACTOR])


@numba.njit(cache=True, nogil=True)
def _recall(stability: float, last: float, t: float, decay: float, factor: float) -> float:
    """FSRS's retrievability after the whole days from ``last`` to ``t`` (1: never practised
    or no time known)."""
    if math.isnan(stability) or math.isnan(last) or math.isnan(t) or t <= last:
        return 1.0
    days = math.floor((t - last) / DAY)
    return (1.0 + factor * days / stability) ** decay


@numba.njit(cache=True, nogil=True)
def _step(state: np.ndarray, k: int, t: float, correct: bool, guess: float, slip: float,
          learn: float, w: np.ndarray, bounds: np.ndarray) -> None:
    """One answer to skill ``k`` at ``t`` (epoch seconds; NaN unknown), in place on ``state``
    (4, skills): BKT's evidence and learning steps on ``learned * recall``, then one FSRS review
    (py-fsrs's Review state; Good when right, Again when wrong)."""
    s_min, d_min, d_max, decay, factor = bounds[0], bounds[1], bounds[2], bounds[3], bounds[4]
    s, d, last = state[1, k], state[2, k], state[3, k]
    r = _recall(s, last, t, decay, factor)
    know = state[0, k] * r
    if correct:
        post = know * (1.0 - slip) / (know * (1.0 - slip) + (1.0 - know) * guess)
    else:
        post = know * slip / (know * slip + (1.0 - know) * (1.0 - guess))
    state[0, k] = post + (1.0 - post) * learn
    rating = 3.0 if correct else 1.0
    if math.isnan(s):  # first practice: FSRS's initial stability and difficulty
        s_new = max(w[int(rating) - 1], s_min)
        d_new = min(max(w[4] - math.exp(w[5] * (rating - 1.0)) + 1.0, d_min), d_max)
    else:
        same_day = math.isnan(t) or math.isnan(last) or (t - last) < DAY
        if same_day:
            grow = math.exp(w[17] * (rating - 3.0 + w[18])) * s ** -w[19]
            if correct:
                grow = max(grow, 1.0)
            s_new = s * grow
        elif correct:
            s_new = s * (1.0 + math.exp(w[8]) * (11.0 - d) * s ** -w[9]
                         * (math.exp((1.0 - r) * w[10]) - 1.0))
        else:
            s_new = min(w[11] * d ** -w[12] * ((s + 1.0) ** w[13] - 1.0)
                        * math.exp((1.0 - r) * w[14]), s / math.exp(w[17] * w[18]))
        s_new = max(s_new, s_min)
        easy = w[4] - math.exp(w[5] * 3.0) + 1.0
        moved = d + (10.0 - d) * (-(w[6] * (rating - 3.0))) / 9.0
        d_new = min(max(w[7] * easy + (1.0 - w[7]) * moved, d_min), d_max)
    state[1, k], state[2, k] = s_new, d_new
    if not math.isnan(t):
        state[3, k] = t


@numba.njit(cache=True, nogil=True)
def _step_pairs(states: np.ndarray, rows: np.ndarray, skills: np.ndarray, t: np.ndarray,
                correct: np.ndarray, guess: np.ndarray, slip: np.ndarray, learn: np.ndarray,
                w: np.ndarray, bounds: np.ndarray) -> None:
    """:func:`_step` for (learner ``rows[p]``, skill ``skills[p]``) pairs of a batch."""
    for p in range(len(rows)):
        k = skills[p]
        _step(states[rows[p]], k, t[p], correct[p], guess[p], slip[p], learn[k], w, bounds)


@numba.njit(cache=True, nogil=True)
def _forward(correct: np.ndarray, gs: np.ndarray, t: np.ndarray, seq_ptr: np.ndarray,
             seq_skill: np.ndarray, prior: np.ndarray, learn: np.ndarray, guess: np.ndarray,
             slip: np.ndarray, w: np.ndarray, bounds: np.ndarray, out: np.ndarray) -> None:
    """P(correct) before each answer of each (learner, skill) sequence, then :func:`_step`:
    the online update, run over a log laid out by :func:`engine.tracing.bkt.layout`."""
    state = np.empty((_ROWS, 1))
    for q in range(len(seq_ptr) - 1):
        k = seq_skill[q]
        state[0, 0], state[1, 0], state[2, 0], state[3, 0] = prior[k], np.nan, np.nan, np.nan
        for p in range(seq_ptr[q], seq_ptr[q + 1]):
            g = gs[p]
            know = state[0, 0] * _recall(state[1, 0], state[3, 0], t[p], bounds[3], bounds[4])
            out[p] = know * (1.0 - slip[g]) + (1.0 - know) * guess[g]
            _step(state, 0, t[p], correct[p], guess[g], slip[g], learn[k], w, bounds)


@numba.njit(cache=True, nogil=True)
def _item_means(know: np.ndarray, pair_ptr: np.ndarray, pair_skill: np.ndarray,
                guess: np.ndarray, slip: np.ndarray, out: np.ndarray) -> None:
    """P(correct) of every item for every learner: the mean over the item's (item, skill)
    pairs of BKT's emission with P(known) ``know[learner, skill]``."""
    for i in range(know.shape[0]):
        for j in range(len(pair_ptr) - 1):
            lo, hi = pair_ptr[j], pair_ptr[j + 1]
            if hi - lo == 1:  # most items practise one skill: no sum, no division
                k = know[i, pair_skill[lo]]
                out[i, j] = k * (1.0 - slip[lo]) + (1.0 - k) * guess[lo]
                continue
            total = 0.0
            for p in range(lo, hi):
                k = know[i, pair_skill[p]]
                total += k * (1.0 - slip[p]) + (1.0 - k) * guess[p]
            out[i, j] = total / (hi - lo)


@numba.njit(cache=True, nogil=True)
def _recall_rows(stability: np.ndarray, last: np.ndarray, t: np.ndarray, decay: float,
                 factor: float, out: np.ndarray) -> None:
    """:func:`_recall` of every (learner, skill): ``t`` holds each learner's time."""
    for i in range(stability.shape[0]):
        for k in range(stability.shape[1]):
            out[i, k] = _recall(stability[i, k], last[i, k], t[i], decay, factor)


@numba.njit(cache=True, nogil=True)
def _know_rows(states: np.ndarray, skills: np.ndarray, t: np.ndarray, decay: float,
               factor: float, out: np.ndarray) -> None:
    """P(known) = learned x recall of ``skills`` for every learner at ``t[learner]``, in one
    pass over the states (what selection asks for every choice)."""
    for i in range(states.shape[0]):
        for j in range(len(skills)):
            k = skills[j]
            out[i, j] = states[i, LEARNED, k] * _recall(states[i, STABILITY, k],
                                                        states[i, LAST, k], t[i], decay, factor)


@numba.njit(cache=True, nogil=True)
def _memory_rows(states: np.ndarray, skills: np.ndarray, t: np.ndarray, decay: float,
                 factor: float, due_days: float, learned: np.ndarray, recall: np.ndarray,
                 last: np.ndarray, due: np.ndarray) -> None:
    """:class:`SkillMemory`'s four arrays in one pass: recall as :func:`recall_at`, and the due
    time: the first whole day after the last practice at which recall is at or below the
    retention (``stability / factor * due_days`` days, ``due_days`` being
    ``retention ** (1 / decay) - 1``; NaN for a memory never practised)."""
    for i in range(states.shape[0]):
        for j in range(len(skills)):
            k = skills[j]
            s, seen = states[i, STABILITY, k], states[i, LAST, k]
            learned[i, j] = states[i, LEARNED, k]
            recall[i, j] = _recall(s, seen, t[i], decay, factor)
            last[i, j] = seen
            if math.isnan(s) or math.isnan(seen):
                due[i, j] = math.nan  # never practised
            else:
                due[i, j] = seen + max(np.ceil(s / factor * due_days - 1e-9), 0.0) * DAY


def recall_at(stability: np.ndarray, last: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """FSRS's recall of memories (``stability`` days, ``last`` practice in epoch seconds, shape
    (learners, skills); NaN: never practised, recall 1) at ``t`` (epoch seconds, one or one
    per learner; NaN: no time, recall 1), whole days: :func:`_recall`, what the update uses."""
    s2, l2 = np.atleast_2d(stability), np.atleast_2d(last)
    times = np.broadcast_to(np.asarray(t, dtype=np.float64).reshape(-1), (len(s2),))
    out = np.empty(s2.shape)
    _recall_rows(np.ascontiguousarray(s2, dtype=np.float64),
                 np.ascontiguousarray(l2, dtype=np.float64), np.ascontiguousarray(times),
                 _DECAY, _FACTOR, out)
    return out.reshape(np.shape(stability))


def _seconds(at: datetime | None) -> float:
    return math.nan if at is None else at.timestamp()


class BKTMemory(BKT):
    """BKT with FSRS memory per learner and skill; see the module docstring. Options are
    BKT's but ``forgets``: forgetting is the memory's job here (a fitted or given forget
    probability is not used)."""

    def __init__(self, *, item_guess_slip: bool = False, num_fits: int = 5,
                 seed: int | None = 0, tol: float = 1e-3, max_iter: int = 100,
                 max_guess: float = 0.5, max_slip: float = 0.5, eps: float = 1e-6) -> None:
        super().__init__(item_guess_slip=item_guess_slip, num_fits=num_fits, seed=seed,
                         tol=tol, max_iter=max_iter, max_guess=max_guess, max_slip=max_slip,
                         eps=eps)
        self.name = "bkt-memory"

    def get_options(self) -> dict[str, Any]:
        options = super().get_options()
        del options["forgets"]
        return options

    # ================================================================== batch side
    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """One-step-ahead P(correct) per answer, the online update run over each learner's
        answers in log order (an answer without a timestamp is taken right after the
        learner's previous one)."""
        params = self._fitted()
        prior, learn, _, guess, slip = _with_fallback(params)
        lay = layout(log, self._skill_of_code(log), self._class_lookup(log))
        pair_row = np.repeat(np.arange(len(log)), np.diff(log.skill_ptr))
        seconds = _filled_seconds(log)[pair_row[lay.pairs]]
        pred = np.empty(len(lay.pairs))
        _forward(lay.correct.astype(np.bool_), lay.gs, seconds, lay.seq_ptr, lay.seq_skill,
                 prior, learn, guess, slip, FSRS_PARAMETERS, _BOUNDS, pred)
        per_pair = np.empty_like(pred)
        per_pair[lay.pairs] = pred
        if len(log) == 0:
            return per_pair
        return np.add.reduceat(per_pair, log.skill_ptr[:-1]) / np.diff(log.skill_ptr)

    # ================================================================== online side
    def new_state(self) -> np.ndarray:
        params = self._fitted()
        state = np.full((_ROWS, len(params.skills)), np.nan)
        state[LEARNED] = params.prior
        return state

    def _write_mastery(self, state: np.ndarray, k: int, p: float) -> None:
        """Set skill ``k``'s P(learned) to ``p`` (its memory stays as it is: none yet, for a
        placement's new learner)."""
        state[LEARNED, k] = p

    def update(self, state: np.ndarray, event: AnswerEvent) -> np.ndarray:
        params = self._fitted()
        new = state.copy()
        t = _seconds(event.timestamp)
        if math.isnan(t):
            t = _latest(state)
        for skill in event.skills:
            k = self._index_of(skill)
            g = self._online_class(k, event.item)
            _step(new, k, t, bool(event.correct), float(params.guess[g]),
                  float(params.slip[g]), float(params.learn[k]), FSRS_PARAMETERS, _BOUNDS)
        return new

    def predict_correct(self, state: np.ndarray, item: str, skills: Sequence[str], *,
                        at: datetime | None = None) -> float:
        params = self._fitted()
        if not skills:
            raise ValueError(f"item {item!r} needs at least one skill")
        t = self._time(state, at)
        total = 0.0
        for skill in skills:
            k = self._index_of(skill)
            g = self._online_class(k, item)
            know = state[LEARNED, k] * _recall(state[STABILITY, k], state[LAST, k], t,
                                               _DECAY, _FACTOR)
            total += know * (1.0 - params.slip[g]) + (1.0 - know) * params.guess[g]
        return float(total / len(skills))

    def predict_items(self, state: np.ndarray, items: ItemIndex, *,
                      at: datetime | None = None) -> np.ndarray:
        return self.predict_items_many(state[None], items, at=at)[0]

    def mastery(self, state: np.ndarray, skills: Sequence[str] | None = None, *,
                at: datetime | None = None) -> dict[str, float]:
        params = self._fitted()
        know = state[LEARNED] * recall_at(state[STABILITY][None], state[LAST][None],
                                          self._time(state, at))[0]
        names = params.skills if skills is None else skills
        return {s: float(know[self._index_of(s)]) for s in names}

    def mastery_of(self, state: np.ndarray, items: ItemIndex, *,
                   at: datetime | None = None) -> np.ndarray:
        return self.mastery_of_many(state[None], items, at=at)[0]

    # a batch is an array (learners, 4, skills): row i is learner i's state
    def new_states(self, n: int) -> np.ndarray:
        return np.tile(self.new_state(), (n, 1, 1))

    def update_many(self, states: np.ndarray, items: ItemIndex, chosen: np.ndarray,
                    correct: np.ndarray, *, at: datetime | None = None) -> np.ndarray:
        params = self._fitted()
        view: _ItemView = self._views.get(items, self._view)
        rows, counts, pairs = items.steps(chosen)
        new = np.array(states, dtype=float)  # a copy: the batch given is left unchanged
        t = _seconds(at)
        times = np.full(len(rows), t) if not math.isnan(t) else _latest_many(new[rows])
        _step_pairs(new, np.repeat(rows, counts), view.pair_skill[pairs],
                    np.repeat(times, counts), np.repeat(correct[rows], counts).astype(np.bool_),
                    view.pair_guess[pairs], view.pair_slip[pairs], params.learn,
                    FSRS_PARAMETERS, _BOUNDS)
        return new

    def predict_items_many(self, states: np.ndarray, items: ItemIndex, *,
                           at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        know = self._know(states, view.skill, at)  # per skill of items, then per pair
        out = np.empty((len(states), len(items)))
        _item_means(know, items.pair_ptr, items.pair_skill, view.pair_guess, view.pair_slip, out)
        return out

    def mastery_of_many(self, states: np.ndarray, items: ItemIndex, *,
                        at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        return self._know(states, view.skill, at)

    # ================================================================== RecallTracer
    def memory_of(self, state: np.ndarray, items: ItemIndex, *, at: float | None,
                  retention: float) -> SkillMemory:
        many = self.memory_of_many(state[None], items, at=at, retention=retention)
        return SkillMemory(many.learned[0], many.recall[0], many.last[0], many.due[0])

    def memory_of_many(self, states: np.ndarray, items: ItemIndex, *, at: float | None,
                       retention: float) -> SkillMemory:
        if not 0 < retention < 1:
            raise ValueError(f"target retention must be between 0 and 1, got {retention}")
        view: _ItemView = self._views.get(items, self._view)
        states = np.ascontiguousarray(states, dtype=np.float64)
        t = _latest_many(states) if at is None else np.full(len(states), at)
        learned, recall, last, due = (np.empty((len(states), len(view.skill)))
                                      for _ in range(4))
        try:
            due_days = retention ** (1 / float(_DECAY)) - 1
        except OverflowError:  # a retention below ~1e-47: recall never falls that low (due inf)
            due_days = math.inf
        _memory_rows(states, view.skill, t, _DECAY, _FACTOR, due_days, learned, recall, last,
                     due)
        return SkillMemory(learned, recall, last, due)

    # ================================================================== bytes
    def state_to_bytes(self, state: np.ndarray) -> bytes:
        return np.ascontiguousarray(state, dtype="<f8").tobytes()

    def state_from_bytes(self, data: bytes) -> np.ndarray:
        """The state in ``data`` (read-only); ValueError for damaged bytes: a learned
        probability out of [0, 1] or NaN, a stability or difficulty that is not positive."""
        n = len(self._fitted().skills)
        if len(data) != 8 * _ROWS * n:
            raise ValueError(f"a bkt-memory state of this model is {8 * _ROWS * n} bytes, got "
                             f"{len(data)}")
        state = np.frombuffer(data, dtype="<f8").reshape(_ROWS, n)
        learned, memory = state[LEARNED], state[STABILITY:DIFFICULTY + 1]
        if (np.isnan(learned).any() or (learned < 0).any() or (learned > 1).any()
                or (memory[~np.isnan(memory)] <= 0).any()
                or np.isinf(state[STABILITY:]).any()):
            raise ValueError("a bkt-memory state holds a value no state holds (NaN learned "
                             "probability, a value out of range)")
        return state

    # ================================================================== internals
    def _time(self, state: np.ndarray, at: datetime | None) -> float:
        """``at`` in epoch seconds; None: the learner's last answer."""
        return _latest(state) if at is None else at.timestamp()

    def _know(self, states: np.ndarray, skills: np.ndarray, at: datetime | None) -> np.ndarray:
        """P(known) at ``at`` of ``skills`` (model indices) for every learner: learned x
        recall; shape (learners, len(skills))."""
        states = np.ascontiguousarray(states, dtype=np.float64)
        t = _latest_many(states) if at is None else np.full(len(states), at.timestamp())
        out = np.empty((len(states), len(skills)))
        _know_rows(states, np.asarray(skills, dtype=np.int64), t, _DECAY, _FACTOR, out)
        return out


def _latest(state: np.ndarray) -> float:
    """The learner's last answer (epoch seconds), NaN before any timed answer."""
    last = state[LAST]
    return float(np.nanmax(last)) if not np.isnan(last).all() else math.nan


def _latest_many(states: np.ndarray) -> np.ndarray:
    """:func:`_latest` of every learner of a batch."""
    last = states[:, LAST]
    never = np.isnan(last).all(axis=1)
    result: np.ndarray = np.where(never, np.nan,
                                  np.where(np.isnan(last), -np.inf, last).max(axis=1))
    return result


def _filled_seconds(log: AnswerLog) -> np.ndarray:
    """Each answer's time in epoch seconds; an answer without one takes the time of the same
    learner's previous answer (NaN before any), as :meth:`BKTMemory.update` does."""
    ns = log.timestamp_ns
    seconds = np.where(ns == NO_TIMESTAMP, np.nan, ns / 1e9)
    missing = np.flatnonzero(np.isnan(seconds))
    if len(missing):
        latest: dict[int, float] = {}
        for row in range(len(log)):
            learner = int(log.learner[row])
            if np.isnan(seconds[row]):
                seconds[row] = latest.get(learner, np.nan)
            else:
                latest[learner] = max(latest.get(learner, -np.inf), seconds[row])
    return seconds
