"""Time-aware logistic knowledge tracing: the ``timed`` model, and PFA, Best-LR and DAS3H as
variants of it.

P(correct) is a logistic function of features of the learner's past (Pavlik et al. 2009's PFA;
Choffin et al. 2019's DAS3H; Gervet et al. 2020's Best-LR), chosen by ``features``, a preset
name or a list of feature families:

========================  ====================================================================
family                    columns (weights per skill for the first four, shared otherwise)
========================  ====================================================================
``skill``                 the skill's easiness
``pfa``                   successes and failures on the skill (PFA's raw counts)
``skill-counts``          log(1 + attempts), log(1 + successes) on the skill
``skill-decay``           the same for counters decaying over an hour, a day, a week, 30 days
                          and never (DAS3H's time windows, see :mod:`timed_features`)
``item``                  the item's easiness
``total-counts``          log(1 + attempts), log(1 + successes) over all the learner's answers
``total-decay``           the same for the decaying counters
``item-decay``            the decaying counters of the learner's earlier answers to this item
``lags``                  whether, and log(1 + seconds) since, the item, its skills (mean) and
                          anything were last practised
``recent``                the learner's correctness share, answers weighted by 0.5 ... 0.97 to
                          the power of the answers since (logit, smoothed)
``ability``               Elo abilities (steps 0.05, 0.2, 0.5) against the items' easiness
========================  ====================================================================

Presets: ``pfa`` (skill, pfa), ``best-lr`` (item, skill, skill-counts, total-counts), ``das3h``
(item, skill, skill-decay) and ``timed``, the recommended model (every family but ``pfa``, the
plain counts, which the decaying ones contain, and ``lags``, which was measured to lower the
AUC); ``bench/README.md`` gives what each family was measured to be worth. An item practising
several skills adds up its skills' terms (DAS3H's sum).

Fitting is one L2-regularized logistic regression (scikit-learn's lbfgs) on a sparse design
matrix, columns scaled to unit spread (the scales are folded into the weights afterwards). The
items' easiness that the Elo abilities run against is the training log's smoothed logit success
rate per item. Skills and items the fit never saw get the mean weights; online, a skill the model
does not know is refused (the contract), an unknown item is served with the mean item weight and
its history still counts.

Online, a learner's state holds the decaying counters (overall, per skill, and per item for the
``max_items`` items answered most recently), the ``recent`` counters and the abilities. The items'
counters are what would grow with a learner's history: a learner who answers thousands of
distinct items would carry, decode and encode an entry for each on every answer, and each of
those answers would cost more. So the state keeps a recency list of at most ``max_items``
entries (default :data:`MAX_ITEMS`): answering an item moves its entry to the end, and a new
item beyond the bound evicts the entry of the item answered least recently, which then counts
as never answered (its counters start afresh if it comes back). The batch side applies the
same rule (:func:`timed_features.recency_keys`), so online still equals batch, and a learner
under the bound is predicted exactly as without it. The item entries are two arrays, keys
(64-bit BLAKE2b digests of the ids: two items of one learner's list share an entry with
probability below 1e-11 at 10,000 items) and counters, so the state's bytes are
``frombuffer`` and ``tobytes`` of them, and the candidates' counters are gathered by a sorted
search, with no Python loop over the learner's items. The skills' entries are bounded by the
model's skills and stay a persistent map (``immutables.Map``); an update shares it, where it
does not touch it, with the old state, which it leaves unchanged.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import immutables
import numpy as np
from scipy import sparse
from scipy.special import expit, logit

from engine.events import NO_TIMESTAMP, AnswerEvent, AnswerLog
from engine.tracing.base import Cached, DocumentTracer, FitProgress, NotFittedError
from engine.tracing.items import ItemIndex
from engine.tracing.timed_features import (
    ELO_RATES,
    RECENT_RATES,
    TIME_SCALES,
    Entry,
    add_answer,
    answer_times,
    decayed_counts,
    learner_summaries,
    read_entries,
    read_entry,
    recency_keys,
    scales_with_count,
    seconds,
)

SKILL_FAMILIES = ("skill", "pfa", "skill-counts", "skill-decay")
DENSE_FAMILIES = ("total-counts", "total-decay", "item-decay", "lags", "recent", "ability")
FAMILIES = (*SKILL_FAMILIES, "item", *DENSE_FAMILIES)
PRESETS: dict[str, tuple[str, ...]] = {
    "pfa": ("skill", "pfa"),
    "best-lr": ("item", "skill", "skill-counts", "total-counts"),
    "das3h": ("item", "skill", "skill-decay"),
    "timed": ("item", "skill", "skill-decay", "total-decay", "item-decay", "recent", "ability"),
}
FILE_FORMAT = "tutor-timed"
FILE_VERSION = 1
#: answers' worth of the overall success rate added to each item's when estimating its easiness
_EASINESS_PRIOR = 5.0
#: item entries a learner's state keeps by default (``max_items``; see the module's docstring):
#: at most 4,000 x 96 bytes of a state. Measured (5-fold by learner, pooled AUC) on ednet-heavy,
#: whose learners answered 6,409 to 10,355 distinct items: 0.7425 keeping 1,000, 0.7504 keeping
#: 2,000, 0.7507 keeping 3,000, 0.7522 keeping 4,000, 0.7511 keeping all; assist2017-timed's
#: learners answered 763 at most (nothing evicted)
MAX_ITEMS = 4000
#: version 2: the items' entries in recency order under their ids' digests (version 1, their
#: ids in no order, is refused: the service rebuilds such a state from the answer log)
_STATE_MAGIC = b"TLR2"
_KEY = np.dtype("<u8")


def item_key(item: str) -> int:
    """The 64-bit key of an item's entry in a learner's state: its id's BLAKE2b digest (stable
    across processes, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(item.encode(), digest_size=8).digest(), "little")


def resolve_features(features: str | Sequence[str]) -> tuple[str, ...]:
    """A preset name or a list of families as the families in canonical order; ValueError for
    anything else."""
    if isinstance(features, str):
        if features not in PRESETS:
            raise ValueError(f"unknown feature preset {features!r}; choose one of "
                             f"{', '.join(PRESETS)} or give a list of families "
                             f"({', '.join(FAMILIES)})")
        return PRESETS[features]
    unknown = [f for f in features if f not in FAMILIES]
    if unknown or not features:
        raise ValueError(f"unknown feature families {unknown!r}; choose among "
                         f"{', '.join(FAMILIES)}" if unknown else "give at least one family")
    return tuple(f for f in FAMILIES if f in features)


@dataclass(frozen=True, slots=True)
class TimedState:
    """One learner: the time of the last answer (seconds since the epoch; 0 before any),
    decaying counters overall (None before any answer) and per skill, the ``recent`` counters
    (attempts then wins) and Elo abilities, and the entries of the items answered most
    recently, least recent first: ``item_keys`` (:func:`item_key` of each id) and
    ``item_entries`` (one row of counters each). The arrays are read-only: states are
    values."""

    time: float
    total: Entry | None
    recent: tuple[float, ...]
    ability: tuple[float, ...]
    skills: immutables.Map[str, Entry]
    item_keys: np.ndarray
    item_entries: np.ndarray


@dataclass(frozen=True, eq=False)
class TimedParams:
    """Fitted weights, scales folded in: ``skill_w[k]`` the per-skill columns' weights of skill
    k (the last row: the mean, for unknown skills), ``item_w`` the items' (last: the mean),
    ``dense_w`` the shared columns', ``easiness`` the items' logit success rates (last: the
    overall rate's)."""

    skills: tuple[str, ...]
    items: tuple[str, ...]
    intercept: float
    skill_w: np.ndarray
    item_w: np.ndarray
    dense_w: np.ndarray
    easiness: np.ndarray


@dataclass(frozen=True, eq=False)
class _History:
    """What the features are computed from, one row per answer (batch) or candidate item
    (online): decayed counters (one column per scale), lags (-1: never), the ``recent``
    counters and the abilities."""

    total_a: np.ndarray
    total_w: np.ndarray
    total_lag: np.ndarray
    item_a: np.ndarray
    item_w: np.ndarray
    item_lag: np.ndarray
    skill_seen: np.ndarray
    skill_loglag: np.ndarray
    recent_a: np.ndarray
    recent_w: np.ndarray
    ability: np.ndarray


def _log_lag(lag: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(lag, 0.0))


def skill_columns(families: Sequence[str], attempts: np.ndarray, wins: np.ndarray) -> np.ndarray:
    """The per-skill columns of (answer, skill) pairs from their skill's decayed counters."""
    cols: list[np.ndarray] = []
    if "skill" in families:
        cols.append(np.ones((len(attempts), 1)))
    if "pfa" in families:
        cols += [wins[:, -1:], attempts[:, -1:] - wins[:, -1:]]
    if "skill-counts" in families:
        cols += [np.log1p(attempts[:, -1:]), np.log1p(wins[:, -1:])]
    if "skill-decay" in families:
        cols += [np.log1p(attempts), np.log1p(wins)]
    return np.hstack(cols) if cols else np.zeros((len(attempts), 0))


def dense_columns(families: Sequence[str], h: _History) -> np.ndarray:
    """The shared-weight columns of each row of ``h``."""
    n = len(h.item_lag)
    cols: list[np.ndarray] = []
    if "total-counts" in families:
        cols += [np.log1p(h.total_a[:, -1:]), np.log1p(h.total_w[:, -1:])]
    if "total-decay" in families:
        cols += [np.log1p(h.total_a), np.log1p(h.total_w)]
    if "item-decay" in families:
        cols += [np.log1p(h.item_a), np.log1p(h.item_w)]
    if "lags" in families:
        cols.append(np.column_stack([h.item_lag >= 0, _log_lag(h.item_lag), h.skill_seen,
                                     h.skill_loglag, h.total_lag >= 0, _log_lag(h.total_lag)]))
    if "recent" in families:
        cols.append(logit((h.recent_w + 0.5) / (h.recent_a + 1.0)))
    if "ability" in families:
        cols.append(h.ability)
    return np.hstack(cols).astype(np.float64) if cols else np.zeros((n, 0))


class TimedLR(DocumentTracer[TimedState]):
    """Logistic knowledge tracing on decaying practice counts; implements
    :class:`engine.tracing.base.Tracer` (see the module's docstring).

    ``features``: a preset (``timed``, ``das3h``, ``best-lr``, ``pfa``) or a list of families;
    ``c``: the inverse L2 strength (scikit-learn's C) on unit-scaled columns; ``time_scales``:
    the decay constants in seconds (a plain count is added); ``recent_rates`` and ``elo_rates``:
    the per-answer decay factors and Elo steps; ``max_iter``: lbfgs iterations at most;
    ``max_items``: the item entries a learner's state keeps, those of the items answered most
    recently (the bound on a state's size and on an answer's cost; fitting applies it too).
    The fit is deterministic: ``seed`` is taken (every model takes one) and changes nothing.
    """

    def __init__(self, *, features: str | Sequence[str] = "timed", c: float = 1.0,
                 time_scales: Sequence[float] = TIME_SCALES,
                 recent_rates: Sequence[float] = RECENT_RATES,
                 elo_rates: Sequence[float] = ELO_RATES, max_iter: int = 500,
                 max_items: int = MAX_ITEMS, seed: int | None = None) -> None:
        self.families = resolve_features(features)
        if not c > 0:
            raise ValueError(f"c must be positive, got {c}")
        if any(not (s > 0 and math.isfinite(s)) for s in time_scales):
            raise ValueError(f"time_scales must be positive seconds, got {list(time_scales)}")
        if any(not 0 < r < 1 for r in recent_rates):
            raise ValueError(f"recent_rates must lie in (0, 1), got {list(recent_rates)}")
        if any(not r > 0 for r in elo_rates):
            raise ValueError(f"elo_rates must be positive, got {list(elo_rates)}")
        if max_iter < 1:
            raise ValueError("max_iter must be at least 1")
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ValueError(f"max_items must be a whole number of at least 1, got "
                             f"{max_items!r}")
        self.features = features if isinstance(features, str) else tuple(features)
        self.c = float(c)
        self.time_scales = tuple(float(s) for s in time_scales)
        self.recent_rates = tuple(float(r) for r in recent_rates)
        self.elo_rates = tuple(float(r) for r in elo_rates)
        self.max_iter = max_iter
        self.max_items = max_items
        self.seed = seed
        self.name = next((p for p, f in PRESETS.items() if f == self.families), "timed")
        self._scales = scales_with_count(self.time_scales)
        self._scale_list = [float(s) for s in self._scales]
        self.params_: TimedParams | None = None
        self._skill_index: dict[str, int] = {}
        self._item_index: dict[str, int] = {}
        self._views = Cached()
        self._skill_items = Cached()
        self.fit_info_: dict[str, Any] = {}

    def get_options(self) -> dict[str, Any]:
        return {"features": self.features, "c": self.c, "time_scales": self.time_scales,
                "recent_rates": self.recent_rates, "elo_rates": self.elo_rates,
                "max_iter": self.max_iter, "max_items": self.max_items, "seed": self.seed}

    # ================================================================== batch side
    def fit(self, log: AnswerLog, *, valid: AnswerLog | None = None,
            progress: FitProgress | None = None) -> Self:
        """One regularized logistic regression on ``log``; ``valid`` is not used (nothing stops
        early)."""
        from sklearn.linear_model import LogisticRegression

        if len(log) == 0:
            raise ValueError(f"cannot fit {self.name} on an empty log")
        y = log.correct.astype(np.float64)
        if y.min() == y.max():
            raise ValueError(f"cannot fit {self.name}: every answer of the log is "
                             f"{'right' if y[0] else 'wrong'}")
        if progress is not None:
            progress(0, 1, f"fitting {self.name} on {len(log):,} answers", {})
        skills = tuple(str(s) for s in log.skill_ids[np.unique(log.skill_codes)])
        items = tuple(str(i) for i in log.item_ids[np.unique(log.item)])
        easiness = _easiness(log, items)
        skill_of, item_of = _codes(log, {s: k for k, s in enumerate(skills)},
                                   {i: k for k, i in enumerate(items)})
        pair_x, dense_x = self._columns(log, easiness[item_of[log.item]])
        n_skill_cols, n_dense = pair_x.shape[1], dense_x.shape[1]
        pair_scale = _unit_scale(pair_x, keep_ones=True)
        dense_scale = _unit_scale(dense_x, keep_ones=False)
        x = _design(log, skill_of[log.skill_codes], len(skills),
                    item_of[log.item] if "item" in self.families else None, len(items),
                    pair_x * pair_scale, dense_x * dense_scale)
        model = LogisticRegression(C=self.c, max_iter=self.max_iter, tol=1e-5)
        model.fit(x, y)
        coef = model.coef_[0]
        n_skills = len(skills)
        skill_w = coef[:n_skills * n_skill_cols].reshape(n_skills, n_skill_cols) * pair_scale
        item_w = (coef[n_skills * n_skill_cols:n_skills * n_skill_cols + len(items)]
                  if "item" in self.families else np.zeros(len(items)))
        dense_w = coef[len(coef) - n_dense:] * dense_scale
        self._install(TimedParams(
            skills, items, float(model.intercept_[0]),
            np.vstack([skill_w, skill_w.mean(axis=0, keepdims=True)]),
            np.append(item_w, item_w.mean()), dense_w, easiness))
        self.fit_info_ = {"iterations": int(model.n_iter_[0]), "columns": x.shape[1]}
        if progress is not None:
            progress(1, 1, f"fitted {self.name}", {})
        return self

    def fit_summary(self) -> str:
        if not self.fit_info_:
            return ""
        return (f"{self.fit_info_['columns']:,} columns, lbfgs {self.fit_info_['iterations']} "
                "iterations")

    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """One-step-ahead P(correct) per answer at the answer's time; unknown skills and items
        take the mean weights."""
        params = self._fitted()
        if len(log) == 0:
            return np.zeros(0)
        skill_of, item_of = _codes(log, self._skill_index, self._item_index)
        pair_x, dense_x = self._columns(log, params.easiness[item_of[log.item]])
        pair_logit = np.einsum("ij,ij->i", pair_x, params.skill_w[skill_of[log.skill_codes]])
        z = (params.intercept + params.item_w[item_of[log.item]] + dense_x @ params.dense_w
             + np.add.reduceat(pair_logit, log.skill_ptr[:-1]))
        return np.asarray(expit(z))

    @property
    def skills(self) -> tuple[str, ...]:
        return self._fitted().skills

    def _columns(self, log: AnswerLog, easiness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The per-skill columns of every (answer, skill) pair and the shared columns of every
        answer, from the counters of the learner's earlier answers in ``log`` (``easiness``: of
        each answer's item, for the Elo abilities)."""
        n = len(log)
        y = log.correct.astype(np.float64)
        t = answer_times(log.learner, log.timestamp_ns, NO_TIMESTAMP)
        learner = log.learner.astype(np.int64)
        counts = np.diff(log.skill_ptr)
        pair_row = np.repeat(np.arange(n), counts)
        pair_key = learner[pair_row] * max(len(log.skill_ids), 1) + log.skill_codes
        skill_a, skill_w, skill_lag = decayed_counts(pair_key, t[pair_row], y[pair_row],
                                                     self._scales)
        total_a, total_w, total_lag = decayed_counts(learner, t, y, self._scales)
        item_a, item_w, item_lag = decayed_counts(
            recency_keys(learner, log.item, self.max_items), t, y, self._scales)
        recent_a, recent_w, ability = learner_summaries(
            learner, y, easiness, self.recent_rates, self.elo_rates)
        starts = log.skill_ptr[:-1]
        history = _History(
            total_a, total_w, total_lag, item_a, item_w, item_lag,
            np.add.reduceat((skill_lag >= 0).astype(np.float64), starts) / counts,
            np.add.reduceat(_log_lag(skill_lag), starts) / counts,
            recent_a, recent_w, ability)
        return skill_columns(self.families, skill_a, skill_w), dense_columns(self.families,
                                                                             history)

    # ================================================================== online side
    def new_state(self) -> TimedState:
        self._fitted()
        width = 1 + 2 * len(self._scales)
        return TimedState(0.0, None, (0.0,) * (2 * len(self.recent_rates)),
                          (0.0,) * len(self.elo_rates), immutables.Map(),
                          _frozen(np.zeros(0, dtype=_KEY)), _frozen(np.zeros((0, width))))

    def update(self, state: TimedState, event: AnswerEvent) -> TimedState:
        params = self._fitted()
        for skill in event.skills:
            self._index_of(skill)
        at = state.time if event.timestamp is None else seconds(event.timestamp)
        y = 1.0 if event.correct else 0.0
        scales = self._scale_list
        with state.skills.mutate() as skills:
            for skill in event.skills:
                skills[skill] = add_answer(skills.get(skill), at, y, scales)
            new_skills = skills.finish()
        r = len(self.recent_rates)
        recent = (*[a * rate + 1.0 for a, rate in zip(state.recent[:r], self.recent_rates,
                                                       strict=True)],
                  *[w * rate + y for w, rate in zip(state.recent[r:], self.recent_rates,
                                                     strict=True)])
        easiness = float(params.easiness[self._item_index.get(event.item, -1)])
        ability = tuple(theta + k * (y - 1.0 / (1.0 + math.exp(-(theta + easiness))))
                        for theta, k in zip(state.ability, self.elo_rates, strict=True))
        keys, entries = state.item_keys, state.item_entries
        key = item_key(event.item)
        found = np.flatnonzero(keys == key)
        if len(found):  # moves to the end of the recency list
            j = int(found[0])
            old: Entry | None = tuple(entries[j].tolist())
            kept = [slice(0, j), slice(j + 1, len(keys))]
        else:  # beyond the bound, the least recently answered item leaves
            old = None
            kept = [slice(max(len(keys) - self.max_items + 1, 0), len(keys))]
        entry = np.array([add_answer(old, at, y, scales)])
        # one copy of each array: the old state's stay as they are
        return TimedState(at, add_answer(state.total, at, y, scales), recent, ability,
                          new_skills,
                          _frozen(np.concatenate([*(keys[k] for k in kept),
                                                  np.array([key], dtype=_KEY)])),
                          _frozen(np.concatenate([*(entries[k] for k in kept), entry])))

    def item_entry(self, state: TimedState, item: str) -> Entry | None:
        """The counters the state holds for ``item`` (None: never answered, or no longer among
        the ``max_items`` answered most recently)."""
        found = np.flatnonzero(state.item_keys == item_key(item))
        return tuple(state.item_entries[found[0]].tolist()) if len(found) else None

    def predict_correct(self, state: TimedState, item: str, skills: Sequence[str], *,
                        at: datetime | None = None) -> float:
        if not skills:
            raise ValueError(f"item {item!r} needs at least one skill")
        index = [self._index_of(s) for s in skills]
        view = _ItemView(np.array(index, dtype=np.intp), np.arange(len(skills)),
                         np.array([0, len(skills)]),
                         np.array([self._item_index.get(item, len(self._fitted().items))]),
                         np.array([len(skills)]), tuple(skills),
                         np.array([item_key(item)], dtype=_KEY), np.zeros(1, dtype=np.intp))
        return float(self._predict(state, view, at)[0])

    def predict_items(self, state: TimedState, items: ItemIndex, *,
                      at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        return self._predict(state, view, at)

    def _predict(self, state: TimedState, view: _ItemView, at: datetime | None) -> np.ndarray:
        """P(correct) of the view's items at ``at``: the same columns as :meth:`predict_log`'s,
        read from the state's counters."""
        params = self._fitted()
        when = state.time if at is None else seconds(at)
        scales = self._scale_list
        n_items, n_scales = len(view.item_code), len(scales)
        skill_a = np.zeros((len(view.skill_ids), n_scales))
        skill_w = np.zeros_like(skill_a)
        skill_lag = np.full(len(view.skill_ids), -1.0)
        for k, skill in enumerate(view.skill_ids):
            entry = state.skills.get(skill)
            if entry is not None:
                skill_a[k], skill_w[k], skill_lag[k] = read_entry(entry, when, scales)
        pair = view.pair_skill
        skill_term = np.einsum("ij,ij->i", skill_columns(self.families, skill_a, skill_w),
                               params.skill_w[view.skill_code])
        item_a = np.zeros((n_items, n_scales))
        item_w = np.zeros_like(item_a)
        item_lag = np.full(n_items, -1.0)
        if len(state.item_keys) and len(view.key_sorted):
            # the state's entries among the candidates: a sorted search, no loop over either
            slot = np.minimum(np.searchsorted(view.key_sorted, state.item_keys),
                              len(view.key_sorted) - 1)
            hit = view.key_sorted[slot] == state.item_keys
            if hit.any():
                where = view.key_position[slot[hit]]
                item_a[where], item_w[where], item_lag[where] = read_entries(
                    state.item_entries[hit], when, self._scales)
        total_a, total_w, total_lag = read_entry(state.total, when, scales)
        r = len(self.recent_rates)
        starts = view.pair_ptr[:-1]
        history = _History(
            np.tile(total_a, (n_items, 1)), np.tile(total_w, (n_items, 1)),
            np.full(n_items, total_lag), item_a, item_w, item_lag,
            np.add.reduceat((skill_lag[pair] >= 0).astype(np.float64), starts) / view.count,
            np.add.reduceat(_log_lag(skill_lag[pair]), starts) / view.count,
            np.tile(state.recent[:r], (n_items, 1)), np.tile(state.recent[r:], (n_items, 1)),
            np.tile(state.ability, (n_items, 1)))
        z = (params.intercept + params.item_w[view.item_code]
             + dense_columns(self.families, history) @ params.dense_w
             + np.add.reduceat(skill_term[pair], starts))
        return np.asarray(expit(z))

    def mastery(self, state: TimedState, skills: Sequence[str] | None = None, *,
                at: datetime | None = None) -> dict[str, float]:
        """P(correct) at ``at`` on an item of the skill alone that the learner has not met, with
        the mean item weight: what the learner is expected to manage on the skill now."""
        wanted = self._fitted().skills if skills is None else tuple(skills)
        if not wanted:
            return {}
        values = self.predict_items(state, _skill_items(wanted), at=at)
        return dict(zip(wanted, values.tolist(), strict=True))

    def mastery_of(self, state: TimedState, items: ItemIndex, *,
                   at: datetime | None = None) -> np.ndarray:
        skill_items: ItemIndex = self._skill_items.get(
            items, lambda index: _skill_items(index.skill_ids))
        return self.predict_items(state, skill_items, at=at)

    def state_to_bytes(self, state: TimedState) -> bytes:
        """Header, the floats (scalars, one row per skill entry, one per item entry, least
        recent first), the item keys, the skill ids' lengths, the skill ids (UTF-8): at most
        ``max_items`` x 96 bytes for the items, whatever the learner's history."""
        width = 1 + 2 * len(self._scales)
        skills = list(state.skills.keys())
        scalars = np.array([state.time, *(state.total or (0.0,) * width), *state.recent,
                            *state.ability], dtype="<f8")
        skill_entries = np.array(list(state.skills.values()), dtype="<f8")
        encoded = [k.encode() for k in skills]
        return b"".join((_STATE_MAGIC,
                         struct.pack("<BII", state.total is not None, len(skills),
                                     len(state.item_keys)),
                         scalars.tobytes(), skill_entries.tobytes(),
                         state.item_entries.astype("<f8", copy=False).tobytes(),
                         state.item_keys.astype(_KEY, copy=False).tobytes(),
                         np.fromiter(map(len, encoded), dtype="<u4",
                                     count=len(skills)).tobytes(),
                         *encoded))

    def state_from_bytes(self, data: bytes) -> TimedState:
        """The state in ``data``; ValueError for bytes that are not one of this model's states
        (another model's, damaged, or values no state holds)."""
        params = self._fitted()
        head = len(_STATE_MAGIC) + struct.calcsize("<BII")
        if len(data) < head or data[:len(_STATE_MAGIC)] != _STATE_MAGIC:
            raise ValueError("not a timed-model state (wrong header)")
        has_total, n_skills, n_items = struct.unpack_from("<BII", data, len(_STATE_MAGIC))
        if n_items > self.max_items:
            raise ValueError(f"a timed-model state of {n_items:,} items; this model keeps "
                             f"{self.max_items:,} at most (max_items)")
        width = 1 + 2 * len(self._scales)
        r, e = 2 * len(self.recent_rates), len(self.elo_rates)
        n_floats = 1 + width + r + e + width * (n_skills + n_items)
        keys_at = head + 8 * n_floats
        ids_at = keys_at + 8 * n_items + 4 * n_skills
        if has_total > 1 or len(data) < ids_at:
            raise ValueError(f"a timed-model state of {n_skills:,} skills and {n_items:,} items "
                             f"needs more than the {len(data)} bytes given")
        floats = np.frombuffer(data, dtype="<f8", count=n_floats, offset=head)
        keys = np.frombuffer(data, dtype=_KEY, count=n_items, offset=keys_at)
        ends = ids_at + np.cumsum(np.frombuffer(data, dtype="<u4", count=n_skills,
                                                offset=keys_at + 8 * n_items), dtype=np.int64)
        if (ends[-1] if n_skills else ids_at) != len(data):
            raise ValueError(f"a timed-model state whose ids take {len(data) - ids_at} bytes, "
                             "not what their lengths say")
        try:
            starts = [ids_at, *ends[:-1].tolist()] if n_skills else []  # (a new state: none)
            skills = [data[a:b].decode() for a, b in zip(starts, ends.tolist(), strict=True)]
        except UnicodeDecodeError:
            raise ValueError("a timed-model state whose ids are not UTF-8") from None
        _check_state_values(floats, width, r, e, bool(has_total))
        unknown = [s for s in skills if s not in self._skill_index]
        ordered = np.sort(keys)
        if unknown or len(set(skills)) < n_skills or np.any(ordered[1:] == ordered[:-1]):
            raise ValueError("a timed-model state with repeated ids or skills this model does "
                             f"not know ({', '.join(map(repr, unknown[:3]))}; it knows "
                             f"{len(params.skills)})")
        entries = floats[1 + width + r + e:].reshape(-1, width)
        return TimedState(
            float(floats[0]), tuple(floats[1:1 + width].tolist()) if has_total else None,
            tuple(floats[1 + width:1 + width + r].tolist()),
            tuple(floats[1 + width + r:1 + width + r + e].tolist()),
            immutables.Map(zip(skills, map(tuple, entries[:n_skills].tolist()), strict=True)),
            keys, entries[n_skills:])

    # ================================================================== persistence
    def _document(self) -> dict[str, Any]:
        p = self._fitted()
        options = {k: (list(v) if isinstance(v, tuple) else v)
                   for k, v in self.get_options().items()}
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "model": self.name,
                "options": options, "skills": list(p.skills), "items": list(p.items),
                "intercept": p.intercept, "skill_w": p.skill_w.tolist(),
                "item_w": p.item_w.tolist(), "dense_w": p.dense_w.tolist(),
                "easiness": p.easiness.tolist()}

    @classmethod
    def _from_document(cls, doc: Any, source: str) -> Self:
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise ValueError(f"{source}: not a {FILE_FORMAT} file")
        if doc.get("version") != FILE_VERSION:
            raise ValueError(f"{source}: {FILE_FORMAT} version {doc.get('version')!r}; this "
                             f"engine reads version {FILE_VERSION}")
        try:
            tracer = cls(**doc["options"])
            params = TimedParams(
                tuple(map(str, doc["skills"])), tuple(map(str, doc["items"])),
                float(doc["intercept"]), np.array(doc["skill_w"], dtype=np.float64),
                np.array(doc["item_w"], dtype=np.float64),
                np.array(doc["dense_w"], dtype=np.float64),
                np.array(doc["easiness"], dtype=np.float64))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: a damaged {FILE_FORMAT} file ({exc!r})") from None
        _check_params(params, source)
        return tracer._install(params)

    # ================================================================== internals
    def _install(self, params: TimedParams) -> Self:
        self.params_ = params
        self._skill_index = {s: k for k, s in enumerate(params.skills)}
        self._item_index = {i: k for k, i in enumerate(params.items)}
        self._views.clear()
        self._skill_items.clear()
        return self

    def _fitted(self) -> TimedParams:
        if self.params_ is None:
            raise NotFittedError(f"this {self.name} model is not fitted: call fit() or load() "
                                 "first")
        return self.params_

    def _index_of(self, skill: str) -> int:
        try:
            return self._skill_index[skill]
        except KeyError:
            raise KeyError(f"skill {skill!r} is not in this {self.name} model "
                           f"({len(self._skill_index)} skills)") from None

    def _view(self, items: ItemIndex) -> _ItemView:
        skill_code = np.array([self._index_of(s) for s in items.skill_ids], dtype=np.intp)
        fallback = len(self._fitted().items)
        # an empty id (the skills' stand-in items of ``mastery``) is no item: no key
        position = np.array([k for k, i in enumerate(items.item_ids) if i], dtype=np.intp)
        keys = np.array([item_key(items.item_ids[k]) for k in position], dtype=_KEY)
        order = np.argsort(keys, kind="stable")
        return _ItemView(
            skill_code, items.pair_skill, items.pair_ptr,
            np.array([self._item_index.get(i, fallback) for i in items.item_ids], dtype=np.intp),
            items.pair_count, items.skill_ids, keys[order], position[order])


def _codes(log: AnswerLog, skill_index: dict[str, int],
           item_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The log's skill and item codes mapped to a model's indices (the fallback, one past the
    last, for those it does not know)."""
    skill_of = np.array([skill_index.get(str(s), len(skill_index)) for s in log.skill_ids],
                        dtype=np.intp)
    item_of = np.array([item_index.get(str(i), len(item_index)) for i in log.item_ids],
                       dtype=np.intp)
    return skill_of, item_of


def _design(log: AnswerLog, pair_skill: np.ndarray, n_skills: int, item: np.ndarray | None,
            n_items: int, pair_x: np.ndarray, dense_x: np.ndarray) -> sparse.csr_matrix:
    """[per-skill columns of each skill | item one-hot (when ``item`` is given) | shared
    columns], one row per answer; a row's pairs on the same columns add up."""
    n, n_cols = len(log), pair_x.shape[1]
    pair_row = np.repeat(np.arange(n), np.diff(log.skill_ptr))
    blocks = [sparse.csr_matrix(
        (pair_x.ravel(), (np.repeat(pair_row, n_cols),
                          (pair_skill[:, None] * n_cols + np.arange(n_cols)).ravel())),
        shape=(n, n_skills * n_cols))]
    if item is not None:
        blocks.append(sparse.csr_matrix((np.ones(n), (np.arange(n), item)), shape=(n, n_items)))
    blocks.append(sparse.csr_matrix(dense_x))
    return sparse.hstack(blocks, format="csr")


@dataclass(frozen=True, eq=False)
class _ItemView:
    """Candidate items on one fitted model: the model index of each skill (``skill_ids``
    order), each item's skills as CSR (``pair_skill`` into ``skill_ids``), each item's model
    index, and the items' keys (:func:`item_key`) sorted, with each one's position."""

    skill_code: np.ndarray
    pair_skill: np.ndarray
    pair_ptr: np.ndarray
    item_code: np.ndarray
    count: np.ndarray
    skill_ids: tuple[str, ...]
    key_sorted: np.ndarray
    key_position: np.ndarray


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array``, read-only: a state's arrays are shared by the states made from it."""
    array.flags.writeable = False
    return array


def _skill_items(skills: Sequence[str]) -> ItemIndex:
    """One item per skill that no learner has met (the id cannot be an item's: ids are
    non-empty), practising that skill alone."""
    return ItemIndex((("", (s,)) for s in skills), skills)


def _easiness(log: AnswerLog, items: tuple[str, ...]) -> np.ndarray:
    """Each item's logit success rate, shrunk towards the overall rate (the last entry)."""
    base = float(log.correct.mean())
    position = {str(i): k for k, i in enumerate(log.item_ids)}
    codes = np.array([position[i] for i in items], dtype=np.intp)
    answered = np.bincount(log.item, minlength=len(log.item_ids))[codes]
    right = np.bincount(log.item, weights=log.correct, minlength=len(log.item_ids))[codes]
    rate = (right + _EASINESS_PRIOR * base) / (answered + _EASINESS_PRIOR)
    return np.append(logit(rate), logit(base))


def _unit_scale(x: np.ndarray, *, keep_ones: bool) -> np.ndarray:
    """Per column, the factor that brings its spread to 1 (a column of ones, the skill
    easiness, stays: its spread is 0)."""
    if x.shape[1] == 0:
        return np.ones(0)
    spread = x.std(axis=0)
    if keep_ones:
        spread[np.all(x == 1.0, axis=0)] = 1.0
    return 1.0 / np.where(spread > 1e-12, spread, 1.0)


def _check_params(p: TimedParams, source: str) -> None:
    if (p.skill_w.ndim != 2 or len(p.skill_w) != len(p.skills) + 1
            or p.item_w.shape != (len(p.items) + 1,)
            or p.easiness.shape != (len(p.items) + 1,) or p.dense_w.ndim != 1):
        raise ValueError(f"{source}: a {FILE_FORMAT} file whose weights do not match its "
                         "skills and items")
    for name in ("skill_w", "item_w", "dense_w", "easiness"):
        if not np.all(np.isfinite(getattr(p, name))):
            raise ValueError(f"{source}: a {FILE_FORMAT} file with a {name} that is not finite")


def _check_state_values(floats: np.ndarray, width: int, r: int, e: int, has_total: bool) -> None:
    """Refuse values no state holds: non-finite, negative counts, more wins than attempts, a
    time or an ability far outside what answers produce."""
    if not np.all(np.isfinite(floats)):
        raise ValueError("a timed-model state holds NaN or infinity")
    entries = np.vstack([floats[1:1 + width][None, :] if has_total else np.zeros((0, width)),
                         floats[1 + width + r + e:].reshape(-1, width)])
    n = (width - 1) // 2
    attempts, wins = entries[:, 1:1 + n], entries[:, 1 + n:]
    recent = floats[1 + width:1 + width + r]
    times = np.append(entries[:, 0], floats[0])
    if (np.any(attempts < 0) or np.any(wins < 0) or np.any(wins > attempts * (1 + 1e-9) + 1e-9)
            or np.any(attempts > 1e9) or np.any(recent < 0) or np.any(recent > 1e9)
            or np.any(np.abs(times) > 1e12)
            or np.any(np.abs(floats[1 + width + r:1 + width + r + e]) > 1e6)):
        raise ValueError("a timed-model state holds values no learner's answers produce")

