"""The one interface every knowledge-tracing model implements.

A tracer has two sides that must agree exactly:

* the **batch** side (researchers): ``fit`` on a log, ``predict_log`` for one-step-ahead
  P(correct) of every answer in a log, each learner starting from the fitted prior;
* the **online** side (the live API): a fresh learner ``state``, a pure ``update`` of a state with
  one answer, ``predict_correct`` for a candidate item and ``mastery`` per skill.

Folding ``update`` over a learner's answers, calling ``predict_correct`` before each one, yields the
same numbers as ``predict_log`` (tested for every tracer), so what researchers measure is what
learners get. States are opaque to callers but serialize to compact bytes for a state store, and
fitted parameters serialize to a versioned file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, Self, TypeVar, runtime_checkable

import numpy as np

from engine.events import AnswerEvent, AnswerLog

State = TypeVar("State")


class NotFittedError(RuntimeError):
    """A tracer was used for prediction before ``fit`` or ``load``."""


@runtime_checkable
class Tracer(Protocol[State]):
    """What replay, the API and selection rely on, whatever the model behind it."""

    name: str

    # batch side ---------------------------------------------------------------------------
    def fit(self, log: AnswerLog) -> Self:
        """Estimate parameters from a log; returns ``self`` (scikit-learn style)."""
        ...

    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """P(correct) of each answer given only the same learner's earlier answers in ``log``."""
        ...

    # online side --------------------------------------------------------------------------
    def new_state(self) -> State:
        """The state of a learner with no answers yet."""
        ...

    def update(self, state: State, event: AnswerEvent) -> State:
        """The state after ``event``; ``state`` itself is left unchanged."""
        ...

    def predict_correct(self, state: State, item: str, skills: Sequence[str]) -> float:
        """P(the learner answers ``item``, which practises ``skills``, correctly next)."""
        ...

    def mastery(self, state: State, skills: Sequence[str] | None = None) -> Mapping[str, float]:
        """P(mastered) per skill (all skills the model knows when ``skills`` is None)."""
        ...

    def state_to_bytes(self, state: State) -> bytes: ...

    def state_from_bytes(self, data: bytes) -> State: ...

    # persistence --------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write fitted parameters to a versioned file."""
        ...
