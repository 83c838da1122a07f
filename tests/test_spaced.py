"""Selection v2, the ``spaced`` policy, with the ``bkt-memory`` tracer and a set clock: reviews
before new material for a learner who comes back, interleaving and the session cap, the
retention per request, reasons, course completion, the reviews list, and the batched path
equal to the one-learner path."""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import Catalog, Course, Item, Skill
from engine.events import AnswerEvent
from engine.memory.reviews import REVIEW_HORIZON
from engine.selection import SelectionContext, make_policy
from engine.selection.batch import NO_CHOICE, SelectionBatch
from engine.selection.lockstep import choose_many, context_of
from engine.selection.prepared import prepare
from engine.selection.spaced import course_status, reviews
from engine.simulation.courses import GENERATED_COURSE, generated_catalog

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# a and b are independent; c requires b; three items each
COURSE = Catalog.build(
    [Skill("a", "A"), Skill("b", "B"), Skill("c", "C", requires=("b",))],
    [Item(f"{s}{j}", (s,)) for s in "abc" for j in range(3)],
    [Course("abc", "A, B and C", ("a", "b", "c")), Course("ab", "A and B", ("a", "b"))])


def _learned(skills: str, at: datetime, tracer: Any) -> Any:
    """A state in which ``skills`` were practised (and learned) at ``at``."""
    state = tracer.new_state()
    for k, skill in enumerate(skills):
        for j in range(6):
            state = tracer.update(state, AnswerEvent(
                "u", f"{skill}{j % 3}", (skill,), True,
                timestamp=at + timedelta(minutes=6 * k + j)))
    return state


def _choose(state: Any, at: datetime, recent: tuple[str, ...] = (), **options: Any) -> Any:
    tracer = COURSE.tracer("bkt-memory")
    context = SelectionContext(recent_items=recent, course=options.pop("course", "abc"),
                               seed=0, learner="u", at=at,
                               retention=options.pop("retention", None))
    return make_policy("spaced", **options).choose(tracer, state, COURSE, context)


def test_a_learner_back_after_months_gets_reviews_before_new_material() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _learned("ab", T0, tracer)
    soon = _choose(state, T0 + timedelta(hours=1))[0]
    assert soon.item.startswith("c") and soon.reason.startswith("new: practises 'c'")
    assert "prerequisites learned" in soon.reason and "nothing due" in soon.reason

    back = T0 + timedelta(days=120, hours=2)
    first = _choose(state, back)[0]
    assert first.item[0] in "ab"
    assert first.reason.startswith("review: predicted recall ")
    assert "< 0.90, last practised 120 days ago" in first.reason
    # the choice is the most forgotten skill: a was practised before b, same stability
    mastery = tracer.mastery(state, ["a", "b"], at=back)
    assert mastery["a"] < 0.9 and mastery["b"] < 0.9


def test_reviews_and_new_material_alternate_and_a_session_caps_reviews() -> None:
    tracer = COURSE.tracer("bkt-memory")
    back = T0 + timedelta(days=120)
    state = _learned("ab", T0, tracer)
    for j in range(2):  # a reviewed now (two right answers make it learned again); b due
        state = tracer.update(state, AnswerEvent("u", f"a{j}", ("a",), True,
                                                 timestamp=back + timedelta(minutes=j)))
    now = back + timedelta(minutes=2)
    after_review = _choose(state, now, recent=("a0", "a1"))[0]
    assert after_review.item.startswith("c")  # new material after a review
    assert _choose(state, now, recent=("a0", "a1"), max_reviews=0)[0].item.startswith("c")
    # the same state when the previous answer was new material: b's review comes now
    state_c = tracer.update(state, AnswerEvent("u", "c0", ("c",), False, timestamp=now))
    recent = ("a0", "a1", "c0")
    review = _choose(state_c, now + timedelta(minutes=1), recent=recent)[0]
    assert review.item.startswith("b") and review.reason.startswith("review:")
    # ... unless the session already had its reviews (a0 and a1)
    assert _choose(state_c, now + timedelta(minutes=1), recent=recent,
                   max_reviews=2)[0].item.startswith("c")


def test_retention_is_per_policy_and_per_request() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _learned("ab", T0, tracer)
    at = T0 + timedelta(days=5)  # recall about 0.85 after FSRS's first stability (2.3 days)
    recall = tracer.mastery(state, ["a"], at=at)["a"]
    assert 0.5 < recall < 0.9
    assert _choose(state, at)[0].reason.startswith("review:")
    assert _choose(state, at, retention=0.6)[0].item.startswith("c")
    assert _choose(state, at, retention=0.6)[0].reason.startswith("new:")
    assert _choose(state, at, course="ab")[0].item[0] in "ab"
    with pytest.raises(ValueError, match="retention"):
        SelectionContext(retention=1.2)
    with pytest.raises(ValueError, match="retention"):
        make_policy("spaced", retention=0.0)


def test_a_complete_course_is_reported_and_still_practised_ahead() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _learned("ab", T0, tracer)
    now = T0 + timedelta(hours=1)
    status = course_status(tracer, state, COURSE, "ab", at=now)
    assert status.complete and (status.skills, status.learned, status.due) == (2, 2, 0)
    assert not course_status(tracer, state, COURSE, "abc", at=now).complete  # c not learned
    later = T0 + timedelta(days=30)
    status = course_status(tracer, state, COURSE, "ab", at=later)
    assert not status.complete and status.due == 2
    ahead = _choose(state, now, course="ab")[0]
    assert ahead.reason.startswith("review ahead: nothing is due and nothing new is open")
    # a tracer without memory: nothing is ever due
    bkt = COURSE.tracer()
    assert course_status(bkt, bkt.new_state(), COURSE, "ab", at=later).due == 0
    assert reviews(bkt, bkt.new_state(), COURSE, at=later) == []


def test_reviews_lists_due_and_upcoming_with_due_times() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _learned("a", T0, tracer)
    state = tracer.update(tracer.update(state, AnswerEvent(  # b: learned 4 days later
        "u", "b0", ("b",), True, timestamp=T0 + timedelta(days=4))), AnswerEvent(
        "u", "b1", ("b",), True, timestamp=T0 + timedelta(days=4, minutes=1)))
    for j in range(4):
        state = tracer.update(state, AnswerEvent("u", f"b{j % 3}", ("b",), True,
                                                 timestamp=T0 + timedelta(days=4, minutes=2 + j)))
    listed = reviews(tracer, state, COURSE, at=T0 + timedelta(days=4, hours=1))
    assert [r.skill for r in listed] == ["a", "b"]
    a, b = listed
    # FSRS: stability 2.3065 days (same-day successes leave it), recall 0.881 after 3 days
    assert a.due_now and a.due == a.last + timedelta(days=3)
    assert a.last == T0 + timedelta(minutes=5) and a.recall == pytest.approx(
        (1 + (0.9 ** (-1 / 0.1542) - 1) * 4 / 2.3065) ** -0.1542)
    assert not b.due_now and b.due > T0 + timedelta(days=6)
    assert b.last == T0 + timedelta(days=4, minutes=5)
    assert a.to_dict()["due"] == "2026-03-05T09:05:00+00:00"


def _well_practised(tracer: Any) -> Any:
    """Skill a learned at T0 and recalled on days 3, 10, 30 and 90: a stability of months,
    so that a low retention puts its due time centuries away."""
    state = _learned("a", T0, tracer)
    for day in (3, 10, 30, 90):
        state = tracer.update(state, AnswerEvent("u", "a0", ("a",), True,
                                                 timestamp=T0 + timedelta(days=day)))
    return state


@pytest.mark.parametrize("at", [T0 + timedelta(days=91), datetime(2099, 12, 31, tzinfo=UTC)])
@pytest.mark.parametrize("retention", [0.3, 0.2, 0.1, 0.05, 1e-10, 1e-300])
def test_a_due_time_beyond_the_horizon_is_none_with_a_reason(at: datetime,
                                                             retention: float) -> None:
    """Issue 20 #6: these retentions raised (a year past 9999, OverflowError, OSError 75) or,
    at 0.3, gave a date centuries ahead."""
    tracer = COURSE.tracer("bkt-memory")
    (a,) = reviews(tracer, _well_practised(tracer), COURSE, at=at, retention=retention)
    assert a.skill == "a" and a.due is None and not a.due_now
    assert a.reason is not None and a.reason.startswith("not due within 3650 days")
    assert a.to_dict()["due"] is None and a.to_dict()["reason"] == a.reason


def test_the_horizon_keeps_due_times_it_reaches_and_sorts_the_others_last() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _well_practised(tracer)
    state = tracer.update(state, AnswerEvent("u", "b0", ("b",), True, timestamp=T0))
    for j in range(5):  # b learned at T0 (stability of days)
        state = tracer.update(state, AnswerEvent("u", f"b{j % 3}", ("b",), True,
                                                 timestamp=T0 + timedelta(minutes=1 + j)))
    at = T0 + timedelta(days=91)
    far = reviews(tracer, state, COURSE, at=at, retention=0.7)
    assert [r.skill for r in far] == ["b", "a"] and far[0].due_now
    assert far[1].due is not None and far[1].due > at + timedelta(days=365)  # years of memory
    assert far[1].reason is None
    near = reviews(tracer, state, COURSE, at=at, retention=0.7, horizon=timedelta(days=365))
    assert [r.skill for r in near] == ["b", "a"] and near[0] == far[0]
    assert near[1].due is None and near[1].reason is not None and "365 days" in near[1].reason


_AT = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59),
                   timezones=st.just(UTC))
_RETENTION = st.floats(min_value=5e-324, max_value=1.0, exclude_max=True)


@settings(max_examples=300, deadline=None)
@given(at=_AT, retentions=st.lists(_RETENTION, min_size=2, max_size=2))
def test_reviews_are_dates_within_the_horizon_for_any_retention_and_moment(
        at: datetime, retentions: list[float]) -> None:
    """Any retention in (0, 1) and any moment of 2000-2099: dates, never an error; a due time
    at most the horizon after ``at``; due now means due by ``at``; a lower retention is never
    due earlier (no due time: the latest)."""
    tracer = COURSE.tracer("bkt-memory")
    state = _well_practised(tracer)
    low, high = sorted(retentions)
    listed = {r: reviews(tracer, state, COURSE, at=at, retention=r) for r in (low, high)}
    for retention, (a,) in listed.items():
        assert (a.due is None) == (a.reason is not None)
        if a.due is not None:
            assert a.last <= a.due <= at + REVIEW_HORIZON
        if a.due_now:
            assert a.due is not None and a.due <= at and a.recall <= retention
        json.dumps(a.to_dict())
    (lax,), (strict,) = listed[low], listed[high]
    if strict.due is None:
        assert lax.due is None
    elif lax.due is not None:
        assert lax.due >= strict.due


@pytest.mark.parametrize("retention", [1e-300, 5e-324])
def test_the_tracer_gives_an_infinite_due_time_for_a_retention_recall_never_reaches(
        retention: float) -> None:
    """``retention ** (1 / decay)`` overflows a float below ~1e-47: taken as never reached,
    without numpy's overflow warning (which it gave before)."""
    tracer = COURSE.tracer("bkt-memory")
    state = _well_practised(tracer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        memory = tracer.memory_of(state, prepare(COURSE).index, at=T0.timestamp(),
                                  retention=retention)
    assert memory.due[0] == np.inf and np.isnan(memory.due[1:]).all()


def test_batched_choice_equals_the_one_learner_choice_with_memory_and_time() -> None:
    for seed, (catalog, course) in enumerate([(generated_catalog(10, seed=7), GENERATED_COURSE),
                                              (COURSE, "abc"), (COURSE, None)]):
        tracer = catalog.tracer("bkt-memory")
        index = prepare(catalog).index
        rng = np.random.default_rng(seed)
        n = 200
        states = tracer.new_states(n)
        recent = np.full((n, 10), -1, dtype=np.int64)
        at = T0
        for _ in range(int(rng.integers(30, 80))):
            at += timedelta(minutes=float(rng.choice([1, 1, 1, 60 * 24, 60 * 24 * 9])))
            chosen = rng.integers(-1, len(index), n)
            states = tracer.update_many(states, index, chosen, rng.random(n) < 0.8, at=at)
            active = chosen >= 0
            recent[active] = np.roll(recent[active], -1, axis=1)
            recent[active, -1] = chosen[active]
        for when in (at + timedelta(minutes=1), at + timedelta(days=40)):
            batch = SelectionBatch(tuple(f"u{i}" for i in range(n)), recent,
                                   np.zeros_like(recent, dtype=bool), rng.integers(0, 50, n),
                                   course=course, at=when)
            policy = make_policy("spaced")
            chosen = choose_many(policy, tracer, states, catalog, batch)
            kinds = set()
            for i in range(n):
                choices = policy.choose(tracer, states[i], catalog,
                                        context_of(batch, i, catalog))
                expected = prepare(catalog).item_index[choices[0].item] if choices \
                    else NO_CHOICE
                assert chosen[i] == expected, (seed, i)
                kinds.add(choices[0].reason.split(":")[0] if choices else "none")
            assert len(kinds) >= 2  # the check covered several kinds of choice


def test_the_simulator_runs_a_policy_with_the_tracer_it_names() -> None:
    import engine.simulation  # noqa: F401  (registers the learner-model families)
    from engine.simulation.run import Schedule, compare

    built: list[str] = []

    def memory() -> Any:
        built.append("bkt-memory")
        return COURSE.tracer("bkt-memory")

    policies = {"spaced": make_policy("spaced"), "target-success": make_policy("target-success")}
    result = compare(["prereq-forget"], COURSE, "abc", policies, n=6, seed=0,
                     schedule=Schedule(days=3, per_session=4), tracer=COURSE.tracer,
                     tracers={"spaced": memory})
    assert built == ["bkt-memory"]
    assert set(result.runs["prereq-forget"]) == set(policies)


def test_bad_policy_options_are_refused() -> None:
    for options in ({"max_reviews": -1}, {"avoid_recent": 1.5}, {"session_hours": 0},
                    {"mastery_threshold": 0.0}, {"target_success": 1.0}):
        with pytest.raises(ValueError):
            make_policy("spaced", **options)
