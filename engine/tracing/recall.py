"""What a time-aware tracer tells selection about memory: :class:`RecallTracer`.

Spaced repetition needs more than P(mastered): whether a skill was ever learned, how well it is
recalled *now*, when it was last practised and when its recall will fall below a target. A
tracer that models memory implements this small protocol besides the
:class:`~engine.tracing.base.Tracer` contract, and policies test for it (``isinstance``), so no
policy names a concrete model; with a tracer that has no memory a policy sees nothing due.
Times are seconds since the Unix epoch (floats), NaN for "never practised".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np

from engine.tracing.items import ItemIndex

__all__ = ["RecallTracer", "SkillMemory", "has_memory"]


@dataclass(frozen=True, eq=False)
class SkillMemory:
    """Per skill of an :class:`ItemIndex` (its ``skill_ids`` order; a leading learner axis for a
    batch): ``learned`` P(known right after the last practice), ``recall`` P(that knowledge is
    still recalled at the moment asked for; 1 for a skill never practised), ``last`` the last
    practice (epoch seconds, NaN never) and ``due`` when recall first falls to the retention
    asked for (epoch seconds; NaN never practised)."""

    learned: np.ndarray
    recall: np.ndarray
    last: np.ndarray
    due: np.ndarray


@runtime_checkable
class RecallTracer(Protocol):
    """A tracer whose knowledge fades between practices (see the module docstring)."""

    def memory_of(self, state: Any, items: ItemIndex, *, at: float | None,
                  retention: float) -> SkillMemory:
        """One learner's memory of every skill of ``items`` at ``at`` (epoch seconds; None:
        right after the last answer), with due times for ``retention``."""
        ...

    def memory_of_many(self, states: Any, items: ItemIndex, *, at: float | None,
                       retention: float) -> SkillMemory:
        """:meth:`memory_of` of every learner of a batch: arrays of shape (learners, skills)."""
        ...


_HAS_MEMORY: dict[type, bool] = {}


def has_memory(tracer: object) -> TypeGuard[RecallTracer]:
    """``isinstance(tracer, RecallTracer)``, remembered per class: the isinstance of a
    runtime-checkable protocol looks up every member each time (microseconds on every choice
    of a policy). It assumes, as every tracer here does, that the class decides: a tracer that
    grows the protocol's methods per instance would be answered as its class first was."""
    cls = type(tracer)
    known = _HAS_MEMORY.get(cls)
    if known is None:
        known = _HAS_MEMORY[cls] = isinstance(tracer, RecallTracer)
    return known
