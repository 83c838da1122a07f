"""Choosing the next item for a learner (:class:`Policy`), given a tracer's state and a catalog."""

from __future__ import annotations

from engine.selection.policy import Choice, Policy, SelectionContext, TargetSuccessPolicy
from engine.selection.registry import POLICIES, make_policy

__all__ = ["POLICIES", "Choice", "Policy", "SelectionContext", "TargetSuccessPolicy",
           "make_policy"]
