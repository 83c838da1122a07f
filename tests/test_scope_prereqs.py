"""Courses locked by prerequisites outside them (engine.selection.scope_prereqs) and the journey
around any policy's choice (engine.selection.journey), on the bundled math pack: hand-derived
prerequisite closures and locks, and every registered policy alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from content.packs import bundled_packs, catalog_from_packs, load_pack
from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.selection import SelectionContext, journey, make_policy
from engine.selection.prepared import prepare
from engine.selection.registry import POLICIES
from engine.selection.scope_prereqs import (
    choose_outside,
    learned_skills,
    locked_outside,
    outside_prerequisites,
)

FRACTIONS, TIMES, WHOLE = ("math.course.fractions", "math.course.times-tables",
                           "math.course.whole-numbers")
#: read off the pack: fractions-basics needs division-facts, equivalent-fractions mult-facts,
#: decimals-tenths place-value; division-facts <- mult-facts <- mult-concept <- add-within-100
#: <- (add-within-10, place-value) <- counting
FRACTIONS_OUTSIDE = {"math.counting", "math.place-value", "math.add-within-10",
                     "math.add-within-100", "math.mult-concept", "math.mult-facts",
                     "math.division-facts"}
AT = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def math() -> Catalog:
    return catalog_from_packs([load_pack(bundled_packs()["math-basics"])])


def _learned(math: Catalog, skills: set[str]) -> np.ndarray:
    return np.array([s in skills for s in prepare(math).skill_ids])


def test_outside_prerequisites_are_the_closure_in_prerequisite_order(math: Catalog) -> None:
    found = outside_prerequisites(math, FRACTIONS)
    assert set(found) == FRACTIONS_OUTSIDE
    assert list(found) == [s for s in math.order if s in FRACTIONS_OUTSIDE]
    # times-tables starts at mult-concept (needs add-within-100); division-remainders needs
    # sub-within-100, which needs sub-within-10 too
    assert set(outside_prerequisites(math, TIMES)) == {
        "math.counting", "math.place-value", "math.add-within-10", "math.add-within-100",
        "math.sub-within-10", "math.sub-within-100"}
    assert outside_prerequisites(math, WHOLE) == ()  # self-contained


def test_a_course_is_locked_only_while_nothing_of_it_is_open(math: Catalog) -> None:
    course = set(math.courses[FRACTIONS].skills)
    assert set(locked_outside(_learned(math, set()), math, FRACTIONS)) == FRACTIONS_OUTSIDE
    almost = FRACTIONS_OUTSIDE - {"math.division-facts"}
    assert locked_outside(_learned(math, almost), math, FRACTIONS) == ("math.division-facts",)
    # division-facts learned: fractions-basics opens, nothing locks the course
    assert locked_outside(_learned(math, FRACTIONS_OUTSIDE), math, FRACTIONS) == ()
    # all learned but decimals-tenths, which needs place-value (outside, not learned)
    rest = (FRACTIONS_OUTSIDE - {"math.place-value"}) | (course - {"math.decimals-tenths"})
    assert locked_outside(_learned(math, rest), math, FRACTIONS) == ("math.place-value",)
    assert locked_outside(_learned(math, FRACTIONS_OUTSIDE | course), math, FRACTIONS) == ()
    assert locked_outside(_learned(math, set()), math, WHOLE) == ()


def _tracer_for(policy: Any, math: Catalog) -> Any:
    return math.tracer(getattr(policy, "tracer_model", "bkt"))


@pytest.mark.parametrize("name", list(POLICIES))
def test_every_policy_offers_outside_prerequisites_of_a_locked_course(math: Catalog,
                                                                     name: str) -> None:
    """A policy that gates on prerequisites finds nothing in the course: it chooses among the
    outside prerequisites instead. One that does not (the random and fixed-curriculum
    baselines) offers new material of the course: that is kept."""
    policy = make_policy(name)
    tracer = _tracer_for(policy, math)
    context = SelectionContext(course=FRACTIONS, n=3, learner="x", at=AT)
    own = policy.choose(tracer, tracer.new_state(), math, context)
    found = journey.choose(policy, tracer, tracer.new_state(), math, context)
    assert not found.complete and found.choices, found
    if own:
        assert not found.outside_course and found.choices == own
        return
    assert found.outside_course, found
    for choice in found.choices:
        assert set(choice.skills) <= FRACTIONS_OUTSIDE, choice
        assert choice.reason.startswith(f"outside course {FRACTIONS!r}"), choice.reason

def test_a_self_contained_course_has_nothing_outside(math: Catalog) -> None:
    policy = make_policy("target-success")
    tracer = math.tracer()
    assert choose_outside(policy, tracer, tracer.new_state(), math,
                          SelectionContext(course=WHOLE, at=AT)) == []


def _fold(tracer: Any, math: Catalog, skills: tuple[str, ...], start: datetime) -> Any:
    """Eight right answers to each of ``skills``' own items, a minute apart."""
    state, t = tracer.new_state(), start
    for skill in skills:
        items = [i for i in math.items_for(skill) if i.skills == (skill,)]
        for k in range(8):
            t += timedelta(minutes=1)
            item = items[k % len(items)]
            state = tracer.update(state, AnswerEvent("x", item.id, item.skills, True,
                                                     timestamp=t))
    return state


@pytest.mark.parametrize("name", list(POLICIES))
def test_a_learned_course_is_complete_for_every_policy(math: Catalog, name: str) -> None:
    policy = make_policy(name)
    tracer = _tracer_for(policy, math)
    state = _fold(tracer, math, math.courses[WHOLE].skills, AT)
    at = AT + timedelta(hours=1)
    found = journey.choose(policy, tracer, state, math,
                           SelectionContext(course=WHOLE, learner="x", at=at))
    assert found.complete and found.choices == [] and not found.outside_course, found
    assert found.reason is not None and found.reason.startswith(
        f"course {WHOLE!r} is complete: all 9 skills learned"), found.reason
    learned = learned_skills(tracer, state, math, at=at,
                             mastery_threshold=journey.levels(policy)[0])
    assert learned[prepare(math).course_skills[WHOLE]].all()


def test_with_memory_the_complete_course_names_its_next_review_and_reopens(
        math: Catalog) -> None:
    policy = make_policy("spaced")
    tracer = math.tracer("bkt-memory")
    state = _fold(tracer, math, math.courses[WHOLE].skills, AT)
    done = journey.choose(policy, tracer, state, math,
                          SelectionContext(course=WHOLE, at=AT + timedelta(hours=1)))
    assert done.complete and "the next review falls due at" in (done.reason or "")
    later = journey.choose(policy, tracer, state, math,
                           SelectionContext(course=WHOLE, at=AT + timedelta(days=90), n=9))
    assert not later.complete and later.choices  # reviews are due again
    assert all(c.reason.startswith("review") for c in later.choices)


def test_the_moment_of_the_choice_is_required(math: Catalog) -> None:
    tracer = math.tracer()
    with pytest.raises(ValueError, match=r"context\.at"):
        journey.choose(make_policy("target-success"), tracer, tracer.new_state(), math,
                       SelectionContext(course=WHOLE))
