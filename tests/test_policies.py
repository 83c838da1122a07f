"""The baseline policies (fixed curriculum, random, lowest mastery), the policy registry, and the
batched paths (tracer and policies over many learners) agreeing with the one-learner calls.

Catalogs are built by hand (exact cases) or generated (random states for the batch checks);
the tracer is the catalog's own BKT, reached through ``catalog.tracer()``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from content.packs import bundled_packs, catalog_from_packs, load_pack
from engine.catalog import Catalog, Course, Item, Skill
from engine.events import AnswerEvent
from engine.selection import SelectionContext, make_policy
from engine.selection.batch import NO_CHOICE, SelectionBatch
from engine.selection.lockstep import choose_many, context_of
from engine.selection.prepared import prepare
from engine.selection.registry import POLICIES, parse_policy
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.tracing.base import Tracer

# a -> b -> c (c requires b requires a), two items each, plus "bc" practising b and c
CHAIN = Catalog.build(
    [Skill("a", "A"), Skill("b", "B", requires=("a",)), Skill("c", "C", requires=("b",))],
    [Item("a1", ("a",)), Item("a2", ("a",)), Item("b1", ("b",)), Item("b2", ("b",)),
     Item("c1", ("c",)), Item("bc", ("b", "c"))],
    [Course("ab", "A and B", ("a", "b"))])


def _context(items: tuple[str, ...] = (), correct: tuple[bool, ...] = (),
             course: str | None = None, seed: int = 0) -> SelectionContext:
    return SelectionContext(recent_items=items, recent_correct=correct, course=course,
                            seed=seed, learner="u1")


def _first(name: str, catalog: Catalog, context: SelectionContext, state: Any = None,
           **options: Any) -> str:
    tracer = catalog.tracer()
    choices = make_policy(name, **options).choose(
        tracer, tracer.new_state() if state is None else state, catalog, context)
    assert len(choices) == 1 and choices[0].reason
    return choices[0].item


# ------------------------------------------------------------------ fixed curriculum
def test_fixed_curriculum_starts_with_the_first_skill_in_course_order() -> None:
    assert _first("fixed-curriculum", CHAIN, _context()) in {"a1", "a2"}


def test_fixed_curriculum_passes_a_skill_after_three_correct_in_a_row_only() -> None:
    two = _context(("a1", "a2"), (True, True))
    assert _first("fixed-curriculum", CHAIN, two) in {"a1", "a2"}  # 2 in a row: stay
    broken = _context(("a1", "a2", "a1"), (True, False, True))
    assert _first("fixed-curriculum", CHAIN, broken) in {"a1", "a2"}
    three = _context(("a2", "a1", "a2"), (True, True, True))
    assert _first("fixed-curriculum", CHAIN, three) in {"b1", "b2"}  # next skill in order
    # the item of b and c belongs to c (its later skill): b's streak is broken by it
    mixed = _context(("b1", "b2", "bc"), (True, True, True))
    assert _first("fixed-curriculum", CHAIN, mixed) in {"c1", "bc"}
    unknown = _context(("a1", "a2", "a1"))  # outcomes not given: never passed
    assert _first("fixed-curriculum", CHAIN, unknown) in {"a1", "a2"}


def test_fixed_curriculum_starts_over_after_the_last_skill_and_says_so() -> None:
    tracer = CHAIN.tracer()
    context = _context(("b1", "b2", "b1"), (True, True, True), course="ab")
    choice = make_policy("fixed-curriculum").choose(tracer, tracer.new_state(), CHAIN, context)[0]
    assert choice.item in {"a1", "a2"}
    assert "passed 'b' with 3 correct answers in a row" in choice.reason
    assert "review starts over" in choice.reason


def test_fixed_curriculum_ignores_the_learner_model() -> None:
    tracer = CHAIN.tracer()
    state = tracer.new_state()
    for _ in range(30):  # the model believes a, b and c are mastered
        state = tracer.update(state, AnswerEvent("u1", "bc", ("b", "c"), True))
        state = tracer.update(state, AnswerEvent("u1", "a1", ("a",), True))
    assert _first("fixed-curriculum", CHAIN, _context(), state=state) in {"a1", "a2"}


# ------------------------------------------------------------------ lowest mastery
def test_lowest_mastery_picks_the_open_skill_with_the_lowest_mastery() -> None:
    tracer = CHAIN.tracer()
    state = tracer.new_state()
    assert _first("lowest-mastery", CHAIN, _context(), state) in {"a1", "a2"}  # b, c locked
    for _ in range(20):
        state = tracer.update(state, AnswerEvent("u1", "a1", ("a",), True))
    assert _first("lowest-mastery", CHAIN, _context(), state) in {"b1", "b2"}
    assert _first("lowest-mastery", CHAIN, _context(("b1",)), state) == "b2"  # not repeated


def test_lowest_mastery_reviews_the_lowest_once_everything_is_mastered() -> None:
    tracer = CHAIN.tracer()
    state = tracer.new_state()
    for _ in range(30):
        for item, skills in (("a1", ("a",)), ("bc", ("b", "c"))):
            state = tracer.update(state, AnswerEvent("u1", item, skills, True))
    mastery = tracer.mastery(state)
    lowest = min(mastery, key=mastery.__getitem__)
    choice = make_policy("lowest-mastery").choose(tracer, state, CHAIN, _context())[0]
    assert lowest in choice.skills and "every open skill is mastered" in choice.reason


# ------------------------------------------------------------------ random
def test_random_is_uniform_over_the_course_items() -> None:
    items = [_first("random", CHAIN, _context(course="ab", seed=s)) for s in range(2000)]
    assert set(items) == {"a1", "a2", "b1", "b2"}  # "bc" and "c1" are outside the course
    counts = [items.count(i) for i in ("a1", "a2", "b1", "b2")]
    assert chisquare(counts).pvalue > 0.001


def test_random_is_a_pure_function_of_seed_and_learner() -> None:
    assert _first("random", CHAIN, _context(seed=5)) == _first("random", CHAIN, _context(seed=5))


# ------------------------------------------------------------------ registry
def test_registry_builds_every_policy_and_names_the_choices_in_errors() -> None:
    assert {"fixed-curriculum", "random", "lowest-mastery", "target-success"} <= set(POLICIES)
    with pytest.raises(ValueError, match=r"unknown policy 'nope'.*lowest-mastery"):
        make_policy("nope")
    with pytest.raises(ValueError, match=r"takes no option 'target'.*target_success"):
        make_policy("target-success", target=0.5)
    assert parse_policy("target-success:target_success=0.6,avoid_recent=2") == (
        "target-success", {"target_success": 0.6, "avoid_recent": 2})
    with pytest.raises(ValueError, match="option=value"):
        parse_policy("random:seed")


def test_policies_refuse_bad_options_and_unknown_courses() -> None:
    with pytest.raises(ValueError, match="streak"):
        make_policy("fixed-curriculum", streak=0)
    # a stored experiment arm of streak 2**53 allocated (1, streak) arrays per choice: a 500
    with pytest.raises(ValueError, match="streak must be at most 100"):
        make_policy("fixed-curriculum", streak=2**53)
    with pytest.raises(ValueError, match="mastery_threshold"):
        make_policy("lowest-mastery", mastery_threshold=0.0)
    for name in POLICIES:
        with pytest.raises(ValueError, match="unknown course 'x'"):
            make_policy(name).choose(CHAIN.tracer(), CHAIN.tracer().new_state(), CHAIN,
                                     _context(course="x"))


def test_each_policy_declares_exactly_the_options_it_checks() -> None:
    """A policy's declared OPTIONS are its constructor's keyword arguments (the API documents
    an arm's options from them), its defaults lie in their ranges, and each declared rule is
    the constructor's: a value out of range, a boolean (``mastery_threshold=True`` was taken
    as 1) or the wrong kind is refused, by name."""
    import inspect

    for name, spec in POLICIES.items():
        parameters = inspect.signature(spec.build).parameters
        assert [o.name for o in spec.options] == list(parameters), name
        for option in spec.options:
            option.check(spec.default(option.name))
            refused: list[Any] = [True, "1", None]
            if option.minimum is not None:
                refused.append(option.minimum - (0 if option.exclusive_minimum else 1))
            if option.maximum is not None:
                refused.append(option.maximum + (0 if option.exclusive_maximum else 1))
            refused.append(1.5 if option.integer else float("inf"))
            for value in refused:
                with pytest.raises(ValueError, match=f"^{option.name} must be "):
                    make_policy(name, **{option.name: value})
    with pytest.raises(ValueError, match=r"takes no option 'target_success' \(options: "
                                         r"streak, seed\)"):
        make_policy("fixed-curriculum", target_success=0.7)


# ------------------------------------------------------------------ batched paths
def _random_batch(catalog: Catalog, tracer: Tracer[Any], n: int, course: str | None,
                  seed: int) -> tuple[Any, SelectionBatch]:
    """``n`` learners with random histories: states from answering random items, the last
    few answers as recent items (some learners with none)."""
    rng = np.random.default_rng(seed)
    index = prepare(catalog).index
    states = tracer.new_states(n)
    history = np.full((n, 6), -1, dtype=np.int64)
    right = np.zeros((n, 6), dtype=bool)
    pool = np.flatnonzero(prepare(catalog).course_items[course]) if course \
        else np.arange(len(index))
    for _ in range(int(rng.integers(20, 60))):
        chosen = rng.choice(pool, n)
        chosen[rng.random(n) < 0.1] = NO_CHOICE
        correct = rng.random(n) < 0.75
        states = tracer.update_many(states, index, chosen, correct)
        answered = chosen >= 0
        history[answered] = np.roll(history[answered], -1, axis=1)
        right[answered] = np.roll(right[answered], -1, axis=1)
        history[answered, -1] = chosen[answered]
        right[answered, -1] = correct[answered]
    history[rng.random(n) < 0.1] = -1  # new learners
    batch = SelectionBatch(tuple(f"u{i}" for i in range(n)), history, right,
                           rng.integers(0, 100, n), course=course)
    return states, batch


def _catalogs() -> list[tuple[Catalog, str | None]]:
    math = catalog_from_packs([load_pack(bundled_packs()["math-basics"])])
    return [(generated_catalog(12, seed=3), GENERATED_COURSE), (generated_catalog(8, seed=4),
                                                                None),
            (math, "math.course.fractions"), (CHAIN, "ab")]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_batched_choice_equals_the_one_learner_choice(name: str) -> None:
    policy = make_policy(name)
    for k, (catalog, course) in enumerate(_catalogs()):
        tracer = catalog.tracer()
        states, batch = _random_batch(catalog, tracer, 300, course, seed=k)
        chosen = choose_many(policy, tracer, states, catalog, batch)
        prepared = prepare(catalog)
        for i in range(len(batch)):
            choices = policy.choose(tracer, states[i], catalog, context_of(batch, i, catalog))
            expected = prepared.item_index[choices[0].item] if choices else NO_CHOICE
            assert chosen[i] == expected, (name, course, i)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_the_first_choices_are_a_prefix_of_the_longer_ranking(name: str) -> None:
    """Asking for fewer choices gives the first ones of the longer list, for any n (the
    policies rank only the items that can come first; a bigger n must not reorder them)."""
    policy = make_policy(name)
    for k, (catalog, course) in enumerate(_catalogs()):
        tracer = catalog.tracer(getattr(policy, "tracer_model", None) or "bkt")
        states, batch = _random_batch(catalog, tracer, 40, course, seed=10 + k)
        for i in range(len(batch)):
            context = context_of(batch, i, catalog)
            ranking = [c.item for c in policy.choose(tracer, states[i], catalog,
                                                     replace(context, n=len(catalog.items)))]
            for n in (1, 2, 5):
                first = policy.choose(tracer, states[i], catalog, replace(context, n=n))
                assert [c.item for c in first] == ranking[:n], (name, course, i, n)


def test_fixed_curriculum_batch_passes_skills_like_the_one_learner_path() -> None:
    """Streaks of 3 are rare in random histories: here every learner's last three answers are
    correct answers to one skill's items."""
    catalog = generated_catalog(10, seed=5)
    prepared = prepare(catalog)
    tracer = catalog.tracer()
    policy = make_policy("fixed-curriculum")
    n = len(catalog.skills)
    history = np.array([[prepared.item_index[f"g.s{k:02d}.i{j}"] for j in (0, 1, 0)]
                        for k in range(n)])
    batch = SelectionBatch(tuple(f"u{i}" for i in range(n)), history,
                           np.ones_like(history, dtype=bool), np.arange(n))
    states = tracer.new_states(n)
    chosen = policy.choose_many(tracer, states, catalog, batch)  # type: ignore[attr-defined]
    for i in range(n):
        choice = policy.choose(tracer, states[i], catalog, context_of(batch, i, catalog))[0]
        assert chosen[i] == prepared.item_index[choice.item]
        assert "passed" in choice.reason


def test_batched_tracer_equals_the_one_learner_tracer() -> None:
    catalog = generated_catalog(10, seed=6)
    tracer = catalog.tracer()
    index = prepare(catalog).index
    rng = np.random.default_rng(0)
    states = tracer.new_states(50)
    singles = [tracer.new_state() for _ in range(50)]
    for _ in range(40):
        chosen = rng.integers(-1, len(index), 50)
        correct = rng.random(50) < 0.6
        before = states.copy()
        new = tracer.update_many(states, index, chosen, correct)
        assert np.array_equal(before, states)  # the batch given is left unchanged
        states = new
        for i in np.flatnonzero(chosen >= 0):
            j = chosen[i]
            singles[i] = tracer.update(singles[i], AnswerEvent(
                "u", index.item_ids[j], index.item_skills[j], bool(correct[i])))
    assert np.array_equal(states, np.array(singles))  # bit for bit
    assert np.array_equal(tracer.predict_items_many(states, index),
                          np.array([tracer.predict_items(s, index) for s in singles]))
    assert np.array_equal(tracer.mastery_of_many(states, index),
                          np.array([tracer.mastery_of(s, index) for s in singles]))
    # the contract's generic batch (a list, one call per learner) means the same
    generic = Tracer.update_many(tracer, list(tracer.new_states(3)), index,
                                 np.array([0, -1, 2]), np.array([True, True, False]))
    fast = tracer.update_many(tracer.new_states(3), index, np.array([0, -1, 2]),
                              np.array([True, True, False]))
    assert np.array_equal(np.array(generic), fast)


class _OneByOne:
    """A policy with only the one-learner interface (as a later issue's policy may start)."""

    def __init__(self) -> None:
        self.inner = make_policy("target-success")

    def choose(self, *args: Any) -> Any:
        return self.inner.choose(*args)

    def explain_empty(self, *args: Any) -> Any:
        return self.inner.explain_empty(*args)


def test_policies_without_a_batched_path_are_called_learner_by_learner() -> None:
    catalog = generated_catalog(8, seed=7)
    tracer = catalog.tracer()
    states, batch = _random_batch(catalog, tracer, 60, GENERATED_COURSE, seed=9)
    fallback = choose_many(_OneByOne(), tracer, states, catalog, batch)
    batched = choose_many(make_policy("target-success"), tracer, states, catalog, batch)
    assert np.array_equal(fallback, batched)
