"""The ``bkt-memory`` tracer: FSRS-6's memory (checked against py-fsrs itself), hand-computed
recall and stability, online = batch with times, and the batched methods equal to the
one-learner ones. (The registry-wide contract checks run in test_tracer_contract.py.)"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fsrs import Card, Rating, Scheduler
from fsrs.scheduler import DEFAULT_PARAMETERS as W

from engine.catalog import Catalog, Course, Item, Skill
from engine.events import AnswerEvent, AnswerLog
from engine.selection.prepared import prepare
from engine.simulation.courses import generated_catalog
from engine.tracing import make_tracer
from engine.tracing.recall import RecallTracer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DECAY = -W[20]
FACTOR = 0.9 ** (1 / DECAY) - 1

ONE = Catalog.build([Skill("a", "A"), Skill("b", "B")],
                    [Item("a1", ("a",)), Item("a2", ("a",)), Item("b1", ("b",)),
                     Item("ab", ("a", "b"))], [Course("all", "All", ("a", "b"))])


def _tracer(catalog: Catalog = ONE) -> Any:
    return catalog.tracer("bkt-memory")


def _answer(item: str, skills: tuple[str, ...], correct: bool, at: datetime) -> AnswerEvent:
    return AnswerEvent("u", item, skills, correct, timestamp=at)


def test_it_is_a_recall_tracer_built_by_name() -> None:
    tracer = _tracer()
    assert isinstance(tracer, RecallTracer) and tracer.name == "bkt-memory"
    assert make_tracer("bkt-memory", num_fits=2).get_options()["num_fits"] == 2
    with pytest.raises(ValueError, match="forgets"):
        make_tracer("bkt-memory", forgets=True)


def test_recall_decays_with_time_since_practice_hand_computed() -> None:
    tracer = _tracer()
    state = tracer.update(tracer.new_state(), _answer("a1", ("a",), True, T0))
    learned = tracer.mastery(state, ["a"], at=T0)["a"]
    s = W[2]  # FSRS's initial stability after Good
    for days in (0, 1, 10, 100):
        recall = (1 + FACTOR * days / s) ** DECAY
        at = T0 + timedelta(days=days, hours=3)  # whole days count, as py-fsrs counts them
        assert tracer.mastery(state, ["a"], at=at)["a"] == pytest.approx(learned * recall,
                                                                          rel=1e-12)
    # by hand: F = 0.9 ** (-1 / 0.1542) - 1 = 0.9805; (1 + 0.9805 * 10 / 2.3065) ** -0.1542
    assert (1 + FACTOR * 10 / s) ** DECAY == pytest.approx(0.7744, abs=1e-4)
    # P(correct) falls with recall towards guessing; the other skill is untouched
    p = [tracer.predict_correct(state, "a1", ("a",), at=T0 + timedelta(days=d))
         for d in (0, 10, 100)]
    assert p[0] > p[1] > p[2]
    assert tracer.mastery(state, ["b"], at=T0 + timedelta(days=100))["b"] == pytest.approx(
        ONE.skills["b"].bkt.prior)


def test_spaced_success_raises_stability_more_than_massed_hand_computed() -> None:
    tracer = _tracer()
    first = tracer.update(tracer.new_state(), _answer("a1", ("a",), True, T0))
    massed = tracer.update(first, _answer("a2", ("a",), True, T0 + timedelta(minutes=5)))
    spaced = tracer.update(first, _answer("a2", ("a",), True, T0 + timedelta(days=3)))
    s, d = W[2], W[4] - math.exp(W[5] * 2) + 1
    r = (1 + FACTOR * 3 / s) ** DECAY
    expected = s * (1 + math.exp(W[8]) * (11 - d) * s ** -W[9] * (math.exp((1 - r) * W[10]) - 1))
    memory = tracer.memory_of(spaced, prepare(ONE).index, at=None, retention=0.9)
    assert memory.learned.shape == (2,)
    assert spaced[1, 0] == pytest.approx(expected, rel=1e-12)  # row 1: stability
    assert massed[1, 0] == pytest.approx(s * max(1.0, math.exp(W[17] * W[18]) * s ** -W[19]))
    assert spaced[1, 0] > 2 * massed[1, 0]
    # ... so recall 30 days later is higher after the spaced practice
    later = T0 + timedelta(days=33)
    assert (tracer.mastery(spaced, ["a"], at=later)["a"]
            > tracer.mastery(massed, ["a"], at=later)["a"])


def test_memory_follows_py_fsrs_review_by_review() -> None:
    """Random Good/Again reviews at random gaps (same day and days apart) through py-fsrs's own
    scheduler (no learning steps, no fuzz) and through the tracer give the same stability,
    difficulty and recall."""
    scheduler = Scheduler(learning_steps=(), relearning_steps=(), enable_fuzzing=False)
    tracer = _tracer()
    rng = np.random.default_rng(0)
    for _ in range(20):
        card, state, at = Card(card_id=1, due=T0), tracer.new_state(), T0
        for _ in range(12):
            at += timedelta(hours=float(rng.choice([0.2, 5, 30, 80, 400])))
            correct = bool(rng.random() < 0.7)
            r_fsrs = scheduler.get_card_retrievability(card, at) if card.last_review else 1.0
            mem = tracer.memory_of(state, prepare(ONE).index, at=at.timestamp(), retention=0.9)
            assert mem.recall[0] == pytest.approx(r_fsrs, rel=1e-12)
            card, _ = scheduler.review_card(card, Rating.Good if correct else Rating.Again, at)
            state = tracer.update(state, _answer("a1", ("a",), correct, at))
            assert state[1, 0] == pytest.approx(card.stability, rel=1e-9)
            assert state[2, 0] == pytest.approx(card.difficulty, rel=1e-9)


def test_due_time_is_the_first_whole_day_recall_reaches_the_retention() -> None:
    tracer = _tracer()
    state = tracer.update(tracer.new_state(), _answer("a1", ("a",), True, T0))
    index = prepare(ONE).index
    for retention in (0.95, 0.9, 0.7):
        due = tracer.memory_of(state, index, at=None, retention=retention).due[0]
        days = round((due - T0.timestamp()) / 86_400)
        recall = tracer.memory_of_many(state[None], index, at=due, retention=retention).recall
        before = tracer.memory_of(state, index, at=due - 86_400, retention=retention).recall
        assert recall[0, 0] <= retention < before[0] or days == 0
    assert np.isnan(tracer.memory_of(state, index, at=None, retention=0.9).due[1])
    with pytest.raises(ValueError, match="retention"):
        tracer.memory_of(state, index, at=None, retention=1.0)


def test_memory_and_mastery_are_the_state_read_through_recall_at() -> None:
    """The compiled one-pass readers (memory per skill, P(known) per skill) give exactly what
    the state and :func:`recall_at` say, for learners who never practised, at any time."""
    from engine.tracing.bkt_memory import LAST, LEARNED, STABILITY, recall_at

    catalog = generated_catalog(8, seed=2)
    tracer = _tracer(catalog)
    index = prepare(catalog).index
    rng = np.random.default_rng(4)
    states = tracer.new_states(6)
    for step in range(40):
        chosen = np.where(rng.random(6) < 0.2, -1, rng.integers(0, len(index), 6))
        chosen[0] = -1  # a learner who never practised
        states = tracer.update_many(states, index, chosen, rng.random(6) < 0.7,
                                    at=T0 + timedelta(hours=7 * step))
    skills = np.array([list(catalog.skills).index(s) for s in index.skill_ids])
    learned, stability, last = (states[:, row][:, skills] for row in (LEARNED, STABILITY, LAST))
    for when in (None, T0 + timedelta(days=3), T0 + timedelta(days=200)):
        t = (np.where(np.isnan(states[:, LAST]), -np.inf, states[:, LAST]).max(axis=1)
             if when is None else when.timestamp())
        recall = recall_at(stability, last, t)
        memory = tracer.memory_of_many(states, index, at=None if when is None
                                       else when.timestamp(), retention=0.85)
        np.testing.assert_array_equal(memory.learned, learned)
        np.testing.assert_array_equal(memory.recall, recall)
        np.testing.assert_array_equal(memory.last, last)
        assert np.array_equal(np.isnan(memory.due), np.isnan(last))
        np.testing.assert_array_equal(tracer.mastery_of_many(states, index, at=when),
                                      learned * recall)


def test_fold_with_times_equals_predict_log_including_answers_without_times() -> None:
    catalog = generated_catalog(6, seed=2)
    tracer = _tracer(catalog)
    rng = np.random.default_rng(1)
    items = list(catalog.items.values())
    events = []
    for learner in range(15):
        at = T0
        for _ in range(int(rng.integers(5, 40))):
            at += timedelta(hours=float(rng.exponential(30)))
            item = items[int(rng.integers(len(items)))]
            stamp = None if rng.random() < 0.1 else at
            events.append(AnswerEvent(f"u{learner}", item.id, item.skills,
                                      bool(rng.random() < 0.6), timestamp=stamp))
    log = AnswerLog.from_events(events)
    batch = tracer.predict_log(log)
    states: dict[str, Any] = {}
    online = []
    for event in log.events():
        state = states.get(event.learner, tracer.new_state())
        online.append(tracer.predict_correct(state, event.item, event.skills,
                                             at=event.timestamp))
        states[event.learner] = tracer.update(state, event)
    np.testing.assert_allclose(online, batch, rtol=1e-12, atol=1e-12)


def test_batched_methods_equal_the_one_learner_methods() -> None:
    catalog = generated_catalog(8, seed=4)
    tracer = _tracer(catalog)
    index = prepare(catalog).index
    rng = np.random.default_rng(3)
    n = 40
    states = tracer.new_states(n)
    one = [tracer.new_state() for _ in range(n)]
    at = T0
    for _ in range(60):
        at += timedelta(hours=float(rng.choice([0.1, 20, 100])))
        chosen = rng.integers(-1, len(index), n)
        correct = rng.random(n) < 0.7
        states = tracer.update_many(states, index, chosen, correct, at=at)
        for i in np.flatnonzero(chosen >= 0).tolist():
            j = int(chosen[i])
            one[i] = tracer.update(one[i], _answer(index.item_ids[j], index.item_skills[j],
                                                   bool(correct[i]), at))
    np.testing.assert_array_equal(states, np.array(one))
    later = at + timedelta(days=9)
    for when in (None, later):
        np.testing.assert_allclose(
            tracer.predict_items_many(states, index, at=when),
            [tracer.predict_items(s, index, at=when) for s in one], rtol=1e-12)
        np.testing.assert_allclose(
            tracer.mastery_of_many(states, index, at=when),
            [tracer.mastery_of(s, index, at=when) for s in one], rtol=1e-12)
        expected = [[tracer.predict_correct(s, i, sk, at=when)
                     for i, sk in zip(index.item_ids, index.item_skills, strict=True)]
                    for s in one[:5]]
        np.testing.assert_allclose(tracer.predict_items_many(states[:5], index, at=when),
                                   expected, rtol=1e-12)


def test_state_is_four_floats_per_skill_and_damaged_bytes_are_refused() -> None:
    tracer = _tracer()
    state = tracer.update(tracer.new_state(), _answer("ab", ("a", "b"), False, T0))
    data = tracer.state_to_bytes(state)
    assert len(data) == 4 * 8 * len(ONE.skills)
    np.testing.assert_array_equal(tracer.state_from_bytes(data), state)
    bad = state.copy()
    bad[1, 0] = -1.0  # a negative stability
    with pytest.raises(ValueError):
        tracer.state_from_bytes(tracer.state_to_bytes(bad))
