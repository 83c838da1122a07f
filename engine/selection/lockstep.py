"""Choosing for a whole population in lockstep: :class:`BatchPolicy` and :func:`choose_many`.

A policy with a ``choose_many`` method returns, for every learner of a
:class:`~engine.selection.batch.SelectionBatch`, the item its ``choose`` ranks first for that
learner's context (:func:`context_of`), without the sentences saying why (those are for
people, not for a population); tests check the two paths agree on random states. Policies
without one still work: :func:`choose_many` then calls ``choose`` learner by learner.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from engine.catalog import Catalog
from engine.selection.batch import NO_CHOICE, SelectionBatch
from engine.selection.policy import Policy, SelectionContext
from engine.selection.prepared import prepare
from engine.tracing.base import Tracer

__all__ = ["BatchPolicy", "choose_many", "context_of"]


@runtime_checkable
class BatchPolicy(Protocol):
    """A policy that can choose for a whole batch at once."""

    def choose_many(self, tracer: Tracer[Any], states: Any, catalog: Catalog,
                    batch: SelectionBatch) -> np.ndarray:
        """The index (catalog order) of the item ``choose`` would rank first for each learner
        (``states[i]`` with ``context_of(batch, i, catalog)``), or ``NO_CHOICE``; shape (n,)."""
        ...


def context_of(batch: SelectionBatch, i: int, catalog: Catalog) -> SelectionContext:
    """Learner ``i``'s one-learner context: what ``choose`` is given for the same choice."""
    item_ids = prepare(catalog).item_ids
    known = batch.recent_items[i] >= 0
    return SelectionContext(
        recent_items=tuple(item_ids[j] for j in batch.recent_items[i][known].tolist()),
        recent_correct=tuple(bool(c) for c in batch.recent_correct[i][known]),
        course=batch.course, target_success=batch.target_success, seed=int(batch.seeds[i]),
        learner=batch.learners[i], at=batch.at, retention=batch.retention)


def choose_many(policy: Policy, tracer: Tracer[Any], states: Any, catalog: Catalog,
                batch: SelectionBatch) -> np.ndarray:
    """The first choice of ``policy`` for every learner of ``batch`` (item indices in catalog
    order, ``NO_CHOICE`` where none): its batched path when it has one, else one ``choose``
    call per learner (so a policy a later issue adds runs in the simulator before it is
    vectorized)."""
    if isinstance(policy, BatchPolicy):
        return policy.choose_many(tracer, states, catalog, batch)
    prepared = prepare(catalog)
    chosen = np.full(len(batch), NO_CHOICE, dtype=np.int64)
    for i in range(len(batch)):
        choices = policy.choose(tracer, states[i], catalog, context_of(batch, i, catalog))
        if choices:
            chosen[i] = prepared.item_index[choices[0].item]
    return chosen
