"""BKT: parameter recovery, EM monotonicity, exact updates, online = batch, persistence, errors.

Datasets are simulated from known parameters (engine.tracing.simulate) with fixed seeds and built
once per module.
"""

from __future__ import annotations

import json
import math

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from engine.events import AnswerEvent, AnswerLog
from engine.tracing._bkt_kernels import em_fit
from engine.tracing.base import NotFittedError, Tracer
from engine.tracing.bkt import BKT, _balance, layout, unique_sequences
from engine.tracing.bkt_params import BKTParams
from engine.tracing.simulate import random_params, simulate

# absolute tolerances of parameter recovery (3000 simulated learners per skill)
TOL = 0.05  # prior, learn, forget, guess, slip in standard BKT and BKT+forgetting
TOL_IDEM = 0.08  # per-item guess/slip with KT-IDEM (about 1/3 of the answers per item)


# ============================================================================ helpers / fixtures
def _log_from_rows(rows: list[tuple[str, str, tuple[str, ...], bool]]) -> AnswerLog:
    return AnswerLog.from_columns([r[0] for r in rows], [r[1] for r in rows],
                                  [r[2] for r in rows], [r[3] for r in rows])


def _rows(log: AnswerLog) -> list[tuple[str, str, tuple[str, ...], bool]]:
    return [(str(log.learner_ids[log.learner[i]]), str(log.item_ids[log.item[i]]),
             log.skills_of(i), bool(log.correct[i])) for i in range(len(log))]


def _with_second_skill(log: AnswerLog, frac: float, seed: int) -> AnswerLog:
    """``log`` with a second (different) skill added to a fraction ``frac`` of its answers."""
    rng = np.random.default_rng(seed)
    skills = list(log.skill_ids)
    out = []
    for learner, item, sk, correct in _rows(log):
        if rng.random() < frac:
            other = [s for s in skills if s not in sk]
            sk = (*sk, other[rng.integers(len(other))])
        out.append((learner, item, sk, correct))
    return _log_from_rows(out)


def _interleave(log: AnswerLog, seed: int) -> tuple[AnswerLog, np.ndarray]:
    """Rows shuffled across learners, each learner's rows kept in their relative order.

    Returns the new log and ``order`` with ``new_log[i] == log[order[i]]``.
    """
    rng = np.random.default_rng(seed)
    slots = rng.permutation(log.learner)  # which learner answers at each new position
    order = np.empty(len(log), dtype=np.int64)
    order[np.argsort(slots, kind="stable")] = np.argsort(log.learner, kind="stable")
    return log.take(order), order


def _loglik_per_skill(model: BKT, log: AnswerLog) -> np.ndarray:
    """sum of log P(observed outcome) per skill (in ``log.skill_ids`` order), single-skill log."""
    assert np.all(np.diff(log.skill_ptr) == 1)
    p = model.predict_log(log)
    lp = np.log(np.where(log.correct == 1, p, 1.0 - p))
    return np.bincount(log.skill_codes, weights=lp, minlength=len(log.skill_ids))


def _max_errors(true: BKTParams, fitted: BKTParams) -> dict[str, float]:
    """Largest absolute error per parameter, matching skills and guess/slip classes by name.

    The ``default`` class is left out when the truth has per-item classes (no item is named so).
    """
    k_of = [fitted.skills.index(s) for s in true.skills]
    cls_of = {(fitted.skills[k], fitted.gs_names[g]): g
              for k in range(len(fitted.skills)) for g in range(fitted.gs_ptr[k],
                                                                fitted.gs_ptr[k + 1])}
    pairs = [(g, cls_of[(true.skills[k], true.gs_names[g])])
             for k in range(len(true.skills)) for g in range(true.gs_ptr[k], true.gs_ptr[k + 1])
             if true.gs_ptr[k + 1] - true.gs_ptr[k] == 1 or true.gs_names[g] != "default"]
    t, f = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    out = {name: float(np.max(np.abs(getattr(true, name) - getattr(fitted, name)[k_of])))
           for name in ("prior", "learn", "forget")}
    out["guess"] = float(np.max(np.abs(true.guess[t] - fitted.guess[f])))
    out["slip"] = float(np.max(np.abs(true.slip[t] - fitted.slip[f])))
    return out


@pytest.fixture(scope="module")
def std_data() -> tuple[BKTParams, AnswerLog]:
    params = random_params(4, seed=11)
    return params, simulate(params, 3000, seed=12)[0]


@pytest.fixture(scope="module")
def forget_data() -> tuple[BKTParams, AnswerLog]:
    params = random_params(3, seed=0, forgets=True)
    return params, simulate(params, 3000, seed=1)[0]


@pytest.fixture(scope="module")
def idem_data() -> tuple[BKTParams, AnswerLog]:
    params = random_params(3, seed=31, items_per_skill=3)
    return params, simulate(params, 3000, seed=32)[0]


@pytest.fixture(scope="module")
def std_model(std_data: tuple[BKTParams, AnswerLog]) -> BKT:
    return BKT(seed=0).fit(std_data[1])


@pytest.fixture(scope="module")
def forget_model(forget_data: tuple[BKTParams, AnswerLog]) -> BKT:
    return BKT(forgets=True, seed=0).fit(forget_data[1])


@pytest.fixture(scope="module")
def idem_model(idem_data: tuple[BKTParams, AnswerLog]) -> BKT:
    return BKT(item_guess_slip=True, seed=0).fit(idem_data[1])


@pytest.fixture(scope="module")
def small_multi() -> tuple[AnswerLog, BKT]:
    """A small log (forgetting, per-item guess/slip, a quarter of answers with two skills) and a
    model fitted on it with both extensions on."""
    params = random_params(3, seed=5, forgets=True, items_per_skill=2)
    log = _with_second_skill(simulate(params, 150, seed=6)[0], 0.25, seed=7)
    return log, BKT(forgets=True, item_guess_slip=True, seed=0).fit(log)


# ============================================================================ parameter recovery
def test_recovers_standard_parameters(std_data: tuple[BKTParams, AnswerLog],
                                      std_model: BKT) -> None:
    true, _ = std_data
    err = _max_errors(true, std_model.params_)  # type: ignore[arg-type]
    assert max(err["prior"], err["learn"], err["guess"], err["slip"]) < TOL, err
    assert np.all(std_model.params_.forget == 0.0)  # type: ignore[union-attr]


def test_recovers_forgetting(forget_data: tuple[BKTParams, AnswerLog],
                             forget_model: BKT) -> None:
    true, _ = forget_data
    err = _max_errors(true, forget_model.params_)  # type: ignore[arg-type]
    assert max(err.values()) < TOL, err
    assert np.all(forget_model.params_.forget > 0.0)  # type: ignore[union-attr]
    assert forget_model.name == "bkt-forgets"


def test_recovers_per_item_guess_slip(idem_data: tuple[BKTParams, AnswerLog],
                                      idem_model: BKT) -> None:
    true, log = idem_data
    fitted = idem_model.params_
    assert fitted is not None
    err = _max_errors(true, fitted)
    assert max(err["prior"], err["learn"]) < TOL, err
    assert max(err["guess"], err["slip"]) < TOL_IDEM, err
    # each skill's default class is the answer-weighted mean of its item classes
    for k, skill in enumerate(fitted.skills):
        lo, hi = fitted.gs_ptr[k], fitted.gs_ptr[k + 1]
        assert fitted.gs_names[hi - 1] == "default"
        n = np.array([np.count_nonzero(log.item_ids[log.item] == name)
                      for name in fitted.gs_names[lo:hi - 1]], dtype=float)
        assert n.sum() == idem_model.fit_info_["n_answers"][k], skill
        for values in (fitted.guess, fitted.slip):
            assert values[hi - 1] == pytest.approx(np.dot(n, values[lo:hi - 1]) / n.sum(),
                                                   rel=1e-12)


def test_fitted_loglik_matches_predictions(std_data, forget_data, idem_data, std_model,
                                           forget_model, idem_model) -> None:
    for (true, log), model in ((std_data, std_model), (forget_data, forget_model),
                               (idem_data, idem_model)):
        fitted_ll = _loglik_per_skill(model, log)
        np.testing.assert_allclose(model.fit_info_["loglik"], fitted_ll, rtol=1e-6)
        # EM reaches at least the likelihood of the generating parameters, skill by skill
        truth = BKT(forgets=model.forgets, item_guess_slip=model.item_guess_slip)
        assert np.all(fitted_ll >= _loglik_per_skill(truth.set_params(true), log))


# ============================================================================ EM internals
def _em_inputs(log: AnswerLog, model: BKT, n_starts: int, seed: int) -> dict:
    """em_fit's arguments for ``log``, laid out as BKT.fit does, from random starting points."""
    n_skills = len(log.skill_ids)
    gs_ptr, gs_names, class_of = model._classes_from(log, np.arange(n_skills), n_skills)
    lay, weight = unique_sequences(layout(log, np.arange(n_skills), class_of))
    skill_seq_ptr = np.searchsorted(lay.seq_skill, np.arange(n_skills + 1)).astype(np.int64)
    worker_ptr, worker_skills = _balance(np.diff(lay.seq_ptr[skill_seq_ptr]), 2)
    rng = np.random.default_rng(seed)
    theta = np.zeros((n_skills, n_starts, 3))
    theta[..., 0] = rng.uniform(0.05, 0.95, (n_skills, n_starts))
    theta[..., 1] = rng.uniform(0.01, 0.4, (n_skills, n_starts))
    if model.forgets:
        theta[..., 2] = rng.uniform(0.01, 0.2, (n_skills, n_starts))
    return {
        "fixed": (lay.correct, lay.gs, lay.seq_ptr, weight, skill_seq_ptr, gs_ptr, worker_ptr,
                  worker_skills),
        "theta": theta,
        "guess": rng.uniform(0.01, 0.4, (len(gs_names), n_starts)),
        "slip": rng.uniform(0.01, 0.3, (len(gs_names), n_starts)),
        "gs_ptr": gs_ptr, "gs_names": gs_names,
        "bounds": np.array([model.eps, model.max_guess, model.max_slip]),
    }


def _run_em(inp: dict, forgets: bool, max_iter: int) -> tuple[np.ndarray, ...]:
    theta, guess, slip = inp["theta"].copy(), inp["guess"].copy(), inp["slip"].copy()
    loglik, iters = em_fit(*inp["fixed"], theta, guess, slip, forgets, max_iter, 0.0,
                           inp["bounds"])
    return loglik, iters, theta, guess, slip


@pytest.mark.parametrize(("forgets", "item_gs"), [(False, False), (True, False), (False, True)])
def test_em_loglik_never_decreases(forgets: bool, item_gs: bool) -> None:
    params = random_params(3, seed=41, forgets=forgets, items_per_skill=2 if item_gs else 0)
    log = simulate(params, 300, seed=42)[0]
    model = BKT(forgets=forgets, item_guess_slip=item_gs)
    inp = _em_inputs(log, model, n_starts=4, seed=43)
    lls = []
    for max_iter in range(1, 31):
        loglik, iters, theta, guess, slip = _run_em(inp, forgets, max_iter)
        assert np.all(iters == max_iter)  # tol = 0: no lane stops early
        lls.append(loglik)
        if max_iter in (1, 2, 5, 30):
            # the reported log-likelihood is that of the returned (accepted) parameters
            for r in range(theta.shape[1]):
                model.set_params(BKTParams(
                    skills=tuple(log.skill_ids), prior=theta[:, r, 0], learn=theta[:, r, 1],
                    forget=theta[:, r, 2], gs_ptr=inp["gs_ptr"], gs_names=inp["gs_names"],
                    guess=guess[:, r], slip=slip[:, r]))
                np.testing.assert_allclose(loglik[:, r], _loglik_per_skill(model, log),
                                           rtol=1e-6)
    lls_arr = np.array(lls)  # (max_iter, skills, starts)
    slack = 1e-9 * np.abs(lls_arr[:-1])
    assert np.all(lls_arr[1:] >= lls_arr[:-1] - slack)
    assert np.all(lls_arr[-1] > lls_arr[0] + 1.0)  # and EM does make progress


def test_fit_is_deterministic_for_a_seed(small_multi: tuple[AnswerLog, BKT]) -> None:
    log, fitted = small_multi
    again = BKT(forgets=True, item_guess_slip=True, seed=0).fit(log)
    for name in ("prior", "learn", "forget", "guess", "slip"):
        assert np.array_equal(getattr(again.params_, name), getattr(fitted.params_, name)), name
    assert np.array_equal(again.fit_info_["loglik"], fitted.fit_info_["loglik"])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = BKT(forgets=True, item_guess_slip=True, seed=0).fit(log)
    finally:
        numba.set_num_threads(threads)
    for name in ("prior", "learn", "forget", "guess", "slip"):
        assert np.array_equal(getattr(single.params_, name), getattr(fitted.params_, name)), name


# ============================================================================ exact updates
P, L, G, S = 0.3, 0.2, 0.25, 0.1


def _one_skill(forget: float = 0.0) -> BKT:
    return BKT.from_pybkt({"s": {"prior": P, "learns": [L], "forgets": [forget],
                                 "guesses": [G], "slips": [S]}})


def _event(correct: bool, skills: tuple[str, ...] = ("s",), item: str = "i") -> AnswerEvent:
    return AnswerEvent("u", item, skills, correct)


def _next_mastery(m: float, correct: bool, learn: float, forget: float, guess: float,
                  slip: float) -> float:
    """Hand-written BKT: condition on the answer, then apply the transition."""
    if correct:
        post = m * (1 - slip) / (m * (1 - slip) + (1 - m) * guess)
    else:
        post = m * slip / (m * slip + (1 - m) * (1 - guess))
    return post * (1 - forget) + (1 - post) * learn


@pytest.mark.parametrize("forget", [0.0, 0.15])
def test_hand_computed_update(forget: float) -> None:
    model = _one_skill(forget)
    state = model.new_state()
    assert model.mastery(state) == {"s": pytest.approx(P, rel=1e-12)}
    assert model.predict_correct(state, "i", ["s"]) == pytest.approx(P * 0.9 + 0.7 * 0.25,
                                                                    rel=1e-12)
    after_right = model.update(state, _event(True))
    post = 0.3 * 0.9 / (0.3 * 0.9 + 0.7 * 0.25)
    m_right = post * (1 - forget) + (1 - post) * 0.2
    assert model.mastery(after_right)["s"] == pytest.approx(m_right, rel=1e-12)
    assert model.predict_correct(after_right, "i", ["s"]) == pytest.approx(
        m_right * 0.9 + (1 - m_right) * 0.25, rel=1e-12)
    after_wrong = model.update(state, _event(False))
    post = 0.3 * 0.1 / (0.3 * 0.1 + 0.7 * 0.75)
    m_wrong = post * (1 - forget) + (1 - post) * 0.2
    assert model.mastery(after_wrong, ["s"])["s"] == pytest.approx(m_wrong, rel=1e-12)
    # a second answer from there, and the input state is never modified
    twice = model.update(after_right, _event(False))
    assert model.mastery(twice)["s"] == pytest.approx(
        _next_mastery(m_right, False, L, forget, G, S), rel=1e-12)
    assert model.mastery(state)["s"] == pytest.approx(P, rel=1e-12)
    assert model.forgets is (forget > 0)


def test_hand_computed_multi_skill_and_item_classes() -> None:
    model = BKT.from_pybkt({
        "a": {"prior": 0.3, "learns": [0.2], "guesses": [0.25], "slips": [0.1]},
        "b": {"prior": 0.6, "learns": [0.1], "forgets": [0.05], "guesses": [0.1, 0.3],
              "slips": [0.2, 0.05], "gs_names": ["i1", "i2"]},
    })
    assert model.item_guess_slip and model.forgets
    state = model.new_state()
    p_a = 0.3 * 0.9 + 0.7 * 0.25
    p_b_i1 = 0.6 * 0.8 + 0.4 * 0.1
    p_b_new = 0.6 * (1 - 0.125) + 0.4 * 0.2  # unseen item: the default class, mean of classes
    assert model.predict_correct(state, "i1", ["a"]) == pytest.approx(p_a, rel=1e-12)
    assert model.predict_correct(state, "i1", ["b"]) == pytest.approx(p_b_i1, rel=1e-12)
    assert model.predict_correct(state, "zz", ["b"]) == pytest.approx(p_b_new, rel=1e-12)
    # a two-skill item: the mean of the per-skill P(correct)
    assert model.predict_correct(state, "i1", ["a", "b"]) == pytest.approx(
        (p_a + p_b_i1) / 2, rel=1e-12)
    # a two-skill answer is evidence for each skill, with each skill's own parameters
    after = model.update(state, _event(False, ("a", "b"), item="i1"))
    assert model.mastery(after) == {
        "a": pytest.approx(_next_mastery(0.3, False, 0.2, 0.0, 0.25, 0.1), rel=1e-12),
        "b": pytest.approx(_next_mastery(0.6, False, 0.1, 0.05, 0.1, 0.2), rel=1e-12),
    }
    only_a = model.update(state, _event(True, ("a",)))
    assert model.mastery(only_a)["b"] == pytest.approx(0.6, rel=1e-12)  # b untouched


def test_state_bytes_round_trip(std_model: BKT) -> None:
    state = std_model.update(std_model.new_state(), _event(True, ("s1",)))
    data = std_model.state_to_bytes(state)
    assert len(data) == 8 * 4
    assert np.array_equal(std_model.state_from_bytes(data), state)
    with pytest.raises(ValueError, match="BKT state of this model is 32 bytes, got 24"):
        std_model.state_from_bytes(data[:24])


def test_bkt_is_a_tracer(std_model: BKT) -> None:
    assert isinstance(std_model, Tracer)


# ============================================================================ online = batch
def test_online_fold_equals_predict_log(small_multi: tuple[AnswerLog, BKT]) -> None:
    log, model = small_multi
    assert np.any(np.diff(log.skill_ptr) == 2)
    mixed, order = _interleave(log, seed=8)
    assert not np.all(np.diff(mixed.learner) >= 0)  # learners really are interleaved
    batch = model.predict_log(mixed)
    states: dict[str, np.ndarray] = {}
    online = np.empty(len(mixed))
    for i, event in enumerate(mixed.events()):
        state = states.get(event.learner)
        if state is None:
            state = model.new_state()
        online[i] = model.predict_correct(state, event.item, event.skills)
        states[event.learner] = model.update(state, event)
    np.testing.assert_allclose(online, batch, rtol=1e-12, atol=0)
    # and the interleaving itself changes nothing
    np.testing.assert_allclose(batch, model.predict_log(log)[order], rtol=1e-12, atol=0)


def test_multi_skill_fit_equals_fit_on_exploded_log(small_multi: tuple[AnswerLog, BKT]) -> None:
    """A two-skill answer counts as one answer for each skill, in fitting and in prediction."""
    log, _ = small_multi
    exploded = _log_from_rows([(u, it, (s,), c) for u, it, sk, c in _rows(log) for s in sk])
    assert list(exploded.skill_ids) == list(log.skill_ids)
    multi_model = BKT(seed=1).fit(log)
    flat_model = BKT(seed=1).fit(exploded)
    for name in ("prior", "learn", "guess", "slip"):
        np.testing.assert_allclose(getattr(multi_model.params_, name),
                                   getattr(flat_model.params_, name), rtol=1e-12, err_msg=name)
    assert np.array_equal(multi_model.fit_info_["n_answers"], flat_model.fit_info_["n_answers"])
    p_multi = multi_model.predict_log(log)
    p_flat = flat_model.predict_log(exploded)
    counts = np.diff(log.skill_ptr)
    expected = np.add.reduceat(p_flat, log.skill_ptr[:-1]) / counts
    np.testing.assert_allclose(p_multi, expected, rtol=1e-12)
    assert np.all((p_multi > 0) & (p_multi < 1))


# ============================================================================ degenerate data
@pytest.mark.parametrize("options", [
    {}, {"forgets": True}, {"item_guess_slip": True}, {"max_guess": 0.3, "max_slip": 0.2},
    {"max_guess": 1.0, "max_slip": 1.0, "forgets": True},
])
def test_degenerate_skills(options: dict) -> None:
    rows = [("u0", "q1", ("one",), True)]
    for u in range(3):
        rows += [(f"u{u}", f"c{j}", ("allc",), True) for j in range(4)]
        rows += [(f"u{u}", f"w{j}", ("allw",), False) for j in range(4)]
        rows += [(f"u{u}", f"n{j}", ("norm",), bool((u + j) % 3)) for j in range(5)]
    log = _log_from_rows(rows)
    model = BKT(**options).fit(log)
    params = model.params_
    assert params is not None
    for name in ("prior", "learn", "forget", "guess", "slip"):
        values = getattr(params, name)
        assert np.all(np.isfinite(values) & (values >= 0) & (values <= 1)), name
    assert np.all(params.guess <= model.max_guess)
    assert np.all(params.slip <= model.max_slip)
    assert np.all(np.isfinite(model.fit_info_["loglik"]))
    p = model.predict_log(log)
    assert np.all(np.isfinite(p) & (p >= 0) & (p <= 1))
    state = model.new_state()
    for event in log.events():
        state = model.update(state, event)
    assert all(0 <= v <= 1 for v in model.mastery(state).values())


def test_constructor_and_fit_validation() -> None:
    with pytest.raises(ValueError, match="num_fits"):
        BKT(num_fits=0)
    with pytest.raises(ValueError, match="max_iter"):
        BKT(max_iter=0)
    with pytest.raises(ValueError, match="eps"):
        BKT(eps=0.6)
    with pytest.raises(ValueError, match="empty log"):
        BKT().fit(AnswerLog.from_events([]))


# ============================================================================ unseen skills
def test_unseen_skills_use_fallback_parameters(std_model: BKT) -> None:
    params = std_model.params_
    assert params is not None
    log = _log_from_rows([
        ("u", "x", ("s0",), True),
        ("u", "x", ("zz",), False),
        ("u", "x", ("zz",), True),
        ("u", "x", ("s0", "zz"), True),
        ("v", "y", ("yy",), True),
    ])
    assert std_model.unseen_skills(log) == 4
    assert std_model.unseen_skills(log.take(np.array([0]))) == 0
    p = std_model.predict_log(log)
    assert np.all(np.isfinite(p) & (p > 0) & (p < 1))
    prior, learn = params.prior.mean(), params.learn.mean()
    guess, slip = params.guess.mean(), params.slip.mean()  # one (default) class per skill
    m0 = prior
    assert p[1] == pytest.approx(m0 * (1 - slip) + (1 - m0) * guess, rel=1e-12)
    m1 = _next_mastery(m0, False, learn, 0.0, guess, slip)
    assert p[2] == pytest.approx(m1 * (1 - slip) + (1 - m1) * guess, rel=1e-12)
    assert p[4] == pytest.approx(p[1], rel=1e-12)  # another unseen skill, a fresh learner
    with pytest.raises(KeyError, match="skill 'zz' is not in this BKT model"):
        std_model.update(std_model.new_state(), _event(True, ("zz",)))


def test_unseen_items_use_the_default_class_online_and_in_batch(idem_model: BKT) -> None:
    params = idem_model.params_
    assert params is not None
    k = params.skills.index("s0")
    d = int(params.gs_ptr[k + 1] - 1)  # s0's default class
    log = _log_from_rows([("u", "brand-new", ("s0",), False), ("u", "s0-i1", ("s0",), True),
                          ("u", "brand-new", ("s0",), True), ("v", "s0-i0", ("s0",), True)])
    p = idem_model.predict_log(log)
    m0 = params.prior[k]
    assert p[0] == pytest.approx(m0 * (1 - params.slip[d]) + (1 - m0) * params.guess[d],
                                 rel=1e-12)
    state, online = idem_model.new_state(), []
    for event in list(log.events())[:3]:
        online.append(idem_model.predict_correct(state, event.item, event.skills))
        state = idem_model.update(state, event)
    np.testing.assert_allclose(online, p[:3], rtol=1e-12, atol=0)


def test_skills_without_training_answers_are_not_fitted() -> None:
    """A train split made with take()/select_learners keeps the full skill vocabulary (as in
    training/cli.py and training/replay.py); a skill with no training answers must be served
    like any skill the model was not fitted on, not with EM's random starting point."""
    log = _log_from_rows([("u", "i", ("a",), True), ("u", "j", ("a",), False),
                          ("v", "i", ("a",), True), ("v", "j", ("a",), True),
                          ("w", "k", ("b",), False)])
    train, test = log.take(np.array([0, 1, 2, 3])), log.take(np.array([4]))
    assert list(train.skill_ids) == ["a", "b"]  # "b" is in the vocabulary, with no answers
    for options in ({}, {"item_guess_slip": True}):
        model = BKT(**options).fit(train)
        params = model.params_
        assert params is not None
        a = params.skills.index("a")
        da = int(params.gs_ptr[a + 1] - 1)
        fallback = params.prior[a] * (1 - params.slip[da]) + (1 - params.prior[a]) * \
            params.guess[da]  # the mean over fitted skills = skill a's own parameters
        assert model.unseen_skills(test) == 1, options
        assert model.predict_log(test)[0] == pytest.approx(fallback, rel=1e-12), options


# ============================================================================ persistence
def _same_predictions(a: BKT, b: BKT, log: AnswerLog) -> None:
    assert np.array_equal(a.predict_log(log), b.predict_log(log))
    sa, sb = a.new_state(), b.new_state()
    for event in list(log.events())[:50]:
        assert a.predict_correct(sa, event.item, event.skills) == \
            b.predict_correct(sb, event.item, event.skills)
        sa, sb = a.update(sa, event), b.update(sb, event)
    assert a.mastery(sa) == b.mastery(sb)


def test_save_load_round_trip(small_multi: tuple[AnswerLog, BKT], tmp_path) -> None:
    log, model = small_multi
    path = tmp_path / "bkt.json"
    model.save(path)
    loaded = BKT.load(path)
    assert loaded.get_options() == model.get_options()
    assert loaded.name == model.name
    assert loaded.params_.gs_names == model.params_.gs_names  # type: ignore[union-attr]
    _same_predictions(model, loaded, log)


def test_pybkt_json_round_trip(small_multi: tuple[AnswerLog, BKT]) -> None:
    log, model = small_multi
    coef = json.loads(json.dumps(model.to_pybkt()))
    assert set(coef) == set(model.params_.skills)  # type: ignore[union-attr]
    back = BKT.from_pybkt(coef)
    assert back.forgets and back.item_guess_slip
    _same_predictions(model, back, log)


def test_from_pybkt_accepts_numpy_arrays_without_forgets() -> None:
    model = BKT.from_pybkt({"s": {"prior": np.float64(P), "learns": np.array([L]),
                                  "guesses": np.array([G]), "slips": np.array([S])}})
    assert not model.forgets and not model.item_guess_slip
    assert model.params_.gs_names == ("default",)  # type: ignore[union-attr]
    assert model.predict_correct(model.new_state(), "i", ["s"]) == pytest.approx(
        P * (1 - S) + (1 - P) * G, rel=1e-12)


def test_load_rejects_other_files(std_model: BKT, tmp_path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"s": {"prior": 0.3}}))
    with pytest.raises(ValueError, match="not a tutor-bkt parameter file"):
        BKT.load(other)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON file"):
        BKT.load(garbage)
    path = tmp_path / "bkt.json"
    std_model.save(path)
    doc = json.loads(path.read_text())
    doc["version"] = 2
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="tutor-bkt version 2 is not supported"):
        BKT.load(path)


def _coef(**changes: object) -> dict:
    p = {"prior": P, "learns": [L], "forgets": [0.0], "guesses": [G], "slips": [S]}
    p.update(changes)
    return {"s": {k: v for k, v in p.items() if v is not None}}


@pytest.mark.parametrize(("coef", "match"), [
    (_coef(learns=None), "skill 's': missing 'learns'"),
    (_coef(prior=None), "skill 's': missing 'prior'"),
    (_coef(slips=None), "skill 's': missing 'slips'"),
    (_coef(guesses=[0.1, 0.2]), "guesses and slips differ in length"),
    (_coef(learns=[0.1, 0.2]), "multilearn"),
    (_coef(guesses=[0.1, 0.2], slips=[0.1, 0.1], gs_names=["a"]), "gs_names has 1 names for 2"),
    (_coef(guesses=[0.1, 0.2], slips=[0.1, 0.1], gs_names=["default", "a"]), "must come last"),
    (_coef(prior=1.5), "prior must lie in \\[0, 1\\]"),
    (_coef(prior=float("nan")), "prior must lie in \\[0, 1\\]"),
    (_coef(learns=[-0.1]), "learn must lie in \\[0, 1\\]"),
    (_coef(forgets=[2.0]), "forget must lie in \\[0, 1\\]"),
    (_coef(guesses=[1.2]), "guess must lie in \\[0, 1\\]"),
    (_coef(slips=[-1e-3]), "slip must lie in \\[0, 1\\]"),
])
def test_from_pybkt_rejects_bad_parameters(coef: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BKT.from_pybkt(coef)


def test_unknown_skill_raises_key_error(std_model: BKT) -> None:
    state = std_model.new_state()
    with pytest.raises(KeyError, match="skill 'nope' is not in this BKT model"):
        std_model.update(state, _event(True, ("nope",)))
    with pytest.raises(KeyError, match="'nope'"):
        std_model.predict_correct(state, "i", ["nope"])
    with pytest.raises(KeyError, match="'nope'"):
        std_model.mastery(state, ["nope"])


def test_unfitted_model_raises(tmp_path) -> None:
    model = BKT()
    log = _log_from_rows([("u", "i", ("s",), True)])
    state = np.zeros(1)
    calls = [
        lambda: model.predict_log(log), model.new_state,
        lambda: model.update(state, _event(True)),
        lambda: model.predict_correct(state, "i", ["s"]), lambda: model.mastery(state),
        lambda: model.state_from_bytes(b""), lambda: model.save(tmp_path / "x.json"),
        model.to_pybkt, lambda: model.unseen_skills(log),
    ]
    for call in calls:
        with pytest.raises(NotFittedError, match="not fitted"):
            call()


# ============================================================================ properties
prob = st.floats(min_value=1e-4, max_value=1 - 1e-4, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(prior=prob, learn=prob, forget=st.one_of(st.just(0.0), prob), guess=prob, slip=prob,
       answers=st.lists(st.booleans(), max_size=15))
def test_update_properties(prior: float, learn: float, forget: float, guess: float,
                           slip: float, answers: list[bool]) -> None:
    assume(guess + slip < 1 and learn + forget <= 1)
    model = BKT.from_pybkt({"s": {"prior": prior, "learns": [learn], "forgets": [forget],
                                  "guesses": [guess], "slips": [slip]}})
    state = model.new_state()
    online = []
    for correct in answers:
        p = model.predict_correct(state, "i", ["s"])
        assert 0.0 <= p <= 1.0
        online.append(p)
        right = model.mastery(model.update(state, _event(True)))["s"]
        wrong = model.mastery(model.update(state, _event(False)))["s"]
        assert 0.0 <= wrong <= 1.0 and 0.0 <= right <= 1.0
        assert right >= wrong - 1e-12
        state = model.update(state, _event(correct))
        assert math.isfinite(model.mastery(state)["s"])
    if answers:
        log = _log_from_rows([("u", "i", ("s",), c) for c in answers])
        np.testing.assert_allclose(model.predict_log(log), online, rtol=1e-12, atol=0)
