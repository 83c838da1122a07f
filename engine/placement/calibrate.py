"""Item calibration: 2PL and 3PL parameters, with standard errors, from answer logs.

Marginal maximum likelihood by EM on a quadrature grid (Bock & Aitkin 1981), the method of
BILOG, mirt and ltm: abilities are integrated out under a N(0, 1) population (which also fixes
the scale), the E-step gives each learner's posterior on the grid and from it the expected
number of learners and of correct answers at each grid point for each item, the M-step fits
every item's curve to those counts (independent per item, solved together by L-BFGS-B with the
analytic gradient). The 3PL's guessing parameter is poorly identified by data alone, so it gets
BILOG's usual Beta(5, 17) prior (mode 0.2); the 2PL is pure maximum likelihood.

Standard errors come from the cross-product of each learner's score for the item's parameters
(the empirical information, Mislevy 1986), inverted per item. Everything runs on the observed
answers only (sparse), so logs where each learner sees a few of thousands of items fit in memory.

Why not a library: girth (the closest) was last released in 2021 and pins its own numerics;
py-irt needs PyTorch and Pyro and fits by variational inference, without standard errors; mirt
is R. The EM here is ~150 lines and is checked by parameter recovery.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

from engine.events import AnswerLog
from engine.placement.estimate import Grid
from engine.placement.irt import ItemBank

__all__ = ["CALIBRATION_MODELS", "Calibration", "calibrate", "calibrate_log"]

CALIBRATION_MODELS = ("2pl", "3pl")
#: Beta prior of the 3PL's guessing parameter (BILOG-MG's default shape)
GUESS_PRIOR = (5.0, 17.0)
_BOUNDS = {"a": (0.05, 6.0), "b": (-8.0, 8.0), "c": (0.0, 0.5)}

#: called with (EM iterations done, most iterations, marginal log-likelihood)
Progress = Callable[[int, int, float], None]


@dataclass(frozen=True, eq=False)
class Calibration:
    """Fitted items (``bank``; ids as given) with standard errors and answer counts."""

    bank: ItemBank
    se: dict[str, np.ndarray]     # "a", "b" (and "c" for the 3PL): one per item
    answers: np.ndarray           # answers each item was fitted on
    iterations: int
    converged: bool
    log_likelihood: float
    source: tuple[str, ...] = ()  # per item: "fit", or "kept" (too few answers; given values)
    dropped: tuple[str, ...] = ()  # items with too few answers and no values to keep


def _curves(a: np.ndarray, b: np.ndarray, c: np.ndarray,
            points: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """P on the grid (points, items), the logistic part s, and dP/d(parameter)."""
    s = expit(a * (points[:, None] - b))
    p = np.clip(c + (1 - c) * s, 1e-10, 1 - 1e-10)
    slope = (1 - c) * s * (1 - s)
    return p, s, {"a": slope * (points[:, None] - b), "b": -slope * a, "c": 1 - s}


def calibrate(learners: np.ndarray, items: np.ndarray, correct: np.ndarray,
              item_ids: Sequence[str], model: str = "2pl", *, grid: Grid | None = None,
              max_iterations: int = 500, tolerance: float = 1e-4,
              progress: Progress | None = None) -> Calibration:
    """Fit ``model`` (one of :data:`CALIBRATION_MODELS`) to answers given as parallel arrays:
    learner codes, item codes (indexes into ``item_ids``), correct (0/1). One answer per learner
    and item (the caller picks which: placement uses first answers)."""
    if model not in CALIBRATION_MODELS:
        raise ValueError(f"calibration fits {' or '.join(CALIBRATION_MODELS)}, not {model!r}")
    learners = np.asarray(learners, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    u = np.asarray(correct, dtype=np.float64)
    n_items = len(item_ids)
    if not len(u) == len(items) == len(learners) or len(u) == 0:
        raise ValueError("calibration needs equally long, non-empty learner, item and correct "
                         "arrays")
    if items.min() < 0 or items.max() >= n_items:
        raise ValueError(f"item codes must be in [0, {n_items})")
    grid = grid or Grid.normal(lo=-6.0, hi=6.0, n=49)
    shape = (int(learners.max()) + 1, n_items)
    if len(np.unique(learners * n_items + items)) != len(u):
        raise ValueError("calibration takes one answer per learner and item")
    right = sparse.csr_matrix((u, (learners, items)), shape=shape)
    wrong = sparse.csr_matrix((1 - u, (learners, items)), shape=shape)
    names = ["a", "b", "c"] if model == "3pl" else ["a", "b"]
    count = np.bincount(items, minlength=n_items).astype(np.float64)
    share = np.bincount(items, weights=u, minlength=n_items) / np.maximum(count, 1)
    params = {"a": np.ones(n_items),  # start: b from each item's share correct
              "b": -np.log(np.clip(share, 0.02, 0.98) / (1 - np.clip(share, 0.02, 0.98))),
              "c": np.full(n_items, 0.2 if model == "3pl" else 0.0)}
    previous = -np.inf
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        post, log_likelihood = _e_step(right, wrong, params, grid)
        r = (right.T @ post).T  # expected correct answers at each point, (points, items)
        n = ((right + wrong).T @ post).T
        old = np.concatenate([params[k] for k in names])
        params = _m_step(params, names, r, n, grid.points)
        change = np.max(np.abs(np.concatenate([params[k] for k in names]) - old))
        if progress is not None:
            progress(iteration, max_iterations, log_likelihood)
        if change < tolerance or abs(log_likelihood - previous) < 1e-9 * abs(log_likelihood):
            converged = True
            break
        previous = log_likelihood
    post, log_likelihood = _e_step(right, wrong, params, grid)
    se = _standard_errors(learners, items, u, post, params, names, grid.points, n_items)
    bank = ItemBank.build(params["a"], params["b"], params["c"], ids=list(item_ids))
    return Calibration(bank, se, count.astype(np.int64), iteration, converged, log_likelihood,
                       ("fit",) * n_items)


def calibrate_log(log: AnswerLog, model: str = "2pl", *, min_answers: int = 30,
                  keep: Mapping[str, tuple[float, float, float]] | None = None,
                  progress: Progress | None = None) -> Calibration:
    """Calibrate the items of an answer log on each learner's first answer to each item (later
    ones are practice, no longer the ability the test measures).

    Items with fewer than ``min_answers`` first answers are not fitted: with ``keep`` values
    (a, b, c: a content pack's) they keep those, otherwise they are listed in ``dropped``; items
    of ``keep`` the log never saw are kept too. Each item's group is its first skill.
    """
    if min_answers < 1:
        raise ValueError(f"min_answers must be at least 1, got {min_answers}")
    keep = keep or {}
    n_log_items = len(log.item_ids)
    key = log.learner.astype(np.int64) * n_log_items + log.item
    _, first = np.unique(key, return_index=True)
    count = np.bincount(log.item[first], minlength=n_log_items)
    fitted = np.flatnonzero(count >= min_answers)
    if len(fitted) == 0:
        raise ValueError(f"no item has {min_answers} learners' answers (most: {count.max()}); "
                         "lower min_answers or calibrate on a larger log")
    code = np.full(n_log_items, -1)
    code[fitted] = np.arange(len(fitted))
    rows = first[code[log.item[first]] >= 0]
    ids = [str(log.item_ids[i]) for i in fitted]
    fit = calibrate(log.learner[rows], code[log.item[rows]], log.correct[rows], ids, model,
                    progress=progress)
    skill = {str(log.item_ids[log.item[r]]): str(log.skill_ids[log.skill_codes[log.skill_ptr[r]]])
             for r in first}
    fitted_ids = set(ids)
    kept = [i for i in keep if i not in fitted_ids]
    dropped = tuple(str(log.item_ids[i]) for i in np.flatnonzero(count < min_answers)
                    if str(log.item_ids[i]) not in keep)
    params = np.array([keep[i] for i in kept]).reshape(-1, 3)
    all_ids = ids + kept
    bank = ItemBank.build(np.concatenate([fit.bank.a, params[:, 0]]),
                          np.concatenate([fit.bank.b, params[:, 1]]),
                          np.concatenate([fit.bank.c, params[:, 2]]),
                          groups=[skill.get(i, "all") for i in all_ids], ids=all_ids)
    nan = np.full(len(kept), np.nan)
    answers = {str(log.item_ids[i]): int(count[i]) for i in range(n_log_items)}
    return Calibration(bank, {k: np.concatenate([v, nan]) for k, v in fit.se.items()},
                       np.array([answers.get(i, 0) for i in all_ids]), fit.iterations,
                       fit.converged, fit.log_likelihood,
                       ("fit",) * len(ids) + ("kept",) * len(kept), dropped)


def _e_step(right: sparse.csr_matrix, wrong: sparse.csr_matrix, params: dict[str, np.ndarray],
            grid: Grid) -> tuple[np.ndarray, float]:
    """Each learner's posterior on the grid, and the marginal log-likelihood."""
    p, _, _ = _curves(params["a"], params["b"], params["c"], grid.points)
    log_joint = right @ np.log(p).T + wrong @ np.log1p(-p).T + grid.log_prior
    norm = logsumexp(log_joint, axis=1, keepdims=True)
    return np.exp(log_joint - norm), float(norm.sum())


def _m_step(params: dict[str, np.ndarray], names: list[str], r: np.ndarray, n: np.ndarray,
            points: np.ndarray) -> dict[str, np.ndarray]:
    n_items = r.shape[1]
    scale = max(float(n.sum()), 1.0)
    alpha, beta = GUESS_PRIOR

    def unpack(x: np.ndarray) -> dict[str, np.ndarray]:
        full = dict(params)
        full.update({k: x[j * n_items:(j + 1) * n_items] for j, k in enumerate(names)})
        return full

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        q = unpack(x)
        p, _, dp = _curves(q["a"], q["b"], q["c"], points)
        value = -(r * np.log(p) + (n - r) * np.log1p(-p)).sum()
        d_value = -(r / p - (n - r) / (1 - p))
        grads = [(d_value * dp[k]).sum(axis=0) for k in names]
        if "c" in names:
            c = np.clip(q["c"], 1e-9, 1 - 1e-9)
            value -= ((alpha - 1) * np.log(c) + (beta - 1) * np.log1p(-c)).sum()
            grads[2] = grads[2] - ((alpha - 1) / c - (beta - 1) / (1 - c))
        return float(value / scale), np.concatenate(grads) / scale

    start = np.concatenate([params[k] for k in names])
    bounds = [_BOUNDS[k] for k in names for _ in range(n_items)]
    found = minimize(objective, start, jac=True, method="L-BFGS-B", bounds=bounds,
                     options={"maxiter": 200})
    return unpack(found.x)


def _standard_errors(learners: np.ndarray, items: np.ndarray, u: np.ndarray, post: np.ndarray,
                     params: dict[str, np.ndarray], names: list[str], points: np.ndarray,
                     n_items: int) -> dict[str, np.ndarray]:
    """Per item: the inverse of the summed outer products of the learners' scores."""
    p, _, dp = _curves(params["a"], params["b"], params["c"], points)
    k = len(names)
    info = np.zeros((n_items, k, k))
    for start in range(0, len(u), 100_000):  # chunks: (answers, points) arrays stay small
        rows = slice(start, start + 100_000)
        weights = post[learners[rows]]                              # (answers, points)
        cols = items[rows]
        sign = np.where(u[rows] > 0, 1.0 / p[:, cols], -1.0 / (1 - p[:, cols]))  # (points, ans)
        score = np.stack([np.einsum("ep,pe->e", weights, sign * dp[name][:, cols])
                          for name in names], axis=1)               # (answers, k)
        np.add.at(info, cols, score[:, :, None] * score[:, None, :])
    if "c" in names:
        alpha, beta = GUESS_PRIOR
        c = np.clip(params["c"], 1e-6, 1 - 1e-6)
        info[:, 2, 2] += (alpha - 1) / c ** 2 + (beta - 1) / (1 - c) ** 2
    se = np.full((n_items, k), np.nan)
    for i in range(n_items):
        try:
            covariance = np.linalg.inv(info[i])
        except np.linalg.LinAlgError:
            continue  # too few answers to tell the parameters apart: no standard error
        se[i] = np.sqrt(np.clip(np.diag(covariance), 0, None))
    return {name: se[:, j] for j, name in enumerate(names)}
