"""The ``teach`` policy: the engine's default (work in progress: issue 21)."""

from __future__ import annotations

from engine.selection.spaced import SpacedPolicy

__all__ = ["TeachPolicy"]


class TeachPolicy(SpacedPolicy):
    """The default policy: new material in prerequisite order, due reviews of what is being
    forgotten; runs on any tracer (reviews only with a tracer with memory)."""

    requires_memory = False
