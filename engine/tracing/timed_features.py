"""What the ``timed`` models know of a learner's past: practice counts that decay with time.

DAS3H (Choffin et al. 2019) counts a learner's attempts and successes on a skill in time
windows (the last hour, day, week, month, ever). A hard window needs every answer's time until it
leaves the window, an unbounded queue per learner and skill; here each window is an
exponentially decaying counter instead, ``A_tau(t) = sum over earlier answers j of
exp(-(t - t_j) / tau)`` (``tau`` = infinity: the plain count). One such counter is a number and
the time it was last updated, read at any time ``t`` by one multiplication, so a learner's state
holds one small entry per skill and per item practised (the items: those answered most recently,
:func:`recency_keys`), an update touches a few of them, and a prediction can be asked for any
moment. Measured on assist2017-timed with the full feature set,
decaying counters and hard windows of the same lengths predict alike (pooled AUC 0.7733 and
0.7730, 5-fold by learner).

The same counters are kept per learner (all answers), per learner and skill, and per learner and
item; with the time since the key was last practised (``lag``). Two more summaries of the
learner as a whole: correctness shares decaying with the number of answers since (``recent``),
and an Elo ability (``ability``) updated against the items' easiness.

This module holds the batch side (numba kernels over a whole log) and the online side (pure
functions of one entry), written from the same formulas so that they agree to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numba
import numpy as np

#: decay time constants in seconds: an hour, a day, a week, 30 days (DAS3H's windows); the plain
#: count (infinity) is always added last
TIME_SCALES = (3600.0, 86400.0, 604800.0, 2592000.0)
#: per-answer decay factors of the ``recent`` correctness shares
RECENT_RATES = (0.5, 0.7, 0.9, 0.97)
#: Elo step sizes of the ``ability`` estimates
ELO_RATES = (0.05, 0.2, 0.5)


def scales_with_count(time_scales: Sequence[float]) -> np.ndarray:
    """The decay constants of the counters: ``time_scales`` then infinity (the plain count)."""
    return np.array([*time_scales, math.inf], dtype=np.float64)


# ================================================================== batch side
@numba.njit(cache=True, error_model="numpy")
def _decayed_counts(order: np.ndarray, key: np.ndarray, t: np.ndarray, y: np.ndarray,
                    scales: np.ndarray, attempts: np.ndarray, wins: np.ndarray,
                    lag: np.ndarray) -> None:
    """For each row (visited in ``order``: grouped by ``key``, chronological within a key), the
    decayed attempts and wins of the same key's earlier rows at the row's time, and the time
    since the key's previous row (-1 for its first)."""
    n_scales = len(scales)
    a = np.zeros(n_scales)
    w = np.zeros(n_scales)
    previous = -1
    last = 0.0
    for j in range(len(order)):
        r = order[j]
        if key[r] != previous:
            previous = key[r]
            a[:] = 0.0
            w[:] = 0.0
            lag[r] = -1.0
            dt = 0.0
        else:
            dt = max(t[r] - last, 0.0)
            lag[r] = dt
        for q in range(n_scales):
            f = math.exp(-dt / scales[q])
            a[q] *= f
            w[q] *= f
            attempts[r, q] = a[q]
            wins[r, q] = w[q]
            a[q] += 1.0
            w[q] += y[r]
        last = t[r]


def decayed_counts(key: np.ndarray, t: np.ndarray, y: np.ndarray, scales: np.ndarray,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: decayed attempts and wins (one column per scale) of the earlier rows with the
    same ``key`` at the row's time ``t`` (seconds), and the seconds since the key's previous row
    (-1 when there is none). Rows are in log order, chronological within each key."""
    n = len(key)
    order = np.argsort(key, kind="stable")
    attempts = np.zeros((n, len(scales)))
    wins = np.zeros((n, len(scales)))
    lag = np.zeros(n)
    _decayed_counts(order, np.asarray(key, dtype=np.int64), t, y.astype(np.float64), scales,
                    attempts, wins, lag)
    return attempts, wins, lag


@numba.njit(cache=True)
def _recency_keys(order: np.ndarray, learner: np.ndarray, item: np.ndarray, n_items: int,
                  capacity: int, out: np.ndarray) -> None:
    """For each row (visited in ``order``: grouped by learner, log order within), the position
    in ``order`` of the first row of its run: the rows of one learner and item since the item
    last entered a recency list of ``capacity`` entries. The item has left the list when
    ``capacity`` other distinct items were answered since its previous row, counted by a
    Fenwick tree over positions holding a 1 at each item's latest row."""
    n = len(order)
    tree = np.zeros(n + 1, dtype=np.int64)
    latest = np.full(n_items, -1, dtype=np.int64)  # position of each item's latest row
    run = np.zeros(n_items, dtype=np.int64)  # position of the first row of each item's run
    previous = -1
    first = 0  # position of the learner's first row
    for p in range(n):
        r = order[p]
        if learner[r] != previous:
            previous = learner[r]
            first = p
        i = item[r]
        q = latest[i]
        if q < first:  # the learner's first answer to the item
            run[i] = p
        else:
            # distinct items answered after position q: the 1s in (q, p)
            between = 0
            k = p
            while k > 0:
                between += tree[k]
                k -= k & -k
            k = q + 1
            while k > 0:
                between -= tree[k]
                k -= k & -k
            if between >= capacity:
                run[i] = p
            k = q + 1  # the item's latest row moves from q to p
            while k <= n:
                tree[k] -= 1
                k += k & -k
        k = p + 1
        while k <= n:
            tree[k] += 1
            k += k & -k
        latest[i] = p
        out[r] = run[i]


def recency_keys(learner: np.ndarray, item: np.ndarray, capacity: int) -> np.ndarray:
    """Per row (log order, chronological within each learner), a key shared by the rows of
    one learner and item for as long as the item stays among the learner's ``capacity`` most
    recently answered distinct items: what the online state's recency list keeps. An item
    that drops out of the list starts a new key when it is answered again, so its counters
    start afresh, as the online side's do."""
    n = len(learner)
    order = np.argsort(learner, kind="stable")
    out = np.zeros(n, dtype=np.int64)
    n_items = int(item.max()) + 1 if n else 0
    _recency_keys(order, learner.astype(np.int64), item.astype(np.int64), n_items, capacity,
                  out)
    return out


@numba.njit(cache=True, error_model="numpy")
def _learner_summaries(learner: np.ndarray, y: np.ndarray, easiness: np.ndarray,
                       rates: np.ndarray, elo: np.ndarray, recent_a: np.ndarray,
                       recent_w: np.ndarray, ability: np.ndarray) -> None:
    """The ``recent`` shares' counters and the Elo abilities before each row; rows grouped by
    learner (the order of a log in learner order)."""
    a = np.zeros(len(rates))
    w = np.zeros(len(rates))
    theta = np.zeros(len(elo))
    previous = -1
    for r in range(len(learner)):
        if learner[r] != previous:
            previous = learner[r]
            a[:] = 0.0
            w[:] = 0.0
            theta[:] = 0.0
        for q in range(len(rates)):
            recent_a[r, q] = a[q]
            recent_w[r, q] = w[q]
            a[q] = a[q] * rates[q] + 1.0
            w[q] = w[q] * rates[q] + y[r]
        for q in range(len(elo)):
            ability[r, q] = theta[q]
            theta[q] += elo[q] * (y[r] - 1.0 / (1.0 + math.exp(-(theta[q] + easiness[r]))))


def learner_summaries(learner: np.ndarray, y: np.ndarray, easiness: np.ndarray,
                      rates: Sequence[float], elo: Sequence[float],
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, before the answer: the counters of the ``recent`` correctness shares (attempts,
    wins, decaying by ``rates`` per answer) and the Elo abilities (step sizes ``elo``) of the
    row's learner, each answer to an item of ``easiness`` (logit) moving them. Rows in log order:
    a learner's rows are visited in it."""
    n = len(learner)
    order = np.argsort(learner, kind="stable")
    recent_a = np.zeros((n, len(rates)))
    recent_w = np.zeros((n, len(rates)))
    ability = np.zeros((n, len(elo)))
    out = (recent_a, recent_w, ability)
    grouped = tuple(np.empty_like(o) for o in out)
    _learner_summaries(learner[order].astype(np.int64), y[order].astype(np.float64),
                       easiness[order], np.asarray(rates, dtype=np.float64),
                       np.asarray(elo, dtype=np.float64), *grouped)
    for o, g in zip(out, grouped, strict=True):
        o[order] = g
    return out


@numba.njit(cache=True)
def _fill_times(learner: np.ndarray, order: np.ndarray, t: np.ndarray, known: np.ndarray) -> None:
    previous = -1
    last = 0.0
    for j in range(len(order)):
        r = order[j]
        if learner[r] != previous:
            previous = learner[r]
            last = 0.0
        if known[r]:
            last = t[r]
        else:
            t[r] = last


def answer_times(learner: np.ndarray, timestamp_ns: np.ndarray, missing: int) -> np.ndarray:
    """Each answer's time in seconds since the epoch, in whole microseconds (what a ``datetime``
    holds, so that both sides compute with the same numbers: :func:`seconds`); an answer
    without one (``missing``) takes its learner's previous answer's time (0 for a first
    answer), as the online side does."""
    known = timestamp_ns != missing
    t = (np.where(known, timestamp_ns, 0) + 500) // 1000 / 1e6
    if not np.all(known):
        _fill_times(learner.astype(np.int64), np.argsort(learner, kind="stable"), t, known)
    return t


# ================================================================== online side
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def seconds(when: datetime) -> float:
    """``when`` in seconds since the epoch, computed like :func:`answer_times` (whole
    microseconds over 1e6), so that online and batch times are the same floats."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICROSECOND / 1e6


#: an entry of decayed counters: (time of the last update, attempts per scale..., wins per
#: scale...)
Entry = tuple[float, ...]


def read_entry(entry: Entry | None, at: float, scales: Sequence[float],
               ) -> tuple[list[float], list[float], float]:
    """An entry's decayed attempts and wins at time ``at`` and the time since its last update
    (-1 for an entry never updated: ``None``)."""
    n = len(scales)
    if entry is None:
        return [0.0] * n, [0.0] * n, -1.0
    dt = max(at - entry[0], 0.0)
    factors = [math.exp(-dt / s) for s in scales]
    return ([entry[1 + q] * factors[q] for q in range(n)],
            [entry[1 + n + q] * factors[q] for q in range(n)], dt)


def read_entries(entries: np.ndarray, at: float, scales: np.ndarray,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`read_entry` of many entries at once (one row each, none ``None``): their decayed
    attempts and wins (one column per scale) at ``at`` and the times since their updates."""
    n = len(scales)
    dt = np.maximum(at - entries[:, 0], 0.0)
    factors = np.exp(-dt[:, None] / scales)
    return entries[:, 1:1 + n] * factors, entries[:, 1 + n:] * factors, dt


def add_answer(entry: Entry | None, at: float, correct: float, scales: Sequence[float]) -> Entry:
    """The entry after one more answer at ``at``."""
    attempts, wins, _ = read_entry(entry, at, scales)
    return (at, *[a + 1.0 for a in attempts], *[w + correct for w in wins])
