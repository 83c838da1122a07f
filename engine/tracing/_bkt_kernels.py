"""Compiled inner loops of BKT: EM fitting and one-step-ahead prediction.

Both walk answers laid out by :func:`engine.tracing.bkt_layout.layout` (grouped by skill, then
by learner, chronological inside): a *sequence* is one learner's answers on one skill. Plain loops
compiled by numba beat vectorised numpy here because the HMM recursion is sequential in time
while sequences are short and ragged; fitting runs one task per (skill, restart) across cores.

The recursion is carried on ``q`` = P(not mastered), not on P(mastered): when a skill is
mastered without forgetting, ``q`` shrinks towards 0 and keeps its relative precision, whereas
1 - P(mastered) would round to exactly 0 and freeze the learner as mastered for good, deaf to any
later wrong answer. Emissions are P(obs | mastered) = 1 - slip or slip, P(obs | not mastered) =
guess or 1 - guess.
"""

from __future__ import annotations

import numba
import numpy as np

_TINY = 1e-300  # keeps divisions finite when a probability underflows
_RESCALE = 1e200  # the running product of 1/P(answer) is folded into the log above this


@numba.njit(cache=True, error_model="numpy", inline="always")
def _emissions(correct: int, guess: float, slip: float) -> tuple[float, float]:
    if correct:
        return 1.0 - slip, guess
    return slip, 1.0 - guess


@numba.njit(cache=True, error_model="numpy", inline="always")
def _observe(q: float, correct: int, guess: float, slip: float) -> tuple[float, float]:
    """Condition on one answer: P(not mastered) and P(mastered) after it."""
    e_m, e_u = _emissions(correct, guess, slip)
    u = q * e_u
    m = (1.0 - q) * e_m
    c = max(u + m, _TINY)
    return u / c, m / c


@numba.njit(cache=True, error_model="numpy", inline="always")
def _transition(a_u: float, a_m: float, learn: float, forget: float) -> float:
    """P(not mastered) at the next answer, from the posterior after this one."""
    return a_u * (1.0 - learn) + a_m * forget


_MAX_STEP = 16.0  # the longest extrapolation of an EM step (in EM steps)


@numba.njit(cache=True, error_model="numpy", fastmath=True)
def _em_skill(
    correct: np.ndarray, gs: np.ndarray, seq_ptr: np.ndarray, seq_weight: np.ndarray,
    s_lo: int, s_hi: int, g_lo: int, g_hi: int, theta: np.ndarray, guess: np.ndarray,
    slip: np.ndarray, fit_forget: bool, max_iter: int, tol: float, bounds: np.ndarray,
    loglik: np.ndarray, iters: np.ndarray,
) -> None:
    """EM for one skill from several starting points at once, updating them in place.

    Row ``r`` of ``theta`` (prior, learn, forget) and column ``r`` of ``guess``/``slip`` (classes
    x starts) is starting point ``r``; its final log-likelihood and E-step count go to
    ``loglik[r]``/``iters[r]``. Sequence ``s`` stands for ``seq_weight[s]`` identical sequences.

    Speed comes from three choices. (1) The starting points advance in lockstep over the same
    answers, packed in "lanes" innermost, so their independent recursions overlap instead of
    each waiting on its own chain of divisions; a point leaves the lanes when it converges.
    (2) Each sequence runs forward then backward while its values are in cache; the forward pass
    stores 1/P(answer | past) (Rabiner's scaling), so the backward pass needs no division, and
    starting the backward message at the sequence's weight scales its expected counts by it.
    (3) EM steps are extrapolated (adaptive over-relaxation, Salakhutdinov & Roweis 2003): the
    next point is ``x + eta * (M(x) - x)``, ``eta`` doubling while the log-likelihood rises;
    a point that lowers it is rejected for the plain EM step ``M(x)`` with ``eta`` back to 1.
    Accepted log-likelihoods therefore never decrease, as in plain EM, in far fewer E-steps.
    A point has converged when a plain EM step raises its log-likelihood by less than ``tol``
    (pyBKT's criterion), or after ``max_iter`` E-steps.

    ``bounds`` = (eps, max_guess, max_slip). The M-step maximises each parameter's expected
    complete log-likelihood inside its box; that problem is separable and concave, so clipping
    the unconstrained optimum is the exact constrained M-step.
    """
    n_lanes = theta.shape[0]
    if s_hi == s_lo:  # a skill with no answers keeps its starting points
        loglik[:] = 0.0
        iters[:] = 0
        return
    n_cls = g_hi - g_lo
    n_par = 3 + 2 * n_cls  # per lane: prior, learn, forget, guess per class, slip per class
    eps = bounds[0]
    lo = np.full(n_par, eps)
    hi = np.full(n_par, 1.0 - eps)
    hi[3:3 + n_cls] = bounds[1]
    hi[3 + n_cls:] = bounds[2]
    if not fit_forget:
        lo[2] = 0.0
        hi[2] = 0.0
    # lane j evaluates `par[:, j]` for starting point `start_of[j]`; columns move when lanes
    # retire. Private copies also because skills run on different cores.
    par = np.empty((n_par, n_lanes))
    par[:3] = theta.T
    par[3:3 + n_cls] = guess[g_lo:g_hi]
    par[3 + n_cls:] = slip[g_lo:g_hi]
    acc = par.copy()  # last accepted point
    acc_m = par.copy()  # its EM step
    step = par.copy()  # EM step of the evaluated point
    acc_ll = np.full(n_lanes, -np.inf)
    eta = np.ones(n_lanes)
    start_of = np.arange(n_lanes)

    longest = 0
    for s in range(s_lo, s_hi):
        longest = max(longest, seq_ptr[s + 1] - seq_ptr[s])
    n_seq = 0.0
    for s in range(s_lo, s_hi):
        n_seq += seq_weight[s]
    post = np.empty((longest, n_lanes))  # filtered P(not mastered | answers so far)
    inv_c = np.empty((longest, n_lanes))  # 1 / P(answer | earlier answers)
    # expected counts per class: not mastered, ... and correct, mastered, ... and wrong
    counts = np.empty((n_cls, 4, n_lanes))
    # expected transitions: U->M, U with a successor, M->U, M with a successor; M at first answer
    trans = np.empty((5, n_lanes))
    q = np.empty(n_lanes)
    ll = np.empty(n_lanes)
    seq_ll = np.empty(n_lanes)
    run = np.empty(n_lanes)
    b_m = np.empty(n_lanes)
    b_u = np.empty(n_lanes)
    it = 0
    while True:
        prior, learn, forget = par[0], par[1], par[2]
        stay_u = 1.0 - learn
        stay_m = 1.0 - forget
        ll[:] = 0.0
        counts[:] = 0.0
        trans[:] = 0.0
        for s in range(s_lo, s_hi):
            start = seq_ptr[s]
            # ---------------- E-step, forward: filtered posteriors and the log-likelihood
            for j in range(n_lanes):
                q[j] = 1.0 - prior[j]
                run[j] = 1.0
                seq_ll[j] = 0.0
            for i in range(start, seq_ptr[s + 1]):
                ci = np.float64(correct[i])
                g_r = par[3 + gs[i] - g_lo]
                s_r = par[3 + n_cls + gs[i] - g_lo]
                post_i = post[i - start]
                inv_i = inv_c[i - start]
                big = False
                for j in range(n_lanes):
                    e_m = s_r[j] + ci * (1.0 - 2.0 * s_r[j])
                    e_u = 1.0 - g_r[j] + ci * (2.0 * g_r[j] - 1.0)
                    u = q[j] * e_u
                    m = (1.0 - q[j]) * e_m
                    ic = 1.0 / max(u + m, _TINY)
                    post_i[j] = u * ic
                    inv_i[j] = ic
                    run[j] *= ic
                    big |= run[j] > _RESCALE
                    q[j] = u * ic * stay_u[j] + m * ic * forget[j]
                if big:
                    for j in range(n_lanes):
                        seq_ll[j] -= np.log(run[j])
                        run[j] = 1.0
            w = seq_weight[s]
            for j in range(n_lanes):
                ll[j] += w * (seq_ll[j] - np.log(run[j]))
            # ---------------- E-step, backward: expected counts
            b_m[:] = w
            b_u[:] = w
            for i in range(seq_ptr[s + 1] - 1, start, -1):
                ci = np.float64(correct[i])
                g_r = par[3 + gs[i] - g_lo]
                s_r = par[3 + n_cls + gs[i] - g_lo]
                cnt = counts[gs[i] - g_lo]
                post_i = post[i - start]
                post_0 = post[i - 1 - start]
                inv_i = inv_c[i - start]
                for j in range(n_lanes):
                    gu = post_i[j] * b_u[j]
                    gm = (1.0 - post_i[j]) * b_m[j]
                    cnt[0, j] += gu
                    cnt[1, j] += ci * gu
                    cnt[2, j] += gm
                    cnt[3, j] += (1.0 - ci) * gm
                    e_m = s_r[j] + ci * (1.0 - 2.0 * s_r[j])
                    e_u = 1.0 - g_r[j] + ci * (2.0 * g_r[j] - 1.0)
                    fm = e_m * b_m[j] * inv_i[j]
                    fu = e_u * b_u[j] * inv_i[j]
                    u0 = post_0[j]
                    to_m = learn[j] * fm
                    to_u = forget[j] * fu
                    keep_m = stay_m[j] * fm
                    trans[0, j] += u0 * to_m
                    trans[1, j] += u0 * (to_m + stay_u[j] * fu)
                    trans[2, j] += (1.0 - u0) * to_u
                    trans[3, j] += (1.0 - u0) * (keep_m + to_u)
                    b_m[j] = keep_m + to_u
                    b_u[j] = to_m + stay_u[j] * fu
            ci = np.float64(correct[start])
            cnt = counts[gs[start] - g_lo]
            post_i = post[0]
            for j in range(n_lanes):
                gu = post_i[j] * b_u[j]
                gm = (1.0 - post_i[j]) * b_m[j]
                cnt[0, j] += gu
                cnt[1, j] += ci * gu
                cnt[2, j] += gm
                cnt[3, j] += (1.0 - ci) * gm
                trans[4, j] += gm
        it += 1
        # ---------------- M-step (a parameter without evidence keeps its value)
        step[:] = par
        for j in range(n_lanes):
            step[0, j] = trans[4, j] / n_seq
            if trans[1, j] > 0.0:
                step[1, j] = trans[0, j] / trans[1, j]
            if fit_forget and trans[3, j] > 0.0:
                step[2, j] = trans[2, j] / trans[3, j]
            for k in range(n_cls):
                if counts[k, 0, j] > 0.0:
                    step[3 + k, j] = counts[k, 1, j] / counts[k, 0, j]
                if counts[k, 2, j] > 0.0:
                    step[3 + n_cls + k, j] = counts[k, 3, j] / counts[k, 2, j]
        # ---------------- accept or reject, retire converged lanes, choose the next points
        j = 0
        while j < n_lanes:
            converged = False
            if ll[j] >= acc_ll[j]:
                converged = ll[j] - acc_ll[j] < tol and eta[j] == 1.0
                eta[j] = 1.0 if ll[j] - acc_ll[j] < tol else min(2.0 * eta[j], _MAX_STEP)
                acc_ll[j] = ll[j]
                for p in range(n_par):
                    acc[p, j] = par[p, j]
                    acc_m[p, j] = min(max(step[p, j], lo[p]), hi[p])
            else:
                eta[j] = 1.0
            if converged or it >= max_iter:
                r = start_of[j]
                loglik[r] = acc_ll[j]
                iters[r] = it
                theta[r] = acc[:3, j]
                guess[g_lo:g_hi, r] = acc[3:3 + n_cls, j]
                slip[g_lo:g_hi, r] = acc[3 + n_cls:, j]
                n_lanes -= 1  # move the last lane into the gap
                for arr in (par, acc, acc_m, step):
                    arr[:, j] = arr[:, n_lanes]
                start_of[j], acc_ll[j], eta[j] = start_of[n_lanes], acc_ll[n_lanes], eta[n_lanes]
                ll[j] = ll[n_lanes]
                continue
            for p in range(n_par):
                x = acc[p, j] + eta[j] * (acc_m[p, j] - acc[p, j])
                par[p, j] = min(max(x, lo[p]), hi[p])
            j += 1
        if n_lanes == 0:
            return


@numba.njit(cache=True, error_model="numpy", parallel=True)
def em_fit(
    correct: np.ndarray, gs: np.ndarray, seq_ptr: np.ndarray, seq_weight: np.ndarray,
    skill_seq_ptr: np.ndarray, gs_ptr: np.ndarray, worker_ptr: np.ndarray,
    worker_skills: np.ndarray, theta: np.ndarray, guess: np.ndarray, slip: np.ndarray,
    fit_forget: bool, max_iter: int, tol: float, bounds: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`_em_skill` for every skill, one worker per core.

    Worker ``w`` fits skills ``worker_skills[worker_ptr[w]:worker_ptr[w + 1]]`` (the caller
    balances the work: skills differ a lot in size). ``theta[k]`` (starts x 3) holds skill
    ``k``'s starting points; ``guess``/``slip`` (classes x starts) hold those of every class,
    skill ``k`` using only its own rows. Everything is updated in place; returns the
    log-likelihoods and E-step counts (skills x starts). Skills are independent, so results do
    not depend on scheduling: a seed fixes the fit.
    """
    n_skills, n_starts = theta.shape[0], theta.shape[1]
    loglik = np.zeros((n_skills, n_starts))
    iters = np.zeros((n_skills, n_starts), dtype=np.int64)
    for w in numba.prange(worker_ptr.shape[0] - 1):
        for t in range(worker_ptr[w], worker_ptr[w + 1]):
            k = worker_skills[t]
            _em_skill(correct, gs, seq_ptr, seq_weight, skill_seq_ptr[k], skill_seq_ptr[k + 1],
                      gs_ptr[k], gs_ptr[k + 1], theta[k], guess, slip, fit_forget, max_iter,
                      tol, bounds, loglik[k], iters[k])
    return loglik, iters


@numba.njit(cache=True, error_model="numpy")
def forward_predict(
    correct: np.ndarray, gs: np.ndarray, seq_ptr: np.ndarray, seq_skill: np.ndarray,
    prior: np.ndarray, learn: np.ndarray, forget: np.ndarray, guess: np.ndarray,
    slip: np.ndarray, out_correct: np.ndarray,
) -> None:
    """One-step-ahead P(correct) of each answer, every sequence starting from its skill's prior.

    This is the batch twin of the online update: both apply :func:`bkt_step`.
    """
    for s in range(seq_ptr.shape[0] - 1):
        k = seq_skill[s]
        q = 1.0 - prior[k]
        for i in range(seq_ptr[s], seq_ptr[s + 1]):
            g = gs[i]
            out_correct[i] = p_correct(q, guess[g], slip[g])
            q = bkt_step(q, correct[i], guess[g], slip[g], learn[k], forget[k])


@numba.njit(cache=True, error_model="numpy")
def p_correct(q: float, guess: float, slip: float) -> float:
    """P(correct) of an answer when P(not mastered) is ``q``."""
    return (1.0 - q) * (1.0 - slip) + q * guess


@numba.njit(cache=True, error_model="numpy")
def bkt_step(q: float, correct: int, guess: float, slip: float, learn: float,
             forget: float) -> float:
    """P(not mastered) at the next answer, from ``q`` before this one and its outcome."""
    a_u, a_m = _observe(q, correct, guess, slip)
    return _transition(a_u, a_m, learn, forget)


@numba.njit(cache=True, error_model="numpy")
def step_pairs(states: np.ndarray, rows: np.ndarray, skills: np.ndarray, correct: np.ndarray,
               guess: np.ndarray, slip: np.ndarray, learn: np.ndarray,
               forget: np.ndarray) -> None:
    """:func:`bkt_step` in place for many (learner, skill) pairs: ``states[rows[p], skills[p]]``
    after an answer ``correct[p]`` with guess ``guess[p]`` and slip ``slip[p]`` (the batch twin
    of the online update; a learner's skills are distinct pairs)."""
    for p in range(rows.shape[0]):
        i, k = rows[p], skills[p]
        states[i, k] = bkt_step(states[i, k], correct[p], guess[p], slip[p], learn[k],
                                forget[k])


@numba.njit(cache=True)
def is_probabilities(values: np.ndarray) -> bool:
    """Whether every value is a probability (in [0, 1]; NaN is not): what a state holds."""
    for x in values:  # noqa: SIM110 (a loop numba compiles, where all() of a generator is not)
        if not 0.0 <= x <= 1.0:
            return False
    return True


@numba.njit(cache=True, error_model="numpy")
def sample_sequences(
    seq_ptr: np.ndarray, seq_skill: np.ndarray, gs: np.ndarray, prior: np.ndarray,
    learn: np.ndarray, forget: np.ndarray, guess: np.ndarray, slip: np.ndarray,
    uniforms: np.ndarray, out_correct: np.ndarray, out_mastered: np.ndarray,
) -> None:
    """Draw answers from the BKT generative model (for simulation with known ground truth).

    ``uniforms[i]`` holds three U(0,1) draws per answer: initial state, outcome, transition.
    """
    for s in range(seq_ptr.shape[0] - 1):
        k = seq_skill[s]
        start = seq_ptr[s]
        mastered = uniforms[start, 0] < prior[k]
        for i in range(start, seq_ptr[s + 1]):
            g = gs[i]
            out_mastered[i] = mastered
            p_correct = 1.0 - slip[g] if mastered else guess[g]
            out_correct[i] = uniforms[i, 1] < p_correct
            stays = uniforms[i, 2] >= forget[k]
            learns = uniforms[i, 2] < learn[k]
            mastered = stays if mastered else learns


@numba.njit(cache=True)
def sequence_hashes(correct: np.ndarray, gs: np.ndarray, seq_ptr: np.ndarray) -> np.ndarray:
    """Two independent 64-bit polynomial hashes of each sequence's (class, outcome) string."""
    n_seq = seq_ptr.shape[0] - 1
    out = np.empty((n_seq, 2), dtype=np.uint64)
    for s in range(n_seq):
        h1 = np.uint64(1469598103934665603)
        h2 = np.uint64(7)
        for i in range(seq_ptr[s], seq_ptr[s + 1]):
            x = np.uint64(gs[i]) * np.uint64(2) + np.uint64(correct[i])
            h1 = (h1 ^ x) * np.uint64(1099511628211)
            h2 = h2 * np.uint64(6364136223846793005) + x + np.uint64(1442695040888963407)
        out[s, 0] = h1
        out[s, 1] = h2
    return out
