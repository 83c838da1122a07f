"""Item selection: prerequisites, target closeness, recency, review fallback, empty results with
their reasons, courses, seeded tie-breaks, ranked lists, argument checks, and the vectorized BKT
path agreeing with the generic Tracer path.

Catalogs are built by hand; the tracer is BKT with the catalog's own parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from engine.catalog import BKTSkillParams, Catalog, Course, Item, Skill
from engine.events import AnswerEvent
from engine.selection import Choice, SelectionContext, TargetSuccessPolicy
from engine.selection.prepared import prepare
from engine.tracing.base import Tracer
from engine.tracing.bkt import BKT

CTX = SelectionContext(learner="u1")


def _setup(skills: Sequence[Skill], items: Sequence[Item],
           courses: Sequence[Course] = ()) -> tuple[Catalog, BKT]:
    catalog = Catalog.build(skills, items, courses)
    return catalog, BKT().set_params(catalog.bkt_params())


def _answer(tracer: BKT, state: np.ndarray, catalog: Catalog, item: str,
            correct: bool = True) -> np.ndarray:
    return tracer.update(state, AnswerEvent("u1", item, catalog.items[item].skills, correct))


def _master(tracer: BKT, state: np.ndarray, catalog: Catalog, item: str) -> np.ndarray:
    """Answer ``item`` correctly until all its skills reach the default mastery threshold."""
    for _ in range(50):
        if min(tracer.mastery(state, catalog.items[item].skills).values()) >= 0.95:
            return state
        state = _answer(tracer, state, catalog, item)
    raise AssertionError("mastery never reached")


def _ids(choices: list[Choice]) -> list[str]:
    return [c.item for c in choices]


class _Generic(BKT):
    """BKT with the contract's generic (one call per item) ``predict_items`` and
    ``mastery_of``, against which the vectorized overrides are checked."""

    predict_items = Tracer.predict_items
    mastery_of = Tracer.mastery_of


# a chain a -> b (b requires a), each with two items, plus an item practising both
CHAIN = (
    [Skill("a", "A"), Skill("b", "B", requires=("a",))],
    [Item("a1", ("a",)), Item("a2", ("a",)), Item("b1", ("b",)), Item("b2", ("b",)),
     Item("ab", ("a", "b"))],
)

# one skill at prior 0.5; per-item guess/slip put P(correct) at 0.50, 0.65, 0.70 and 0.40
SPREAD = (
    [Skill("s", "S", bkt=BKTSkillParams(prior=0.5))],
    [Item("p50", ("s",), guess=0.1, slip=0.1), Item("p65", ("s",), guess=0.4, slip=0.1),
     Item("p70", ("s",), guess=0.45, slip=0.05), Item("p40", ("s",), guess=0.2, slip=0.4)],
)


# ---------------------------------------------------------------------------------- prerequisites
def test_locked_skills_items_wait_for_their_prerequisites() -> None:
    catalog, tracer = _setup(*CHAIN)
    policy = TargetSuccessPolicy(avoid_recent=0)
    state = tracer.new_state()
    everything = SelectionContext(n=10)
    assert set(_ids(policy.choose(tracer, state, catalog, everything))) == {"a1", "a2"}
    while tracer.mastery(state, ["a"])["a"] < 0.95:
        assert set(_ids(policy.choose(tracer, state, catalog, everything))) == {"a1", "a2"}
        state = _answer(tracer, state, catalog, "a1")
    open_now = _ids(policy.choose(tracer, state, catalog, everything))
    assert set(open_now) == {"a1", "a2", "b1", "b2", "ab"}
    assert set(open_now[:3]) == {"b1", "b2", "ab"}  # unmastered before review
    best = policy.choose(tracer, state, catalog, CTX)[0]
    assert best.item in {"b1", "b2", "ab"}
    assert "'b' (mastery 0.20" in best.reason and "prerequisites mastered" in best.reason


def test_nothing_open_gives_empty_list_and_reason() -> None:
    skills = [Skill("a", "A"), Skill("b", "B", requires=("a",))]
    catalog, tracer = _setup(skills, [Item("a1", ("a",)), Item("b1", ("b",))],
                             [Course("only-b", "B only", ("b",))])
    policy = TargetSuccessPolicy()
    ctx = SelectionContext(course="only-b")
    state = tracer.new_state()
    assert policy.choose(tracer, state, catalog, ctx) == []
    reason = policy.explain_empty(tracer, state, catalog, ctx)
    assert reason is not None
    assert reason.startswith("no item of course 'only-b' is open: prerequisites not mastered")
    assert "'b' requires 'a' (mastery 0.20)" in reason
    state = _master(tracer, state, catalog, "a1")
    assert _ids(policy.choose(tracer, state, catalog, ctx)) == ["b1"]
    assert policy.explain_empty(tracer, state, catalog, ctx) is None


def test_empty_catalog_and_empty_course() -> None:
    policy = TargetSuccessPolicy()
    catalog, tracer = _setup([Skill("a", "A")], [], [Course("c", "C", ("a",))])
    state = tracer.new_state()
    assert policy.choose(tracer, state, catalog, CTX) == []
    assert policy.explain_empty(tracer, state, catalog, CTX) == "the catalog has no items"

    catalog, tracer = _setup([Skill("a", "A"), Skill("b", "B")], [Item("ab", ("a", "b"))],
                             [Course("c", "C", ("a",))])
    ctx = SelectionContext(course="c")
    assert policy.choose(tracer, tracer.new_state(), catalog, ctx) == []
    reason = policy.explain_empty(tracer, tracer.new_state(), catalog, ctx)
    assert reason is not None and reason.startswith("course 'c' has no items")


# ---------------------------------------------------------------------------------- target
def test_closest_prediction_to_target_wins_and_target_moves_it() -> None:
    catalog, tracer = _setup(*SPREAD)
    state = tracer.new_state()
    predicted = {i: tracer.predict_correct(state, i, ("s",)) for i in catalog.items}
    assert predicted == pytest.approx({"p50": 0.5, "p65": 0.65, "p70": 0.7, "p40": 0.4})

    best = TargetSuccessPolicy().choose(tracer, state, catalog, CTX)[0]
    assert best.item == "p70"
    assert best.p_correct == pytest.approx(0.7)
    assert best.reason == ("practises 's' (mastery 0.50; no prerequisites); predicted success "
                           "0.70 is the closest to the target 0.75")
    assert TargetSuccessPolicy(target_success=0.42).choose(
        tracer, state, catalog, CTX)[0].item == "p40"
    lower = SelectionContext(target_success=0.6, learner="u1")  # the context overrides
    assert TargetSuccessPolicy().choose(tracer, state, catalog, lower)[0].item == "p65"


def test_n_returns_distinct_items_best_first() -> None:
    catalog, tracer = _setup(*SPREAD)
    state = tracer.new_state()
    choices = TargetSuccessPolicy().choose(tracer, state, catalog,
                                           SelectionContext(n=3, learner="u1"))
    assert _ids(choices) == ["p70", "p65", "p50"]
    assert "the 2nd closest" in choices[1].reason and "the 3rd closest" in choices[2].reason
    everything = TargetSuccessPolicy().choose(tracer, state, catalog, SelectionContext(n=10))
    assert _ids(everything) == ["p70", "p65", "p50", "p40"]  # all there is, no repeats


def test_review_fills_up_after_the_items_to_learn() -> None:
    skills = [Skill("a", "A"), Skill("b", "B")]
    catalog, tracer = _setup(skills, [Item("a1", ("a",)), Item("a2", ("a",)), Item("b1", ("b",))])
    state = _master(tracer, tracer.new_state(), catalog, "a1")
    choices = TargetSuccessPolicy(avoid_recent=0).choose(tracer, state, catalog,
                                                         SelectionContext(n=3))
    assert choices[0].item == "b1"
    assert {c.item for c in choices[1:]} == {"a1", "a2"}
    assert "reviews 'a'" in choices[1].reason
    assert "because only 1 open item practises an unmastered skill" in choices[1].reason


# ---------------------------------------------------------------------------------- recency
def test_recent_items_are_avoided_unless_nothing_else_is_open() -> None:
    catalog, tracer = _setup(*SPREAD)
    state = tracer.new_state()
    policy = TargetSuccessPolicy(avoid_recent=2)
    ctx = SelectionContext(recent_items=("p50", "p70", "gone-from-catalog"), learner="u1")
    assert policy.choose(tracer, state, catalog, ctx)[0].item == "p65"  # p70 is recent
    old = SelectionContext(recent_items=("p70", "p65", "p50"), learner="u1")  # p70 is 3rd last
    assert policy.choose(tracer, state, catalog, old)[0].item == "p70"
    assert TargetSuccessPolicy(avoid_recent=0).choose(
        tracer, state, catalog, ctx)[0].item == "p70"

    single, tracer1 = _setup([Skill("s", "S")], [Item("only", ("s",))])
    ctx1 = SelectionContext(recent_items=["only"])  # a list is accepted
    assert ctx1.recent_items == ("only",)
    choice = policy.choose(tracer1, tracer1.new_state(), single, ctx1)[0]
    assert choice.item == "only"
    assert choice.reason.endswith("answered recently, but no other item is open")


# ---------------------------------------------------------------------------------- review
def test_fallback_to_review_when_everything_is_mastered() -> None:
    catalog, tracer = _setup(*SPREAD)
    state = _master(tracer, tracer.new_state(), catalog, "p50")
    choice = TargetSuccessPolicy(avoid_recent=0).choose(tracer, state, catalog, CTX)[0]
    p = {i: tracer.predict_correct(state, i, ("s",)) for i in catalog.items}
    assert choice.item == min(p, key=lambda i: abs(p[i] - 0.75))
    assert choice.reason.startswith("reviews 's' (mastery 0.9")
    assert "because every skill of the catalog is mastered" in choice.reason


def test_review_reason_when_unmastered_items_were_just_answered() -> None:
    skills = [Skill("a", "A"), Skill("b", "B")]
    catalog, tracer = _setup(skills, [Item("a1", ("a",)), Item("b1", ("b",))])
    state = _master(tracer, tracer.new_state(), catalog, "a1")
    choice = TargetSuccessPolicy().choose(tracer, state, catalog,
                                          SelectionContext(recent_items=("b1",)))[0]
    assert choice.item == "a1"
    assert "because the items practising unmastered skills were answered just now" in choice.reason


# ---------------------------------------------------------------------------------- courses
def test_course_restricts_items_to_its_skills() -> None:
    skills = [Skill("a", "A"), Skill("b", "B"), Skill("c", "C")]
    items = [Item("a1", ("a",)), Item("b1", ("b",)), Item("ab", ("a", "b")), Item("ac", ("a", "c"))]
    courses = [Course("ab-course", "A+B", ("a", "b")), Course("c-course", "C", ("c",))]
    catalog, tracer = _setup(skills, items, courses)
    policy = TargetSuccessPolicy()
    state = tracer.new_state()
    assert set(_ids(policy.choose(tracer, state, catalog,
                                  SelectionContext(course="ab-course", n=10)))) == {"a1", "b1",
                                                                                    "ab"}
    assert policy.choose(tracer, state, catalog, SelectionContext(course="c-course")) == []
    assert set(_ids(policy.choose(tracer, state, catalog, SelectionContext(n=10)))) == {
        "a1", "b1", "ab", "ac"}
    with pytest.raises(ValueError, match="unknown course 'nope'"):
        policy.choose(tracer, state, catalog, SelectionContext(course="nope"))


def test_review_reason_names_the_course() -> None:
    skills = [Skill("a", "A"), Skill("b", "B")]
    catalog, tracer = _setup(skills, [Item("a1", ("a",)), Item("b1", ("b",))],
                             [Course("ca", "A", ("a",))])
    state = _master(tracer, tracer.new_state(), catalog, "a1")
    choice = TargetSuccessPolicy().choose(tracer, state, catalog, SelectionContext(course="ca"))[0]
    assert choice.item == "a1" and "every skill of course 'ca' is mastered" in choice.reason


# ---------------------------------------------------------------------------------- determinism
def test_ties_follow_a_seeded_order() -> None:
    catalog, tracer = _setup([Skill("s", "S")], [Item(f"i{k}", ("s",)) for k in range(20)])
    state = tracer.new_state()

    def pick(seed: int, learner: str = "u1") -> str:
        return TargetSuccessPolicy(seed=seed).choose(
            tracer, state, catalog, SelectionContext(learner=learner))[0].item

    assert all(pick(3) == pick(3) for _ in range(5))
    assert len({pick(seed) for seed in range(20)}) > 1
    assert len({pick(0, f"u{k}") for k in range(20)}) > 1
    via_context = TargetSuccessPolicy(seed=0).choose(
        tracer, state, catalog, SelectionContext(learner="u1", seed=3))[0].item
    assert via_context == pick(3)
    reason = TargetSuccessPolicy().choose(tracer, state, catalog, CTX)[0].reason
    assert "(tied with 19 other items; seeded tie-break)" in reason


# ---------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_success": 0.0}, "target_success must be strictly between 0 and 1"),
        ({"target_success": 1.0}, "target_success must be strictly between 0 and 1"),
        ({"target_success": float("nan")}, "target_success must be strictly between 0 and 1"),
        ({"mastery_threshold": 0.0}, r"mastery_threshold must be in \(0, 1\]"),
        ({"mastery_threshold": 1.5}, r"mastery_threshold must be in \(0, 1\]"),
        ({"avoid_recent": -1}, "avoid_recent must be an integer >= 0"),
        ({"avoid_recent": 1.5}, "avoid_recent must be an integer >= 0"),
        ({"seed": "x"}, "seed must be an integer"),
    ],
)
def test_policy_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TargetSuccessPolicy(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, r"n \(how many choices\) must be an integer >= 1"),
        ({"n": True}, r"n \(how many choices\) must be an integer >= 1"),
        ({"target_success": 1.2}, "target_success must be strictly between 0 and 1"),
    ],
)
def test_context_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SelectionContext(**kwargs)


def test_threshold_one_is_allowed_and_locks_dependent_skills() -> None:
    catalog, tracer = _setup(*CHAIN)
    state = _master(tracer, tracer.new_state(), catalog, "a1")
    policy = TargetSuccessPolicy(mastery_threshold=1.0)  # BKT never reaches exactly 1
    assert set(_ids(policy.choose(tracer, state, catalog, SelectionContext(n=10)))) == {"a1",
                                                                                        "a2"}


# ---------------------------------------------------------------------------------- internals
def test_vectorized_bkt_path_matches_the_generic_tracer_path() -> None:
    skills = [Skill("a", "A", bkt=BKTSkillParams(prior=0.4)), Skill("b", "B", requires=("a",)),
              Skill("c", "C", bkt=BKTSkillParams(prior=0.6, guess=0.3))]
    items = [Item("a1", ("a",), guess=0.05), Item("a2", ("a",), slip=0.3),
             Item("ac", ("a", "c"), guess=0.25, slip=0.2), Item("c1", ("c",)),
             Item("bc", ("b", "c")), Item("b1", ("b",), guess=0.35, slip=0.02)]
    catalog, tracer = _setup(skills, items)
    # the same model with its skills in another order, through pyBKT's coef_ shape
    reordered = BKT.from_pybkt(dict(reversed(list(tracer.to_pybkt().items()))))
    state = tracer.new_state()
    for item in ("a1", "ac", "a2", "a1", "c1"):
        state = _answer(tracer, state, catalog, item, correct=item != "a2")
    prepared = prepare(catalog)
    everything = np.arange(len(prepared.item_ids))
    expected = [tracer.predict_correct(state, i, catalog.items[i].skills) for i in catalog.items]
    generic = _Generic().set_params(tracer.params_)
    assert prepared.predict(tracer, state, everything) == pytest.approx(expected, rel=1e-12)
    assert prepared.predict(generic, state, everything) == pytest.approx(expected, rel=1e-12)
    mastery = tracer.mastery(state)
    assert prepared.mastery(tracer, state) == pytest.approx([mastery[s] for s in catalog.skills])

    moved = reordered.new_state()
    for item in ("a1", "ac", "a2", "a1", "c1"):
        moved = _answer(reordered, moved, catalog, item, correct=item != "a2")
    assert prepared.predict(reordered, moved, everything) == pytest.approx(expected, rel=1e-12)

    policy = TargetSuccessPolicy(avoid_recent=0)
    ctx = SelectionContext(n=10, learner="u7")
    assert policy.choose(tracer, state, catalog, ctx) == policy.choose(generic, state, catalog,
                                                                       ctx)


def test_catalog_is_prepared_once() -> None:
    catalog, _ = _setup(*CHAIN)
    assert prepare(catalog) is prepare(catalog)


def test_choice_to_dict_is_json_ready() -> None:
    catalog, tracer = _setup(*SPREAD)
    choice = TargetSuccessPolicy().choose(tracer, tracer.new_state(), catalog, CTX)[0]
    data = json.loads(json.dumps(choice.to_dict()))
    assert data == {"item": "p70", "skills": ["s"], "p_correct": choice.p_correct,
                    "reason": choice.reason}
