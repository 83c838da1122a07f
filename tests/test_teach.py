"""The ``teach`` policy (the default): new material weakest open skill first, due reviews
interleaved, reviews ahead that rotate over a learned course; its registry entry, defaults and
contract with tracers with and without memory; the batched path equal to the one-learner path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from engine.catalog import BKTSkillParams, Catalog, Course, Item, Skill
from engine.events import AnswerEvent
from engine.selection import SelectionContext, make_policy
from engine.selection.batch import SelectionBatch
from engine.selection.lockstep import choose_many, context_of
from engine.selection.prepared import prepare
from engine.selection.registry import DEFAULT_POLICY, POLICIES
from engine.selection.teach import TeachPolicy
from engine.simulation.courses import GENERATED_COURSE, generated_catalog

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

# four independent skills (a, b, c, d), five items each; e requires a; d is slipped on often
# (its predicted success stays lowest however well it is known)
COURSE = Catalog.build(
    [Skill(s, s.upper()) for s in "abc"]
    + [Skill("d", "D", bkt=BKTSkillParams(slip=0.3)), Skill("e", "E", requires=("a",))],
    [Item(f"{s}{j}", (s,)) for s in "abcde" for j in range(5)],
    [Course("all", "All", tuple("abcde"))])


def _answered(tracer: Any, answers: list[tuple[str, bool]], start: datetime = T0) -> Any:
    state = tracer.new_state()
    for j, (item, right) in enumerate(answers):
        state = tracer.update(state, AnswerEvent("u", item, (item[0],), right,
                                                 timestamp=start + timedelta(minutes=j)))
    return state


def _first(policy: Any, tracer: Any, state: Any, at: datetime,
           recent: tuple[str, ...] = (), seed: int = 0) -> Any:
    context = SelectionContext(recent_items=recent, course="all", seed=seed, learner="u",
                               at=at)
    return policy.choose(tracer, state, COURSE, context)[0]


def test_teach_is_the_registered_default_with_its_own_defaults() -> None:
    assert DEFAULT_POLICY == "teach"
    spec = POLICIES["teach"]
    assert spec.default("max_reviews") == 2 and spec.default("retention") == 0.9
    policy = make_policy("teach")
    assert isinstance(policy, TeachPolicy)
    assert policy.tracer_model == "bkt-memory" and policy.requires_memory is False
    assert repr(policy).startswith("TeachPolicy(")


@pytest.mark.parametrize("model", ["bkt", "bkt-memory"])
def test_new_material_goes_to_the_weakest_open_skill(model: str) -> None:
    tracer = COURSE.tracer(model)
    # a and b practised (b answered wrong: weaker than its prior), c and d untouched
    state = _answered(tracer, [("a0", True), ("b0", False), ("b1", False)])
    mastery = tracer.mastery_of(state, prepare(COURSE).index)
    weakest = "abcd"[int(np.argmin(mastery[:4]))]
    assert weakest == "b"
    choice = _first(make_policy("teach"), tracer, state, T0 + timedelta(minutes=5))
    assert choice.skills == ("b",)
    assert choice.reason.startswith("new: practises 'b'")
    assert "the weakest open skill" in choice.reason
    # the spaced policy, finishing one skill at a time, takes the one closest to its target
    spaced = _first(make_policy("spaced"), tracer, state, T0 + timedelta(minutes=5))
    assert spaced.skills != ("b",)


def test_reviews_of_a_learned_course_rotate_over_its_skills_without_memory() -> None:
    """Before the fix a tracer without memory (recall 1 everywhere) tied every review ahead
    and the tie went to the item closest to the target success: the items of the skill most
    slipped on (d), answer after answer."""
    tracer = COURSE.tracer("bkt")
    state = _answered(tracer, [(f"{s}{j % 3}", True) for s in "abcde" for j in range(6)])
    policy = make_policy("teach")
    recent: list[str] = []
    skills = []
    for step in range(15):
        at = T0 + timedelta(hours=1, minutes=step)
        choice = _first(policy, tracer, state, at, tuple(recent[-10:]), seed=step)
        assert choice.reason.startswith("review ahead")
        skills.append(choice.skills[0])
        recent.append(choice.item)
        state = tracer.update(state, AnswerEvent("u", choice.item, choice.skills, True,
                                                 timestamp=at))
    assert set(skills) == set("abcde")


def test_due_reviews_are_interleaved_at_most_two_a_session() -> None:
    tracer = COURSE.tracer("bkt-memory")
    state = _answered(tracer, [(f"{s}{j % 3}", True) for s in "abcd" for j in range(6)])
    later = T0 + timedelta(days=40)  # a-d all due; e is new
    policy = make_policy("teach")
    kinds: list[str] = []
    recent: list[str] = []
    for step in range(6):
        at = later + timedelta(minutes=step)
        choice = _first(policy, tracer, state, at, tuple(recent[-10:]))
        kinds.append("review" if choice.reason.startswith("review") else "new")
        recent.append(choice.item)
        state = tracer.update(state, AnswerEvent("u", choice.item, choice.skills,
                                                 choice.skills != ("e",), timestamp=at))
    assert kinds[0] == "review"  # a learner back after weeks starts with a review
    # reviews first, alternating with new material, then new material only: two reviews of the
    # session's learned material were answered (four skills were due)
    assert kinds[:6] == ["review", "new", "review", "new", "new", "new"]


@pytest.mark.parametrize("model", ["bkt", "bkt-memory"])
def test_batched_choice_equals_one_learner_choice(model: str) -> None:
    catalog = generated_catalog(12, seed=3)
    tracer = catalog.tracer(model)
    prepared = prepare(catalog)
    rng = np.random.default_rng(5)
    n = 24
    states = tracer.new_states(n)
    recent = np.full((n, 10), -1, dtype=np.int64)
    policy = make_policy("teach")
    for step in range(30):
        at = T0 + timedelta(hours=step)
        batch = SelectionBatch(tuple(f"u{i}" for i in range(n)), recent,
                               np.zeros_like(recent, dtype=bool), np.full(n, step),
                               course=GENERATED_COURSE, at=at)
        chosen = choose_many(policy, tracer, states, catalog, batch)
        for i in range(n):
            one = policy.choose(tracer, states[i], catalog, context_of(batch, i, catalog))
            assert prepared.item_index[one[0].item] == chosen[i]
        correct = rng.random(n) < 0.7
        states = tracer.update_many(states, prepared.index, chosen, correct, at=at)
        recent[:, :-1] = recent[:, 1:]
        recent[:, -1] = chosen
