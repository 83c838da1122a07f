"""The measures issue 21 added to the runs, on cases worked out by hand: exercises until the
course is complete, exercises spent on what a learner knew at the start, and the share of the
oracle's gain with its bootstrap interval."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest

from engine.simulation.base import NO_ITEM
from engine.simulation.metrics import gain_share_ci
from engine.simulation.run import Schedule, run_tutor

from .toy import CATALOG, COURSE, ITEMS, ToyLearners

#: learners knowing: a; a and b; nothing
KNOWN = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=bool)
SCRIPT = ["a1", "bc", "b1", "a2", "c1"]


class ScriptedTutor:
    """Gives every learner the items of :data:`SCRIPT` in turn, and nothing (``NO_ITEM``, as
    the engine serves a complete course) at the steps of ``silent``: learner -> steps (0: the
    first choice)."""

    def __init__(self, silent: dict[int, range] | None = None) -> None:
        self.done = 0
        self.silent = silent or {}

    def choose(self, at: datetime) -> np.ndarray:
        chosen = np.full(len(KNOWN), ITEMS.index(SCRIPT[self.done]), dtype=np.int64)
        for i, steps in self.silent.items():
            if self.done in steps:
                chosen[i] = NO_ITEM
        return chosen

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        self.done += 1

    def mastery(self, at: datetime) -> np.ndarray:
        return np.full((len(KNOWN), 3), 0.5)


def _run(tutor: ScriptedTutor) -> dict[str, list[float]]:
    run = run_tutor("toy", CATALOG, COURSE, tutor, n=len(KNOWN), seed=0,
                    schedule=Schedule(days=1, per_session=len(SCRIPT)), label="script",
                    population=ToyLearners(KNOWN))
    return {m: v.tolist() for m, v in run.outcomes.items()}


def test_exercises_on_known_skills_count_items_whose_every_skill_was_known_at_the_start() -> None:
    outcomes = _run(ScriptedTutor())
    # a1 a2 (a known) for learner 0; a1 b1 a2 for learner 1 (bc: c unknown); learner 2 knew
    # nothing (a, learned on the way, was not known at the start)
    assert outcomes["exercises_on_known"] == [2, 3, 0]
    # never released: the whole budget; mastery (a: a1 a2, b: bc b1, c: bc c1) after 5 for
    # the learner who knew nothing, 5 for learner 0 (c1), 5 for learner 1 (c1)
    assert outcomes["exercises_to_complete"] == [5, 5, 5]
    assert outcomes["exercises_to_mastery"] == [5, 5, 5]


def test_the_count_stops_when_the_tutor_first_serves_nothing() -> None:
    every = range(2, len(SCRIPT))
    outcomes = _run(ScriptedTutor({0: every, 1: every, 2: every}))  # complete after 2
    assert outcomes["exercises_to_complete"] == [2, 2, 2]
    assert outcomes["exercises_on_known"] == [1, 1, 0]  # a1 only, before completion
    outcomes = _run(ScriptedTutor({0: range(3, len(SCRIPT))}))  # learner 0 after 3
    assert outcomes["exercises_to_complete"] == [3, 5, 5]
    assert outcomes["exercises_on_known"] == [1, 3, 0]
    assert outcomes["exercises_to_mastery"][0] == 5  # no learning without exercises: budget


def test_a_review_served_after_the_course_was_complete_does_not_count() -> None:
    """Learner 0 is served nothing at step 1 only (complete; a review falls due after):
    released after 1 exercise, and what it practises after that is not counted on known
    skills, though a2 practises a skill it knew."""
    outcomes = _run(ScriptedTutor({0: range(1, 2)}))
    assert outcomes["exercises_to_complete"] == [1, 5, 5]
    assert outcomes["exercises_on_known"] == [1, 3, 0]


def test_a_learner_the_tutor_knows_to_be_done_counts_zero() -> None:
    every = range(len(SCRIPT))
    outcomes = _run(ScriptedTutor({0: every, 1: every, 2: every}))
    assert outcomes["exercises_to_complete"] == [0, 0, 0]
    assert outcomes["exercises_on_known"] == [0, 0, 0]


def test_share_of_the_oracles_gain_by_hand() -> None:
    floor = np.array([10.0, 20.0, 30.0])
    policy = np.array([8.0, 14.0, 24.0])  # gains 2, 6, 6: mean 14/3
    oracle = np.array([4.0, 8.0, 12.0])  # gains 6, 12, 18: mean 12
    share = gain_share_ci(floor, policy, oracle)
    assert share["mean"] == pytest.approx(14 / 3 / 12)
    assert share["n"] == 3 and "bootstrap" in share["method"]
    low, high = share["ci95"]
    assert low <= share["mean"] <= high
    # every learner realizes half the oracle's gain: every resample's ratio is exactly 0.5
    half = gain_share_ci(floor, floor - 0.5 * (floor - oracle), oracle)
    assert half["mean"] == pytest.approx(0.5)
    assert half["ci95"] == pytest.approx([0.5, 0.5])
    # the floor itself realizes nothing, a policy worse than it a negative share
    assert gain_share_ci(floor, floor, oracle)["ci95"] == [0.0, 0.0]
    assert gain_share_ci(floor, floor + 6.0, oracle)["mean"] == pytest.approx(-0.5)


def test_the_share_is_undefined_where_the_oracle_gains_nothing() -> None:
    floor = np.array([10.0, 20.0, 30.0, 40.0])
    assert gain_share_ci(floor, floor - 1.0, floor)["mean"] is None
    # a ceiling whose gain is 0 on average: resamples of both signs, no upper end
    ceiling = floor - np.array([5.0, -5.0, 4.0, -4.0])
    share = gain_share_ci(floor, floor - 1.0, ceiling)
    assert share["mean"] is None and share["ci95"][1] is None
    with pytest.raises(ValueError, match="three per-learner arrays of one shape"):
        gain_share_ci(floor, floor[:3], floor)
