"""Bayesian Knowledge Tracing (Corbett & Anderson 1995) with the common extensions.

* standard BKT: prior, learn, guess, slip per skill;
* ``forgets=True``: a forget probability per skill (Khajah et al. 2016's BKT+forgetting);
* ``item_guess_slip=True``: guess/slip per item within a skill (KT-IDEM, Pardos & Heffernan 2011;
  pyBKT's ``multigs``);
* multi-skill answers: the answer is evidence for each of its skills, and P(correct) of a
  multi-skill item is the mean over its skills.

Fitting is EM with random restarts, compiled with numba (:mod:`engine.tracing._bkt_kernels`):
a skill's restarts run in lockstep, skills are spread over the cores. The online update is closed
form and constant time: a learner's state is one float per skill, P(not mastered) before their
next answer (the complement keeps its precision as mastery approaches 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self

import numba
import numpy as np

from engine.events import AnswerEvent, AnswerLog
from engine.tracing._bkt_kernels import (
    bkt_step,
    em_fit,
    forward_predict,
    is_probabilities,
    p_correct,
    sequence_hashes,
    step_pairs,
)
from engine.tracing.base import Cached, DocumentTracer, FitProgress, NotFittedError
from engine.tracing.bkt_params import DEFAULT_CLASS, BKTParams
from engine.tracing.items import ItemIndex

# Starting points are drawn like pyBKT's (random_model_uni), so restarts explore the same region.
_INIT_HIGH = {"prior": 1.0, "learn": 0.4, "forget": 0.2, "guess": 0.4, "slip": 0.3}


@dataclass(frozen=True, eq=False)
class Layout:
    """A log's (answer, skill) pairs grouped into sequences: one learner on one skill.

    ``pairs`` are positions in the log's CSR skill list (so ``pair_row[pairs]`` is the log row);
    everything else is in laid-out order, sequences contiguous and chronological.
    """

    pairs: np.ndarray
    correct: np.ndarray
    gs: np.ndarray
    seq_ptr: np.ndarray
    seq_skill: np.ndarray


def layout(log: AnswerLog, skill_of_code: np.ndarray, class_of: Any) -> Layout:
    """Group ``log``'s answers by (skill, learner); ``skill_of_code`` maps the log's skill codes to
    model skill indices, ``class_of(pair_skill, pair_item)`` gives each pair's guess/slip class."""
    counts = np.diff(log.skill_ptr)
    pair_row = np.repeat(np.arange(len(log)), counts)
    pair_skill = skill_of_code[log.skill_codes]
    pair_learner = log.learner[pair_row]
    if np.all(pair_learner[1:] >= pair_learner[:-1]):
        # learners already contiguous (codes follow first appearance): sorting by skill alone
        # keeps them so, and a stable sort of small integers is a fast radix sort
        small = np.uint16 if pair_skill.max(initial=0) < 2**16 else np.int64
        pairs = np.argsort(pair_skill.astype(small), kind="stable")
    else:
        key = pair_skill.astype(np.int64) * max(log.n_learners, 1) + pair_learner
        pairs = np.argsort(key, kind="stable")  # stable: keeps log (chronological) order
    skill = pair_skill[pairs]
    learner = pair_learner[pairs]
    new_seq = (skill[1:] != skill[:-1]) | (learner[1:] != learner[:-1])
    seq_ptr = np.concatenate(([0], np.flatnonzero(new_seq) + 1, [len(pairs)])).astype(np.int64)
    return Layout(
        pairs=pairs,
        correct=log.correct[pair_row[pairs]],
        gs=class_of(skill, log.item[pair_row[pairs]]).astype(np.int64),
        seq_ptr=seq_ptr,
        seq_skill=skill[seq_ptr[:-1]] if len(pairs) else np.empty(0, np.int64),
    )


def unique_sequences(lay: Layout) -> tuple[Layout, np.ndarray]:
    """Keep one copy of each distinct sequence of a skill, with its multiplicity as weight.

    Learner logs repeat short sequences a lot (on assist2009 a quarter of the answers sit in
    duplicates): EM then does the work once and scales the expected counts. The result is only
    for fitting (``pairs`` is dropped).
    """
    hashes = sequence_hashes(lay.correct, lay.gs, lay.seq_ptr)
    lengths = np.diff(lay.seq_ptr)
    order = np.lexsort((hashes[:, 1], hashes[:, 0], lengths, lay.seq_skill))  # skill first
    keys = (lay.seq_skill[order], lengths[order], hashes[order, 0], hashes[order, 1])
    new_key = np.zeros(len(order), dtype=bool)
    new_key[:1] = True
    for key in keys:
        new_key[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(new_key)
    first = order[starts]
    weight = np.diff(np.append(starts, len(order)))
    new_len = lengths[first]
    seq_ptr = np.concatenate(([0], np.cumsum(new_len))).astype(np.int64)
    rows = np.repeat(lay.seq_ptr[first] - seq_ptr[:-1], new_len) + np.arange(seq_ptr[-1])
    unique = Layout(pairs=np.empty(0, np.int64), correct=lay.correct[rows], gs=lay.gs[rows],
                    seq_ptr=seq_ptr, seq_skill=lay.seq_skill[first])
    return unique, weight.astype(np.float64)


class BKT(DocumentTracer[np.ndarray]):
    """Bayesian Knowledge Tracing; implements :class:`engine.tracing.base.Tracer`.

    Parameters mirror pyBKT's where they mean the same thing (``num_fits``, ``seed``, ``forgets``).
    ``tol`` is the change of a skill's log-likelihood at which EM stops (pyBKT's criterion and
    default); ``max_guess``/``max_slip`` bound guess and slip so that the "mastered" state cannot
    mean answering worse than the "not mastered" one (set both to 1 for unconstrained EM);
    ``eps`` keeps every probability off 0 and 1, so no answer is ever impossible.
    """

    def __init__(
        self,
        *,
        forgets: bool = False,
        item_guess_slip: bool = False,
        num_fits: int = 5,
        seed: int | None = 0,
        tol: float = 1e-3,
        max_iter: int = 100,
        max_guess: float = 0.5,
        max_slip: float = 0.5,
        eps: float = 1e-6,
    ) -> None:
        if num_fits < 1:
            raise ValueError("num_fits must be at least 1")
        if max_iter < 1:
            raise ValueError("max_iter must be at least 1")
        if not 0 < eps < min(max_guess, max_slip) <= max(max_guess, max_slip) <= 1:
            raise ValueError("need 0 < eps < max_guess, max_slip <= 1")
        self.forgets = forgets
        self.item_guess_slip = item_guess_slip
        self.num_fits = num_fits
        self.seed = seed
        self.tol = tol
        self.max_iter = max_iter
        self.max_guess = max_guess
        self.max_slip = max_slip
        self.eps = eps
        self.name = "bkt-forgets" if forgets else "bkt"
        self.params_: BKTParams | None = None
        self.fit_info_: dict[str, Any] = {}
        self._views = Cached()

    def get_options(self) -> dict[str, Any]:
        return {"forgets": self.forgets, "item_guess_slip": self.item_guess_slip,
                "num_fits": self.num_fits, "seed": self.seed, "tol": self.tol,
                "max_iter": self.max_iter, "max_guess": self.max_guess,
                "max_slip": self.max_slip, "eps": self.eps}

    # ================================================================== batch side
    def fit(self, log: AnswerLog, *, valid: AnswerLog | None = None,
            progress: FitProgress | None = None) -> Self:
        """Fit every skill answered in ``log`` by EM from ``num_fits`` random starts, keeping the
        best. Skills in the log's vocabulary without answers (a split can leave some) are not
        part of the model: predictions treat them as unseen. EM needs no held-out answers, so
        ``valid`` is not used."""
        if len(log) == 0:
            raise ValueError("cannot fit BKT on an empty log")
        if progress is not None:
            progress(0, 1, f"fitting {self.name} on {len(log):,} answers", {})
        answered = np.bincount(log.skill_codes, minlength=len(log.skill_ids))
        present = np.flatnonzero(answered)
        n_skills = len(present)
        skill_of_code = np.full(len(log.skill_ids), -1, dtype=np.int64)
        skill_of_code[present] = np.arange(n_skills)
        gs_ptr, gs_names, class_of = self._classes_from(log, skill_of_code, n_skills)
        lay, weight = unique_sequences(layout(log, skill_of_code, class_of))
        skill_seq_ptr = np.searchsorted(lay.seq_skill, np.arange(n_skills + 1)).astype(np.int64)

        rng = np.random.default_rng(self.seed)
        n_classes, n_starts = len(gs_names), self.num_fits
        theta = np.zeros((n_skills, n_starts, 3))
        theta[..., 0] = rng.uniform(0, _INIT_HIGH["prior"], (n_skills, n_starts))
        theta[..., 1] = rng.uniform(0, _INIT_HIGH["learn"], (n_skills, n_starts))
        if self.forgets:
            theta[..., 2] = rng.uniform(0, _INIT_HIGH["forget"], (n_skills, n_starts))
        guess = rng.uniform(0, _INIT_HIGH["guess"], (n_classes, n_starts))
        slip = rng.uniform(0, _INIT_HIGH["slip"], (n_classes, n_starts))
        fitted = slice(0, 3 if self.forgets else 2)  # without forgetting, forget stays 0
        theta[..., fitted] = np.clip(theta[..., fitted], self.eps, 1 - self.eps)
        guess = np.clip(guess, self.eps, self.max_guess)
        slip = np.clip(slip, self.eps, self.max_slip)

        worker_ptr, worker_skills = _balance(np.diff(lay.seq_ptr[skill_seq_ptr]),
                                             numba.get_num_threads())
        loglik, iters = em_fit(
            lay.correct, lay.gs, lay.seq_ptr, weight, skill_seq_ptr, gs_ptr, worker_ptr,
            worker_skills, theta, guess, slip, self.forgets, self.max_iter, self.tol,
            np.array([self.eps, self.max_guess, self.max_slip]),
        )

        best = np.argmax(loglik, axis=1)
        skills_k = np.arange(n_skills)
        class_skill = np.repeat(skills_k, np.diff(gs_ptr))
        best_guess = guess[np.arange(n_classes), best[class_skill]]
        best_slip = slip[np.arange(n_classes), best[class_skill]]
        if self.item_guess_slip:  # the default class: the items' classes weighted by answers
            answers = np.bincount(lay.gs, weights=np.repeat(weight, np.diff(lay.seq_ptr)),
                                  minlength=n_classes)
            default = gs_ptr[1:] - 1
            total = np.maximum(np.add.reduceat(answers, gs_ptr[:-1]), 1.0)
            best_guess[default] = np.add.reduceat(answers * best_guess, gs_ptr[:-1]) / total
            best_slip[default] = np.add.reduceat(answers * best_slip, gs_ptr[:-1]) / total
        self.set_params(BKTParams(
            skills=tuple(str(s) for s in log.skill_ids[present]),
            prior=theta[skills_k, best, 0], learn=theta[skills_k, best, 1],
            forget=theta[skills_k, best, 2], gs_ptr=gs_ptr, gs_names=gs_names,
            guess=best_guess, slip=best_slip,
        ))
        self.fit_info_ = {"loglik": loglik[skills_k, best], "iterations": iters,
                          "n_answers": answered[present]}
        if progress is not None:
            progress(1, 1, f"fitted {self.name}", {"loglik": float(loglik[skills_k, best].sum())})
        return self

    def _classes_from(self, log: AnswerLog, skill_of_code: np.ndarray,
                      n_skills: int) -> tuple[np.ndarray, tuple[str, ...], Any]:
        """Guess/slip classes for a fit: one per skill, or one per (skill, item) plus defaults."""
        if not self.item_guess_slip:
            return (np.arange(n_skills + 1, dtype=np.int64), (DEFAULT_CLASS,) * n_skills,
                    lambda skill, item: skill)
        n_items = max(len(log.item_ids), 1)
        pair_item = np.repeat(log.item, np.diff(log.skill_ptr))
        seen = np.unique(skill_of_code[log.skill_codes] * n_items + pair_item)
        seen_skill = seen // n_items
        gs_ptr = (np.searchsorted(seen_skill, np.arange(n_skills + 1)) + np.arange(n_skills + 1))
        names = np.full(len(seen) + n_skills, DEFAULT_CLASS, dtype=object)
        names[np.arange(len(seen)) + seen_skill] = log.item_ids[seen % n_items]

        def class_of(skill: np.ndarray, item: np.ndarray) -> np.ndarray:
            pos = np.searchsorted(seen, skill.astype(np.int64) * n_items + item)
            return pos + skill  # every pair of the fitted log is in ``seen``

        return gs_ptr.astype(np.int64), tuple(str(n) for n in names), class_of

    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """One-step-ahead P(correct) per answer; each learner starts from the fitted prior.

        Skills the model was not fitted on use the mean fitted parameters.
        """
        params = self._fitted()
        skill_of_code = self._skill_of_code(log)
        prior, learn, forget, guess, slip = _with_fallback(params)
        lay = layout(log, skill_of_code, self._class_lookup(log))
        pred = np.empty(len(lay.pairs))
        forward_predict(lay.correct, lay.gs, lay.seq_ptr, lay.seq_skill, prior, learn, forget,
                        guess, slip, pred)
        per_pair = np.empty_like(pred)
        per_pair[lay.pairs] = pred
        counts = np.diff(log.skill_ptr)
        if len(log) == 0:
            return per_pair
        return np.add.reduceat(per_pair, log.skill_ptr[:-1]) / counts

    @property
    def skills(self) -> tuple[str, ...]:
        return self._fitted().skills

    # ================================================================== online side
    def new_state(self) -> np.ndarray:
        return 1.0 - self._fitted().prior

    def with_mastery(self, state: np.ndarray, mastery: Mapping[str, float]) -> np.ndarray:
        known = set(self._fitted().skills)
        new = np.array(state, dtype=np.float64)  # a copy: states may be read-only views
        for skill, p in mastery.items():
            if skill in known:
                self._write_mastery(new, self._index_of(skill), _checked_mastery(skill, p))
        return new

    def _write_mastery(self, state: np.ndarray, k: int, p: float) -> None:
        """Set skill ``k``'s P(mastered) to ``p`` in ``state`` (its P(not mastered))."""
        state[k] = 1.0 - p

    def update(self, state: np.ndarray, event: AnswerEvent) -> np.ndarray:
        params = self._fitted()
        new = state.copy()
        correct = int(event.correct)
        for skill in event.skills:
            k = self._index_of(skill)
            g = self._online_class(k, event.item)
            new[k] = bkt_step(state[k], correct, params.guess[g], params.slip[g],
                              params.learn[k], params.forget[k])
        return new

    def predict_correct(self, state: np.ndarray, item: str, skills: Sequence[str], *,
                        at: datetime | None = None) -> float:
        params = self._fitted()
        if not skills:
            raise ValueError(f"item {item!r} needs at least one skill")
        total = 0.0
        for skill in skills:
            k = self._index_of(skill)
            g = self._online_class(k, item)
            total += p_correct(state[k], params.guess[g], params.slip[g])
        return float(total / len(skills))

    def predict_items(self, state: np.ndarray, items: ItemIndex, *,
                      at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        q = state[view.pair_skill]  # P(not mastered)
        return items.mean_per_item((1.0 - q) * (1.0 - view.pair_slip) + q * view.pair_guess)

    def mastery(self, state: np.ndarray, skills: Sequence[str] | None = None, *,
                at: datetime | None = None) -> dict[str, float]:
        params = self._fitted()
        if skills is None:
            return dict(zip(params.skills, (1.0 - state).tolist(), strict=True))
        return {s: 1.0 - float(state[self._index_of(s)]) for s in skills}

    def mastery_of(self, state: np.ndarray, items: ItemIndex, *,
                   at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        return 1.0 - state[view.skill]

    # a batch is an array (learners, skills) of P(not mastered): row i is learner i's state
    def new_states(self, n: int) -> np.ndarray:
        return np.tile(self.new_state(), (n, 1))

    def update_many(self, states: np.ndarray, items: ItemIndex, chosen: np.ndarray,
                    correct: np.ndarray, *, at: datetime | None = None) -> np.ndarray:
        params = self._fitted()
        view: _ItemView = self._views.get(items, self._view)
        rows, counts, pairs = items.steps(chosen)
        new = np.array(states, dtype=float)  # a copy: the batch given is left unchanged
        step_pairs(new, np.repeat(rows, counts), view.pair_skill[pairs],
                   np.repeat(correct[rows], counts).astype(np.int64), view.pair_guess[pairs],
                   view.pair_slip[pairs], params.learn, params.forget)
        return new

    def predict_items_many(self, states: np.ndarray, items: ItemIndex, *,
                           at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        q = states[:, view.pair_skill]
        return items.mean_per_item((1.0 - q) * (1.0 - view.pair_slip) + q * view.pair_guess)

    def mastery_of_many(self, states: np.ndarray, items: ItemIndex, *,
                        at: datetime | None = None) -> np.ndarray:
        view: _ItemView = self._views.get(items, self._view)
        return 1.0 - states[:, view.skill]

    def state_to_bytes(self, state: np.ndarray) -> bytes:
        return np.ascontiguousarray(state, dtype="<f8").tobytes()

    def state_from_bytes(self, data: bytes) -> np.ndarray:
        """The state in ``data``, read in place (read-only: :meth:`update` never mutates);
        ValueError unless it is a probability per skill (damaged bytes)."""
        n = len(self._fitted().skills)
        if len(data) != 8 * n:
            raise ValueError(f"a BKT state of this model is {8 * n} bytes, got {len(data)}")
        state = np.frombuffer(data, dtype="<f8")
        if not is_probabilities(state):
            raise ValueError("a BKT state holds a value that is not a probability (NaN, or "
                             "out of [0, 1])")
        return state

    # ================================================================== persistence
    def _document(self) -> dict[str, Any]:
        return self._fitted().to_document(model=self.name, options=self.get_options())

    @classmethod
    def _from_document(cls, doc: Any, source: str) -> Self:
        params, _, options = BKTParams.from_document(doc, source)
        return cls(**options).set_params(params)

    def to_pybkt(self) -> dict[str, dict[str, Any]]:
        """Parameters in pyBKT's ``coef_`` shape (plain lists), ready for ``json.dump``."""
        return self._fitted().to_pybkt()

    @classmethod
    def from_pybkt(cls, coef: dict[str, dict[str, Any]], **options: Any) -> Self:
        """A fitted model from pyBKT's ``coef_`` (e.g. ``json.load`` of :meth:`to_pybkt`)."""
        params = BKTParams.from_pybkt(coef)
        options.setdefault("forgets", bool(np.any(params.forget > 0)))
        options.setdefault("item_guess_slip", bool(np.any(np.diff(params.gs_ptr) > 1)))
        return cls(**options).set_params(params)

    def set_params(self, params: BKTParams) -> Self:
        self.params_ = params
        self._index = params.skill_index()
        self._gs_index = {
            (k, params.gs_names[g]): g
            for k in range(len(params.skills))
            for g in range(params.gs_ptr[k], params.gs_ptr[k + 1])
        }
        self._views.clear()
        return self

    # ================================================================== internals
    def _fitted(self) -> BKTParams:
        if self.params_ is None:
            raise NotFittedError("this BKT model is not fitted: call fit() or BKT.load() first")
        return self.params_

    def _index_of(self, skill: str) -> int:
        try:
            return self._index[skill]
        except KeyError:
            raise KeyError(f"skill {skill!r} is not in this BKT model "
                           f"({len(self._index)} skills)") from None

    def _view(self, items: ItemIndex) -> _ItemView:
        """``items``' (item, skill) pairs mapped onto this model's skills and guess/slip
        classes, resolved like :meth:`predict_correct` (KeyError for an unknown skill)."""
        params = self._fitted()
        skill = np.array([self._index_of(s) for s in items.skill_ids], dtype=np.intp)
        pair_skill = skill[items.pair_skill]
        pair_item = np.repeat(np.arange(len(items)), items.pair_count)
        pair_class = np.array([self._online_class(int(k), items.item_ids[i])
                               for k, i in zip(pair_skill, pair_item, strict=True)],
                              dtype=np.intp)
        return _ItemView(skill, pair_skill, params.guess[pair_class], params.slip[pair_class])

    def _online_class(self, k: int, item: str) -> int:
        params = self.params_
        assert params is not None
        return self._gs_index.get((k, item), int(params.gs_ptr[k + 1] - 1))

    def _skill_of_code(self, log: AnswerLog) -> np.ndarray:
        index = self._fitted().skill_index()
        fallback = len(index)
        return np.array([index.get(s, fallback) for s in log.skill_ids], dtype=np.int64)

    def _class_lookup(self, log: AnswerLog) -> Any:
        """``class_of`` for a log to predict: (model skill, log item code) -> class, the skill's
        default class for unseen items, and the fallback class for unseen skills."""
        params = self._fitted()
        n_skills, n_classes = len(params.skills), len(params.gs_names)
        if not self.item_guess_slip and np.all(np.diff(params.gs_ptr) == 1):
            return lambda skill, item: np.where(skill < n_skills, skill, n_classes)
        n_items = max(len(log.item_ids), 1)

        def class_of(skill: np.ndarray, item: np.ndarray) -> np.ndarray:
            codes, inverse = np.unique(skill * n_items + item, return_inverse=True)
            table = np.array([
                n_classes if k == n_skills
                else self._online_class(int(k), str(log.item_ids[i]))
                for k, i in zip(codes // n_items, codes % n_items, strict=True)
            ], dtype=np.int64)
            return table[inverse]

        return class_of


def _checked_mastery(skill: str, p: float) -> float:
    """``p`` if it is a probability; ValueError naming ``skill`` if not."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the mastery of {skill!r} must be in [0, 1], got {p}")
    return float(p)


@dataclass(frozen=True, eq=False)
class _ItemView:
    """An :class:`ItemIndex` on one parameter set: the model index of each of its skills and of
    each (item, skill) pair, and each pair's guess and slip."""

    skill: np.ndarray
    pair_skill: np.ndarray
    pair_guess: np.ndarray
    pair_slip: np.ndarray


def _balance(work: np.ndarray, n_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Split skills among workers, biggest first to the least loaded (LPT scheduling).

    Returns CSR offsets per worker and the skills in worker order.
    """
    load = np.zeros(n_workers)
    owner = np.empty(len(work), dtype=np.int64)
    for k in np.argsort(-work, kind="stable"):
        owner[k] = w = int(np.argmin(load))
        load[w] += work[k]
    skills = np.argsort(owner, kind="stable")
    ptr = np.searchsorted(owner[skills], np.arange(n_workers + 1)).astype(np.int64)
    return ptr, skills.astype(np.int64)


def _with_fallback(params: BKTParams) -> tuple[np.ndarray, ...]:
    """Parameter arrays with one extra skill (and class) at the end: the mean fitted values, used
    for skills the model was not fitted on."""
    default = params.default_class
    return (
        np.append(params.prior, params.prior.mean()),
        np.append(params.learn, params.learn.mean()),
        np.append(params.forget, params.forget.mean()),
        np.append(params.guess, params.guess[default].mean()),
        np.append(params.slip, params.slip[default].mean()),
    )
