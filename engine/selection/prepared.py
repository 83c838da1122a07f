"""A catalog's structure as arrays, built once per catalog and reused by every selection call.

Selection runs after every answer, so everything that depends only on the catalog (the
prerequisite edges, which skills each item practises, which items belong to each course, the
items' tie-break hashes) is computed once here. A call then costs a few vectorized numpy
operations plus the tracer's predictions.

Catalogs are immutable but cannot be weakly referenced (``__slots__``), so :func:`prepare` keeps a
small LRU of strong references keyed by ``id(catalog)``; holding the catalog in the entry means its
id cannot be reused by another object while the entry exists.

For the in-process :class:`~engine.tracing.bkt.BKT` tracer, :class:`BKTView` computes mastery and
P(correct) of every item in one vectorized pass instead of one ``predict_correct`` call per item
(about 6 us each, which alone would put 200 items over a millisecond). It reads the documented
:class:`~engine.tracing.bkt_params.BKTParams` layout and reproduces ``BKT.predict_correct``
exactly (tested); :class:`LogitView` does the same for tracers whose states carry a logit per
skill (DKT). Any other tracer goes through the generic :class:`~engine.tracing.base.Tracer`
methods.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import expit

from engine.tracing.bkt import BKT

if TYPE_CHECKING:
    from content.catalog import Catalog
    from engine.tracing.base import Tracer
    from engine.tracing.bkt_params import BKTParams

_CACHE_SIZE = 16  # catalogs (tenants) kept prepared at once
_VIEWS = 4  # fitted models kept per catalog (e.g. an A/B test of two models)


def _hash64(text: str) -> int:
    """A stable 64-bit hash (Python's ``hash`` of a str changes between processes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijection on uint64 that scrambles every input bit."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


class PreparedCatalog:
    """Index arrays of one catalog; skills and items are numbered in the catalog's order."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.skill_ids: tuple[str, ...] = tuple(catalog.skills)
        skill_index = {s: k for k, s in enumerate(self.skill_ids)}
        edges = [(skill_index[s], skill_index[r])
                 for s, skill in catalog.skills.items() for r in skill.requires]
        #: prerequisite edges: skill ``edge_skill[e]`` requires skill ``edge_req[e]``
        self.edge_skill = np.array([e[0] for e in edges], dtype=np.intp)
        self.edge_req = np.array([e[1] for e in edges], dtype=np.intp)
        self.has_prereq = np.zeros(len(self.skill_ids), dtype=bool)
        self.has_prereq[self.edge_skill] = True

        self.item_ids: tuple[str, ...] = tuple(catalog.items)
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
        self.item_skills: tuple[tuple[str, ...], ...] = tuple(
            item.skills for item in catalog.items.values())
        counts = np.array([len(s) for s in self.item_skills], dtype=np.intp)
        #: CSR: the skills of item ``i`` are ``pair_skill[pair_ptr[i]:pair_ptr[i + 1]]``
        self.pair_ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.intp)
        self.pair_count = counts
        self.pair_skill = np.array([skill_index[s] for skills in self.item_skills for s in skills],
                                   dtype=np.intp)
        self.item_hash = np.array([_hash64(i) for i in self.item_ids], dtype=np.uint64)
        #: the scope of a call without a course (read-only: shared by all calls)
        self.every_item = np.ones(len(self.item_ids), dtype=bool)
        self.every_skill = np.ones(len(self.skill_ids), dtype=bool)
        self.every_item.flags.writeable = self.every_skill.flags.writeable = False

        #: per course: which skills it lists, and its items (all of whose skills it lists)
        self.course_skills: dict[str, np.ndarray] = {}
        self.course_items: dict[str, np.ndarray] = {}
        for cid, course in catalog.courses.items():
            in_course = np.zeros(len(self.skill_ids), dtype=bool)
            in_course[[skill_index[s] for s in course.skills]] = True
            items = self.all_per_item(in_course[self.pair_skill])
            in_course.flags.writeable = items.flags.writeable = False
            self.course_skills[cid] = in_course
            self.course_items[cid] = items

        self._views: OrderedDict[int, BKTView | LogitView] = OrderedDict()
        self._lock = threading.Lock()

    def indices_of(self, ids: Sequence[str]) -> list[int]:
        """Indices of the catalog items among ``ids``; ids no longer in the catalog are skipped."""
        return [n for n in (self.item_index.get(i) for i in ids) if n is not None]

    def all_per_item(self, pair_flags: np.ndarray) -> np.ndarray:
        """True for the items whose every (item, skill) pair flag is set."""
        if not self.item_ids:
            return np.zeros(0, dtype=bool)
        return np.logical_and.reduceat(pair_flags, self.pair_ptr[:-1])

    def tie_keys(self, items: np.ndarray, seed: int, learner: str) -> np.ndarray:
        """A pseudo-random order of ``items`` fixed by (seed, learner): equally good items are
        spread over learners, yet one learner sees the same choice for the same state."""
        mix = np.uint64(_hash64(f"{seed}\x1f{learner}"))
        return _splitmix64(self.item_hash[items] ^ mix)

    def mastery(self, tracer: Tracer[Any], state: Any) -> np.ndarray:
        """P(mastered) of every catalog skill, in catalog order."""
        view = self.view(tracer)
        if view is not None:
            return view.mastery(state)
        values = tracer.mastery(state, self.skill_ids)
        return np.fromiter((values[s] for s in self.skill_ids), dtype=float,
                           count=len(self.skill_ids))

    def predict(self, tracer: Tracer[Any], state: Any, items: np.ndarray) -> np.ndarray:
        """P(correct) of ``items`` (indices), exactly as ``tracer.predict_correct`` gives it."""
        view = self.view(tracer)
        if view is not None:
            return view.predict_all(state)[items]
        return np.fromiter(
            (tracer.predict_correct(state, self.item_ids[i], self.item_skills[i]) for i in items),
            dtype=float, count=len(items))

    def view(self, tracer: Tracer[Any]) -> BKTView | LogitView | None:
        """The vectorized view of a fitted BKT, or of a tracer whose states carry one logit per
        skill (DKT), when it knows every catalog skill; else None (the generic path then raises
        the tracer's own error for an unfitted model or an unknown skill)."""
        key: Any
        if type(tracer) is BKT and tracer.params_ is not None:
            key, build = tracer.params_, BKTView.build
        elif callable(getattr(tracer, "vocabulary", None)):  # states carry .logits (DKT)
            key, build = tracer.vocabulary(), LogitView.build  # type: ignore[attr-defined]
        else:
            return None
        with self._lock:
            view = self._views.get(id(key))
            if view is not None and view.key is key:
                self._views.move_to_end(id(key))
                return view
        view = build(self, key)
        if view is None:
            return None
        with self._lock:
            self._views[id(key)] = view
            while len(self._views) > _VIEWS:
                self._views.popitem(last=False)
        return view


class BKTView:
    """One catalog's (item, skill) pairs mapped onto one BKT parameter set."""

    def __init__(self, params: BKTParams, model_skill: np.ndarray, pair_model_skill: np.ndarray,
                 pair_guess: np.ndarray, pair_slip: np.ndarray, prepared: PreparedCatalog) -> None:
        self.key = params  # held so that its id cannot be reused while this view is cached
        self.model_skill = model_skill
        self.pair_model_skill = pair_model_skill
        self.pair_guess = pair_guess
        self.pair_slip = pair_slip
        self._pair_ptr = prepared.pair_ptr[:-1]
        self._pair_count = prepared.pair_count

    @classmethod
    def build(cls, prepared: PreparedCatalog, params: BKTParams) -> BKTView | None:
        """Resolve each pair's guess/slip class like ``BKT.predict_correct``: the class named
        after the item within the skill's classes, else the skill's last (``default``) class.
        None when the model lacks a catalog skill."""
        index = params.skill_index()
        if any(s not in index for s in prepared.skill_ids):
            return None
        model_skill = np.array([index[s] for s in prepared.skill_ids], dtype=np.intp)
        classes = {(k, params.gs_names[g]): g
                   for k in range(len(params.skills))
                   for g in range(params.gs_ptr[k], params.gs_ptr[k + 1])}
        pair_model_skill = model_skill[prepared.pair_skill]
        pair_item = np.repeat(np.arange(len(prepared.item_ids)), prepared.pair_count)
        pair_class = np.array(
            [classes.get((int(k), prepared.item_ids[i]), int(params.gs_ptr[k + 1]) - 1)
             for k, i in zip(pair_model_skill, pair_item, strict=True)], dtype=np.intp)
        return cls(params, model_skill, pair_model_skill, params.guess[pair_class],
                   params.slip[pair_class], prepared)

    def mastery(self, state: np.ndarray) -> np.ndarray:
        return 1.0 - state[self.model_skill]

    def predict_all(self, state: np.ndarray) -> np.ndarray:
        """P(correct) of every catalog item: the mean over its skills of BKT's emission."""
        if not len(self._pair_ptr):
            return np.zeros(0)
        q = state[self.pair_model_skill]  # P(not mastered)
        per_pair = (1.0 - q) * (1.0 - self.pair_slip) + q * self.pair_guess
        return np.add.reduceat(per_pair, self._pair_ptr) / self._pair_count


class LogitView:
    """One catalog's skills mapped onto the logits a tracer's state carries per skill (DKT:
    P(correct) of an item is the sigmoid of the mean logit of its skills)."""

    def __init__(self, index: dict[str, int], model_skill: np.ndarray,
                 prepared: PreparedCatalog) -> None:
        self.key = index  # held so that its id cannot be reused while this view is cached
        self.model_skill = model_skill
        self.pair_model_skill = model_skill[prepared.pair_skill]
        self._pair_ptr = prepared.pair_ptr[:-1]
        self._pair_count = prepared.pair_count

    @classmethod
    def build(cls, prepared: PreparedCatalog, index: dict[str, int]) -> LogitView | None:
        if any(s not in index for s in prepared.skill_ids):
            return None
        return cls(index, np.array([index[s] for s in prepared.skill_ids], dtype=np.intp),
                   prepared)

    def mastery(self, state: Any) -> np.ndarray:
        return expit(state.logits[self.model_skill].astype(np.float64))

    def predict_all(self, state: Any) -> np.ndarray:
        if not len(self._pair_ptr):
            return np.zeros(0)
        per_pair = state.logits[self.pair_model_skill].astype(np.float64)
        return expit(np.add.reduceat(per_pair, self._pair_ptr) / self._pair_count)


_cache: OrderedDict[int, PreparedCatalog] = OrderedDict()
_cache_lock = threading.Lock()


def prepare(catalog: Catalog) -> PreparedCatalog:
    """The prepared arrays of ``catalog``, built on first use and cached (LRU)."""
    with _cache_lock:
        prepared = _cache.get(id(catalog))
        if prepared is not None and prepared.catalog is catalog:
            _cache.move_to_end(id(catalog))
            return prepared
    prepared = PreparedCatalog(catalog)
    with _cache_lock:
        _cache[id(catalog)] = prepared
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return prepared

