"""Placement sessions: selection rules, exposure control, content balance, stopping, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from engine.placement import (
    Grid,
    ItemBank,
    Placement,
    StopRule,
    information,
    simulate,
    sympson_hetter,
)
from engine.placement.select import Tables, next_group, scores


def generated_bank(n: int = 200, seed: int = 0) -> ItemBank:
    g = np.random.default_rng(seed)
    groups = [("algebra", "geometry", "numbers")[i % 3] for i in range(n)]
    return ItemBank.build(g.lognormal(0.2, 0.25, n), g.normal(0, 1, n), groups=groups)


BANK = generated_bank()
THETAS = np.random.default_rng(1).normal(size=300)


def test_posterior_rules_equal_max_info_when_the_posterior_is_a_point() -> None:
    tables = Tables.build(BANK, Grid.normal())
    point = np.zeros(len(tables.grid.points))
    at = 40  # the grid point 0.0
    point[at] = 1.0
    theta = float(tables.grid.points[at])
    np.testing.assert_allclose(scores(tables, "posterior-info", theta, point),
                               information(BANK, theta)[0])
    np.testing.assert_allclose(scores(tables, "kl", theta, point), 0.0, atol=1e-12)


def test_kl_prefers_the_items_that_separate_the_posteriors_abilities() -> None:
    tables = Tables.build(BANK, Grid.normal())
    weights = np.exp(tables.grid.log_prior)
    kl = scores(tables, "kl", 0.0, weights)
    assert np.all(kl >= 0)
    assert np.corrcoef(kl, BANK.a)[0, 1] > 0.5  # steeper items tell abilities apart better


def test_textbook_cat_gives_everyone_the_same_first_item_and_randomesque_does_not() -> None:
    fixed = Placement(BANK, criterion="max-info", stop=StopRule(1, 1))
    firsts = {fixed.start(seed).next_item() for seed in range(50)}
    assert len(firsts) == 1
    spread = replace(fixed, randomesque=5)
    firsts = [spread.start(seed).next_item() for seed in range(200)]
    assert len(set(firsts)) == 5
    assert max(firsts.count(f) for f in set(firsts)) < 200 * 0.35


def test_sympson_hetter_holds_exposure_near_its_target() -> None:
    """On other examinees than those it was set on: the controlled items' exposure is the
    target on average, and the largest is within sampling noise of it (the maximum of many
    rates each estimated on 300 examinees: 4 binomial standard deviations)."""
    placement = Placement(BANK, criterion="max-info", stop=StopRule(10, 10))
    free = simulate(placement, THETAS, seed=5)
    assert free.exposure.max() > 0.6  # without control the best items go to most examinees
    for target in (0.2, 0.35):
        control = sympson_hetter(placement, target, np.random.default_rng(2).normal(size=300),
                                 seed=100)
        run = simulate(replace(placement, control=control), THETAS, seed=5)
        noise = np.sqrt(target * (1 - target) / len(THETAS))
        assert run.exposure.max() <= target + 4 * noise, (target, run.exposure.max())
        controlled = run.exposure[control < 1]
        assert len(controlled) >= 3
        assert abs(controlled.mean() - target) <= 0.03, (target, controlled.mean())


def test_content_balance_gives_each_group_its_share() -> None:
    shares = {"algebra": 0.5, "geometry": 0.3, "numbers": 0.2}
    placement = Placement(BANK, balance=shares, stop=StopRule(10, 10))
    for seed in range(20):
        session = placement.start(seed)
        draws = np.random.default_rng(seed).random(10)
        for k in range(10):
            item = session.next_item()
            assert item is not None
            session.answer(item, bool(draws[k] < 0.5))
        given = [BANK.groups[BANK.ids.index(i)] for i, _ in session.answers]
        assert {g: given.count(g) for g in shares} == {"algebra": 5, "geometry": 3,
                                                       "numbers": 2}


def test_content_balance_leaves_out_groups_without_a_share() -> None:
    assert next_group({"a": 0.5, "b": 0.5}, {"a": 1}, {"a", "b", "c"}) == "b"
    assert next_group({"a": 1.0}, {}, {"b"}) is None
    placement = Placement(BANK, balance={"geometry": 1.0}, stop=StopRule(6, 6))
    session = placement.start(3)
    while (item := session.next_item()) is not None:
        assert BANK.groups[BANK.ids.index(item)] == "geometry"
        session.answer(item, True)
    with pytest.raises(ValueError, match="does not have: \\['physics'\\]"):
        Placement(BANK, balance={"physics": 1.0})


def run_one(placement: Placement, seed: int, theta: float) -> list[tuple[str, bool]]:
    session = placement.start(seed)
    g = np.random.default_rng(seed)
    while (item := session.next_item()) is not None:
        i = BANK.ids.index(item)
        p = 1 / (1 + np.exp(-BANK.a[i] * (theta - BANK.b[i])))
        session.answer(item, bool(g.random() < p))
    return session.answers


def test_stopping_at_the_standard_error_within_min_and_max_length() -> None:
    placement = Placement(BANK, stop=StopRule(min_length=3, max_length=25, se=0.35))
    for seed in range(20):
        answers = run_one(placement, seed, theta=float(THETAS[seed]))
        session = placement.resume(seed, answers)
        assert session.done and session.next_item() is None
        assert 3 <= session.length <= 25
        se = session.estimate().se
        if session.length < 25:
            assert se <= 0.35
            shorter = placement.resume(seed, answers[:-1])  # it stopped at the first chance
            assert shorter.length < 3 or shorter.estimate().se > 0.35
    easy = Placement(BANK, stop=StopRule(min_length=4, max_length=25, se=0.99))
    assert len(run_one(easy, 0, 0.0)) == 4  # the SE target is met at once: min length


def test_a_session_resumes_from_its_answers_exactly() -> None:
    control = np.full(len(BANK), 0.7)  # Sympson-Hetter draws must replay too
    placement = Placement(BANK, randomesque=3, control=control, stop=StopRule(12, 12))
    answers = run_one(placement, 11, theta=0.8)
    full = placement.resume(11, answers)
    for k in range(len(answers)):
        part = placement.resume(11, answers[:k])
        assert part.next_item() == answers[k][0]
    assert full.to_dict() == {"seed": 11, "answers": [[i, c] for i, c in answers]}
    # what a server keeps, back from storage, resumes where it stopped
    stored = json.loads(json.dumps(placement.resume(11, answers[:5]).to_dict()))
    assert placement.resume(**stored).next_item() == answers[5][0]
    assert full.estimate() == placement.resume(11, answers).estimate()
    with pytest.raises(ValueError, match="gives item"):
        placement.resume(12, answers)  # another seed gives other items
    with pytest.raises(ValueError, match="is over"):
        full.answer(BANK.ids[0], True)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown selection criterion"):
        Placement(BANK, criterion="urry")
    with pytest.raises(ValueError, match="min_length <= max_length"):
        StopRule(5, 3)
    with pytest.raises(ValueError, match="one per item"):
        Placement(BANK, control=np.ones(3))


def test_restore_gives_the_replayed_session_without_selecting() -> None:
    """A session restored from its answers and the item it gives now is the one a replay
    gives, bit for bit, and selects nothing (a server's read or answer costs one step)."""
    balanced = Placement(BANK, criterion="kl", randomesque=3, stop=StopRule(3, 15),
                         balance={"algebra": 1, "numbers": 1})
    g = np.random.default_rng(3)
    session = balanced.start(17)
    while (item := session.next_item()) is not None and session.length < 8:
        session.answer(item, bool(g.random() < 0.5))
    restored = balanced.restore(17, session.answers, session.pending)
    replayed = balanced.resume(17, session.answers)
    assert restored.estimate() == replayed.estimate() == session.estimate()
    assert restored.pending == session.pending == replayed.next_item()
    np.testing.assert_array_equal(restored.posterior[1], session.posterior[1])
    calls = []
    restored._select = lambda: calls.append(1)  # type: ignore[method-assign]
    assert restored.next_item() == session.pending and not calls
    # and goes on as the original does
    restored = balanced.restore(17, session.answers, session.pending)
    for s in (restored, session):
        s.answer(session.pending, True)  # type: ignore[arg-type]
    assert restored.next_item() == session.next_item()
    with pytest.raises(ValueError, match="not in the bank"):
        balanced.restore(17, [("nope", True)], None)
    with pytest.raises(ValueError, match="twice"):
        balanced.restore(17, [session.answers[0], session.answers[0]], None)
    with pytest.raises(ValueError, match="pending"):
        balanced.restore(17, session.answers, session.answers[0][0])


def test_placements_share_one_banks_tables_whatever_their_stop_rule() -> None:
    """The tables depend on the bank and the grid only: a placement of another stopping rule
    takes them as they are; tables of another bank are refused."""
    first = Placement(BANK, stop=StopRule(1, 5))
    other = Placement(BANK, stop=StopRule(3, 20, 0.3), grid=first.grid,
                      shared_tables=first.tables)
    assert other.tables is first.tables
    assert other.start(4).next_item() == Placement(BANK, stop=StopRule(3, 20, 0.3)).start(
        4).next_item()
    with pytest.raises(ValueError, match="another bank"):
        Placement(generated_bank(50), grid=first.grid, shared_tables=first.tables)
    # no group masks kept for an unbalanced placement (a bank of many groups: groups x items)
    assert dict(first.group_masks) == {}
    assert first.tables.nbytes >= 4 * len(first.grid.points) * len(BANK) * 8
