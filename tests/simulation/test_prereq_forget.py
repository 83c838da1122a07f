"""The ``prereq-forget`` family on hand-computable cases: prerequisites gate learning,
forgetting lowers recall with time, spaced practice outlasts massed practice, answers follow
DINA with the stated guess/slip, and reads never change the state."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import BKTSkillParams, Catalog, Item, Skill
from engine.simulation import prereq_forget
from engine.simulation.base import DAY, NO_ITEM, make_population

SURE = BKTSkillParams(prior=0.0, learn=1.0, guess=0.2, slip=0.1)
CHAIN = Catalog.build(
    [Skill("a", "A", bkt=SURE), Skill("b", "B", requires=("a",), bkt=SURE)],
    [Item("a1", ("a",)), Item("b1", ("b",)), Item("ab", ("a", "b"))])
A1, B1, AB = 0, 1, 2


def _population(n: int = 200, seed: int = 0) -> prereq_forget.PrereqForget:
    population = make_population("prereq-forget", CHAIN, n, seed)
    assert isinstance(population, prereq_forget.PrereqForget)
    return population


def _all(population: prereq_forget.PrereqForget, item: int) -> np.ndarray:
    return np.full(population.n, item, dtype=np.int64)


def test_a_skill_is_not_learnt_while_its_prerequisite_is_unknown() -> None:
    population = _population()
    for step in range(20):  # learn = 1: b would be learnt at the first practice if it could
        population.practise(_all(population, B1), np.ones(population.n, bool), step * 60.0)
    assert not population.mastery(20 * 60.0)[:, 1].any()
    population.practise(_all(population, A1), np.ones(population.n, bool), 1300.0)
    population.practise(_all(population, B1), np.ones(population.n, bool), 1360.0)
    assert population.mastery(1360.0).all()  # a known: b is learnt at once (learn = 1)


def test_answers_follow_dina_with_the_skills_guess_and_slip() -> None:
    population = _population()
    np.testing.assert_allclose(population.p_correct(_all(population, AB), 0.0), 0.2)
    population.practise(_all(population, A1), np.ones(population.n, bool), 0.0)
    np.testing.assert_allclose(population.p_correct(_all(population, AB), 1.0), 0.2)  # b not
    np.testing.assert_allclose(population.p_correct(_all(population, A1), 1.0), 0.9)
    population.practise(_all(population, B1), np.ones(population.n, bool), 60.0)
    np.testing.assert_allclose(population.p_correct(_all(population, AB), 61.0), 0.9)


def test_forgetting_lowers_recall_with_time() -> None:
    population = _population(2000)
    population.practise(_all(population, A1), np.ones(population.n, bool), 0.0)
    items = np.array([A1])
    scores = [population.test_score(items, d * DAY).mean() for d in (0, 5, 20, 60)]
    assert scores[0] == pytest.approx(0.9)
    assert scores[0] > scores[1] > scores[2] > scores[3] > 0.2
    # exponential forgetting with stability 10 days x memory: about half forgotten by day 7
    known_at_7 = population.mastery(7 * DAY)[:, 0].mean()
    assert 0.35 < known_at_7 < 0.65


def test_spaced_practice_outlasts_massed_practice() -> None:
    spaced, massed = _population(3000, seed=1), _population(3000, seed=1)
    right = np.ones(spaced.n, bool)
    for k in range(4):
        spaced.practise(_all(spaced, A1), right, k * 2 * DAY)
        massed.practise(_all(massed, A1), right, 6 * DAY + k * 60.0)
    later = 6 * DAY + 30 * DAY
    assert spaced.test_score(np.array([A1]), later).mean() > \
        massed.test_score(np.array([A1]), later).mean() + 0.1


def test_reads_change_nothing_and_only_practising_learners_change() -> None:
    population = _population(50)
    before = population.mastery(0.0).copy(), population.forget_at.copy()
    population.p_correct(_all(population, AB), 5.0)
    population.test_score(np.array([A1, AB]), 9.0)
    population.mastery(1e9)
    assert np.array_equal(population.mastery(0.0), before[0])
    items = _all(population, A1)
    items[:25] = NO_ITEM
    population.practise(items, np.ones(50, bool), 10.0)
    assert np.array_equal(population.forget_at[:25], before[1][:25])
    assert population.mastery(10.0)[25:, 0].all()


def test_the_same_seed_gives_the_same_learners_and_answers() -> None:
    one, two = _population(100, seed=4), _population(100, seed=4)
    for population in (one, two):
        for k in range(10):
            population.practise(_all(population, k % 3), np.ones(100, bool), k * DAY)
    assert np.array_equal(one.forget_at, two.forget_at)
    assert np.array_equal(one.mastery(20 * DAY), two.mastery(20 * DAY))
    other = _population(100, seed=5)
    assert not np.array_equal(one.speed, other.speed)


def test_prior_knowledge_respects_the_prerequisite_graph() -> None:
    likely = BKTSkillParams(prior=0.5, learn=0.2, guess=0.2, slip=0.1)
    catalog = Catalog.build([Skill("a", "A", bkt=likely),
                             Skill("b", "B", requires=("a",), bkt=likely)], [Item("b1", ("b",))])
    known = make_population("prereq-forget", catalog, 4000, 0).mastery(0.0)
    assert not (known[:, 1] & ~known[:, 0]).any()
    assert known[:, 0].mean() == pytest.approx(0.5, abs=0.03)
    assert known[:, 1].mean() == pytest.approx(0.25, abs=0.03)
