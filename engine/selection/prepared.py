"""A catalog's structure as arrays, built once per catalog and reused by every selection call.

Selection runs after every answer, so everything that depends only on the catalog (the
prerequisite edges, which skills each item practises, which items belong to each course, the
items' tie-break hashes) is computed once here. A call then costs a few vectorized numpy
operations plus the tracer's vectorized predictions over the catalog's
:class:`~engine.tracing.items.ItemIndex` (which each tracer maps onto its parameters once).

Catalogs are immutable but cannot be weakly referenced (``__slots__``), so :func:`prepare` keeps a
small LRU of strong references keyed by ``id(catalog)``; holding the catalog in the entry means its
id cannot be reused by another object while the entry exists.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np

from engine.catalog import Catalog
from engine.tracing.base import Tracer
from engine.tracing.items import ItemIndex

_CACHE_SIZE = 16  # catalogs (tenants) kept prepared at once


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
        #: the items and their skills as the tracers' vectorized predictions take them
        self.index = index = ItemIndex(((i.id, i.skills) for i in catalog.items.values()),
                                       tuple(catalog.skills))
        self.skill_ids = index.skill_ids
        self.item_ids = index.item_ids
        self.item_skills = index.item_skills
        self.pair_ptr, self.pair_skill, self.pair_count = (index.pair_ptr, index.pair_skill,
                                                           index.pair_count)
        skill_index = {s: k for k, s in enumerate(self.skill_ids)}
        edges = [(skill_index[s], skill_index[r])
                 for s, skill in catalog.skills.items() for r in skill.requires]
        #: prerequisite edges: skill ``edge_skill[e]`` requires skill ``edge_req[e]``
        self.edge_skill = np.array([e[0] for e in edges], dtype=np.intp)
        self.edge_req = np.array([e[1] for e in edges], dtype=np.intp)
        self.has_prereq = np.zeros(len(self.skill_ids), dtype=bool)
        self.has_prereq[self.edge_skill] = True
        self.item_index = {i: n for n, i in enumerate(self.item_ids)}
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


    def indices_of(self, ids: Sequence[str]) -> list[int]:
        """Indices of the catalog items among ``ids``; ids no longer in the catalog are skipped."""
        return [n for n in (self.item_index.get(i) for i in ids) if n is not None]

    def all_per_item(self, pair_flags: np.ndarray) -> np.ndarray:
        """True for the items whose every (item, skill) pair flag is set."""
        return self.index.all_per_item(pair_flags)

    def tie_keys(self, items: np.ndarray, seed: int, learner: str) -> np.ndarray:
        """A pseudo-random order of ``items`` fixed by (seed, learner): equally good items are
        spread over learners, yet one learner sees the same choice for the same state."""
        mix = np.uint64(_hash64(f"{seed}\x1f{learner}"))
        return _splitmix64(self.item_hash[items] ^ mix)

    def mastery(self, tracer: Tracer[Any], state: Any, at: datetime | None = None,
                ) -> np.ndarray:
        """P(mastered) of every catalog skill at ``at``, in catalog order."""
        return tracer.mastery_of(state, self.index, at=at)

    def predict(self, tracer: Tracer[Any], state: Any, items: np.ndarray,
                at: datetime | None = None) -> np.ndarray:
        """P(correct) of ``items`` (indices) at ``at``, as ``tracer.predict_correct`` gives
        it."""
        return tracer.predict_items(state, self.index, at=at)[items]


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

