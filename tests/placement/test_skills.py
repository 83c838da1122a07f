"""Per-skill placement sessions: ground-truth recovery, stopping, θ alongside, resume and
restore, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import Catalog
from engine.placement import Grid, ItemBank, Placement
from engine.placement.estimate import eap, grid_log_likelihood
from engine.placement.knowledge import KnowledgeModel, sample_states
from engine.placement.select import Tables
from engine.placement.skills import SkillPlacement, SkillSession, SkillStop
from engine.simulation.courses import GENERATED_COURSE, generated_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return generated_catalog(30, seed=5)


@pytest.fixture(scope="module")
def model(catalog: Catalog) -> KnowledgeModel:
    return KnowledgeModel.from_catalog(catalog, catalog.courses[GENERATED_COURSE].skills,
                                       list(catalog.items))


def tables_of(catalog: Catalog, model: KnowledgeModel) -> Tables:
    rows = [catalog.items[i.id] for i in model.items]
    bank = ItemBank.build([i.discrimination or 1.0 for i in rows],
                          [i.difficulty or 0.0 for i in rows], ids=[i.id for i in rows])
    return Tables.build(bank, Grid.normal())


def learners(catalog: Catalog, model: KnowledgeModel, n: int, seed: int) -> np.ndarray:
    """``n`` true states: random prerequisite-closed halves of the course."""
    position = {s: k for k, s in enumerate(model.skills)}
    requires = [[position[r] for r in catalog.skills[s].requires] for s in model.skills]
    return sample_states(requires, n, np.random.default_rng(seed), size=len(requires) // 2)


def take(session: SkillSession, truth: np.ndarray, rng: np.random.Generator) -> None:
    """The learner of state ``truth`` answers as the model says (right with 1 - slip where
    they know every skill of the item, else with the content's guess)."""
    model = session.placement.model
    position = {s: k for k, s in enumerate(model.skills)}
    while (item := session.next_item()) is not None:
        j = model.index[item]
        knows = all(truth[position[s]] for s in model.items[j].skills)
        session.answer(item, bool(rng.random() < (1 - model.slip[j] if knows
                                                 else model.guess[0, j])))


def test_recovers_known_states_far_above_chance(catalog: Catalog,
                                                model: KnowledgeModel) -> None:
    test = SkillPlacement(model, SkillStop(max_length=15, confidence=None))
    truths = learners(catalog, model, 60, seed=1)
    rng = np.random.default_rng(2)
    accuracy = []
    for k, truth in enumerate(truths):
        session = test.start(k)
        take(session, truth, rng)
        assert session.length == 15
        p = np.array([e.p_known for e in session.skills()])
        accuracy.append(np.mean((p >= 0.5) == truth))
    assert np.mean(accuracy) > 0.85  # chance (every skill one way): 0.5


def test_a_confident_test_stops_early(catalog: Catalog, model: KnowledgeModel) -> None:
    small = generated_catalog(4, seed=1)
    model4 = KnowledgeModel.from_catalog(small, list(small.skills), list(small.items))
    test = SkillPlacement(model4, SkillStop(min_length=2, max_length=20, confidence=0.9))
    session = test.start(3)
    take(session, np.ones(4, dtype=bool), np.random.default_rng(0))
    assert 2 <= session.length < 20
    assert all(e.p_known >= 0.9 for e in session.skills())
    assert session.next_item() is None
    never = SkillPlacement(model4, SkillStop(min_length=0, max_length=5, confidence=None))
    session = never.start(3)
    take(session, np.ones(4, dtype=bool), np.random.default_rng(0))
    assert session.length == 5


def test_skill_estimates_and_mastery(catalog: Catalog, model: KnowledgeModel) -> None:
    session = SkillPlacement(model).start(0)
    item = session.next_item()
    assert item is not None
    session.answer(item, True)
    estimates = session.skills()
    assert [e.skill for e in estimates] == list(model.skills)
    tested = set(catalog.items[item].skills)
    assert {e.skill for e in estimates if e.answered} == tested
    mastery = session.mastery()
    assert set(mastery) == set(model.skills)
    assert all(0.01 <= v <= 0.99 for v in mastery.values())
    assert 1 <= session.effective_states <= model.shape[1]
    assert session.responder_types.sum() == pytest.approx(1.0)


def test_theta_alongside_is_the_theta_tests_estimate(catalog: Catalog,
                                                     model: KnowledgeModel) -> None:
    tables = tables_of(catalog, model)
    session = SkillPlacement(model, tables=tables).start(4)
    take(session, learners(catalog, model, 1, seed=3)[0], np.random.default_rng(1))
    theta = Placement(tables.bank, shared_tables=tables, grid=tables.grid)
    given = np.array([tables.index[i] for i, _ in session.answers])
    right = np.array([c for _, c in session.answers])
    expected = eap(theta.grid, grid_log_likelihood(tables.p, given, right))[0]
    estimate = session.estimate()
    assert estimate is not None
    assert estimate.theta == pytest.approx(expected.theta)
    assert estimate.se == pytest.approx(expected.se)
    assert SkillPlacement(model).start(4).estimate() is None
    # the standard-error stop ends the test once θ is known well enough
    stopped = SkillPlacement(model, SkillStop(max_length=40, confidence=None, se=0.5),
                             tables=tables).start(4)
    take(stopped, learners(catalog, model, 1, seed=3)[0], np.random.default_rng(1))
    final = stopped.estimate()
    assert final is not None and final.se <= 0.5 and stopped.length < 40


def test_resume_and_restore_equal_the_uninterrupted_session(catalog: Catalog,
                                                            model: KnowledgeModel) -> None:
    test = SkillPlacement(model, SkillStop(max_length=12, confidence=None), randomesque=3,
                          tables=tables_of(catalog, model))
    whole = test.start(77)
    truth = learners(catalog, model, 1, seed=9)[0]
    rng = np.random.default_rng(5)
    halfway = None
    position = {s: k for k, s in enumerate(model.skills)}
    while (item := whole.next_item()) is not None:
        if whole.length == 6:
            halfway = (list(whole.answers), item)
        j = model.index[item]
        knows = all(truth[position[s]] for s in model.items[j].skills)
        whole.answer(item, bool(rng.random() < (0.9 if knows else 0.2)))
    assert halfway is not None
    answers, pending = halfway
    for again in (test.resume(77, answers), test.restore(77, answers, pending)):
        assert again.next_item() == pending
        for item, correct in whole.answers[6:]:
            assert again.next_item() == item
            again.answer(item, correct)
        assert again.answers == whole.answers
        assert again.next_item() is None
        np.testing.assert_array_equal(again.probabilities, whole.probabilities)
        assert again.estimate() == whole.estimate()
    assert whole.to_dict() == {"seed": 77, "answers": [[i, c] for i, c in whole.answers]}
    # another seed draws other items among the most informative
    others = {test.start(seed).next_item() for seed in range(30)}
    assert len(others) > 1


def test_bad_input(catalog: Catalog, model: KnowledgeModel) -> None:
    test = SkillPlacement(model, SkillStop(min_length=0, max_length=2, confidence=None))
    session = test.start(0)
    first = session.next_item()
    assert first is not None
    other = next(i.id for i in model.items if i.id != first)
    with pytest.raises(ValueError, match=f"gives item '{first}' now, not '{other}'"):
        session.answer(other, True)
    session.answer(first, True)
    second = session.next_item()
    assert second is not None
    session.answer(second, False)
    with pytest.raises(ValueError, match="is over \\(2 items\\)"):
        session.answer(second, True)
    with pytest.raises(ValueError, match="'nope' is not one of the test's items"):
        test.restore(0, [("nope", True)], None)
    with pytest.raises(ValueError, match="answered twice"):
        test.restore(0, [(first, True), (first, False)], None)
    with pytest.raises(ValueError, match=r"pending item .* answered already"):
        test.restore(0, [(first, True)], first)
    with pytest.raises(ValueError, match=f"gives item '{first}' now"):
        test.resume(0, [(other, True)])
    with pytest.raises(ValueError, match="max_length >= 1"):
        SkillStop(max_length=0)
    with pytest.raises(ValueError, match="confidence must be in"):
        SkillStop(confidence=0.5)
    with pytest.raises(ValueError, match="standard-error target"):
        SkillStop(se=0)
    with pytest.raises(ValueError, match="randomesque"):
        SkillPlacement(model, randomesque=0)
    with pytest.raises(ValueError, match="needs the items' IRT parameters"):
        SkillPlacement(model, SkillStop(se=0.3))
    tables = tables_of(catalog, model)
    with pytest.raises(ValueError, match="other items than the model's"):
        SkillPlacement(model, tables=Tables.build(
            ItemBank.build(tables.bank.a[:3], tables.bank.b[:3]), Grid.normal()))
