"""The ``teach`` policy, the engine's default: new material in prerequisite order, the weakest
open skill first, interleaved with due reviews of what is being forgotten.

It ranks items as the ``spaced`` policy does (:mod:`engine.selection.spaced`: due reviews
interleaved with new material, prerequisites gated on learned skills, reviews ahead of time
once nothing new is open, every choice with its reason) and differs in how it orders new
material: **the open skill with the lowest P(learned) first**, then its item closest to the
target success. Practice is spread over what is open (as lowest-mastery-first does) instead of
finishing one skill at a time: measured on every simulated family, finishing one skill at a
time (the target-success and spaced policies' order) did better on some courses with a tracer
that has memory, and much worse on learner models whose items the tracer predicts badly
(``bench/README.md``, issue 21): the lowest-first order is the robust one.

Its one other default differs from the spaced policy's where the same measurements said so:
at most two reviews per session while new material is open (not five): reviews then cost less
new material on learners who do not forget with time, and cost little retention on those who do.

It runs with any tracer: with one that models memory (``bkt-memory``, its ``tracer_model``)
reviews come when due; without, nothing is ever due and reviews come only once the course is
learned, the least known skill first, so they rotate over the course.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.selection.options import AVOID_RECENT, SEED, TARGET_SUCCESS, Option
from engine.selection.options import MASTERY_THRESHOLD as THRESHOLD_OPTION
from engine.selection.spaced import MASTERY_THRESHOLD, SpacedPolicy

__all__ = ["TeachPolicy"]


class TeachPolicy(SpacedPolicy):
    """The default policy (module docstring); the spaced policy's options, other defaults."""

    OPTIONS: ClassVar[tuple[Option, ...]] = (
        TARGET_SUCCESS, THRESHOLD_OPTION, SpacedPolicy.RETENTION, SpacedPolicy.MAX_REVIEWS,
        SpacedPolicy.SESSION_HOURS, AVOID_RECENT, SEED)
    #: a tracer without memory is served too: nothing is then ever due
    requires_memory = False

    def __init__(self, target_success: float = 0.75, mastery_threshold: float = MASTERY_THRESHOLD,
                 retention: float = 0.9, max_reviews: int = 2, session_hours: float = 2.0,
                 avoid_recent: int = 3, seed: int = 0) -> None:
        super().__init__(target_success, mastery_threshold, retention, max_reviews,
                         session_hours, avoid_recent, seed)

    def __repr__(self) -> str:
        return "Teach" + super().__repr__().removeprefix("Spaced")

    def _new_key(self, learned: np.ndarray) -> np.ndarray:
        return learned

    def _new_order(self, success: str) -> str:
        return f"the weakest open skill; {success}, its closest item"
