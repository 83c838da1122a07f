"""Choosing the next item for a learner (:class:`Policy`), given a tracer's state and a catalog."""

from __future__ import annotations

from engine.selection.policy import Choice, Policy, SelectionContext, TargetSuccessPolicy

__all__ = ["Choice", "Policy", "SelectionContext", "TargetSuccessPolicy"]
