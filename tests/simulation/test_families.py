"""Simulated learner families: the contract every family keeps, and each family's ground truth
on cases computed by hand (prerequisites, forgetting, spacing, the fitted model's numbers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import kstest

from content.packs import bundled_packs, catalog_from_packs, load_pack
from engine.catalog import BKTSkillParams, Catalog, Course, Item, Skill
from engine.events import AnswerEvent, AnswerLog
from engine.simulation.base import DAY, FAMILIES, NO_ITEM, Population, make_population
from engine.simulation.fitted import (
    MIN_ANSWERS,
    PARAMS,
    FittedBKTPopulation,
    counter_uniform,
    environment,
    fit_environment,
    real_skills_for,
)
from engine.simulation.irt_memory import IRTMemoryPopulation, retrievability
from engine.tracing.registry import load_tracer, make_tracer, to_pybkt

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def math_catalog() -> Catalog:
    return catalog_from_packs([load_pack(bundled_packs()["math-basics"])])


@pytest.fixture(scope="module")
def tiny() -> Catalog:
    """Skill ``b`` requires ``a``; items ``a.1`` (a), ``b.1`` (b) and ``ab.1`` (both)."""
    return Catalog.build(
        [Skill("a", "A", BKTSkillParams(prior=0.3, learn=0.2)),
         Skill("b", "B", BKTSkillParams(prior=0.2, learn=0.25), requires=("a",))],
        [Item("a.1", ("a",), difficulty=0.0, discrimination=1.0, guessing=0.25),
         Item("b.1", ("b",), difficulty=0.5, discrimination=1.5),
         Item("ab.1", ("a", "b"), difficulty=0.0, discrimination=1.0)],
        [Course("c", "C", ("a", "b"))])


A1, B1, AB1 = 0, 1, 2  # the tiny catalog's items
A, B = 0, 1  # its skills


def drive(pop: Population, days: int, seed: int, *, per_day: int = 5) -> None:
    """Random items (a fifth of the learners idle) and outcomes drawn from the truth, a few a
    day; the same calls for the same ``seed``."""
    rng = np.random.default_rng(seed)
    for day in range(days):
        for step in range(per_day):
            at = day * DAY + step * 60.0
            items = rng.integers(0, len(pop.item_ids), pop.n)
            items[rng.random(pop.n) < 0.2] = NO_ITEM
            pop.practise(items, rng.random(pop.n) < pop.p_correct(items, at), at)


def snapshot(pop: Population, at: float) -> tuple[np.ndarray, ...]:
    every = np.arange(len(pop.item_ids))
    per_item = [pop.p_correct(np.full(pop.n, j), at) for j in every]
    return (*per_item, pop.mastery(at), pop.test_score(every, at))


def assert_same(x: tuple[np.ndarray, ...], y: tuple[np.ndarray, ...]) -> None:
    assert len(x) == len(y)
    for u, v in zip(x, y, strict=True):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------ the contract, every family
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_same_seed_same_numbers(family: str, math_catalog: Catalog) -> None:
    pops = [make_population(family, math_catalog, 200, seed) for seed in (7, 7, 8)]
    for pop in pops:
        assert pop.family == family
        drive(pop, days=3, seed=1)
    at = 4 * DAY
    assert_same(snapshot(pops[0], at), snapshot(pops[1], at))
    assert not np.array_equal(pops[0].test_score(np.arange(20), at),
                              pops[2].test_score(np.arange(20), at))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_reads_do_not_change_state(family: str, math_catalog: Catalog) -> None:
    read, untouched = (make_population(family, math_catalog, 150, 3) for _ in range(2))
    drive(read, days=2, seed=2)
    drive(untouched, days=2, seed=2)
    for at in (2 * DAY, 9 * DAY, 40 * DAY):  # reads at many times, twice each
        assert_same(snapshot(read, at), snapshot(read, at))
    drive(read, days=2, seed=5)  # what follows the reads is what follows no reads
    drive(untouched, days=2, seed=5)
    assert_same(snapshot(read, 5 * DAY), snapshot(untouched, 5 * DAY))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_learners_with_items_change(family: str, math_catalog: Catalog) -> None:
    n = 300
    moved, still = (make_population(family, math_catalog, n, 4) for _ in range(2))
    drive(moved, days=1, seed=3)
    drive(still, days=1, seed=3)
    rng = np.random.default_rng(0)
    items = rng.integers(0, len(moved.item_ids), n)
    idle = np.arange(n) % 2 == 0
    items[idle] = NO_ITEM
    for step in range(8):  # repeated practice: enough to change some of the active learners
        moved.practise(items, np.ones(n, dtype=bool), DAY + step * 60.0)
    at = DAY + 600.0
    for x, y in zip(snapshot(moved, at), snapshot(still, at), strict=True):
        np.testing.assert_array_equal(x[idle], y[idle])
    assert any(not np.array_equal(x[~idle], y[~idle])
               for x, y in zip(snapshot(moved, at), snapshot(still, at), strict=True))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_test_score_is_the_mean_p_correct(family: str, math_catalog: Catalog) -> None:
    """A family's own (faster) test score is the contract's: the mean P(correct) of the items."""
    pop = make_population(family, math_catalog, 100, 9)
    drive(pop, days=2, seed=4)
    multi = [j for j, item in enumerate(math_catalog.items.values()) if len(item.skills) > 1]
    items = np.array([0, 5, 17, 17, 150, len(pop.item_ids) - 1, *multi[:3]])
    for at in (2 * DAY, 40 * DAY):
        expected = np.mean([pop.p_correct(np.full(pop.n, j), at) for j in items], axis=0)
        np.testing.assert_allclose(pop.test_score(items, at), expected, rtol=1e-12)
    np.testing.assert_array_equal(pop.test_score(np.array([], dtype=np.intp), at),
                                  np.zeros(pop.n))


# ------------------------------------------------------------------ irt-memory by hand
def irt_p(pop: IRTMemoryPopulation, item: int, theta: float) -> float:
    """The 3PL P(correct) of a one-skill item, written out."""
    a, b, c = pop.discrimination[item], pop.difficulty[item], pop.guessing[item]
    return float(c + (1 - c) * expit(a * (theta - b)))


def test_irt_memory_mastery_threshold_and_prior(tiny: Catalog) -> None:
    pop = IRTMemoryPopulation(tiny, 20_000, 0)
    # a: one item, b = 0, a = 1 -> logit(0.8); b: one item, b = 0.5, a = 1.5 (ab.1 counts too)
    assert pop.threshold[A] == pytest.approx((0.0 + 0.0) / 2 + math.log(4) / 1.0)
    assert pop.threshold[B] == pytest.approx((0.5 + 0.0) / 2 + math.log(4) / 1.25)
    # the share who master a skill before any practice is its prior (0.3 and 0.2)
    np.testing.assert_allclose(pop.mastery(0.0).mean(axis=0), [0.3, 0.2], atol=0.012)


def test_irt_memory_p_correct_is_3pl_and_conjunctive(tiny: Catalog) -> None:
    pop = IRTMemoryPopulation(tiny, 5, 1)
    theta_a, theta_b = pop.base[:, A], pop.base[:, B]
    got = {j: pop.p_correct(np.full(5, j), 0.0) for j in (A1, B1, AB1)}
    np.testing.assert_allclose(got[A1], 0.25 + 0.75 * expit(theta_a))
    np.testing.assert_allclose(got[B1], expit(1.5 * (theta_b - 0.5)))
    np.testing.assert_allclose(got[AB1], expit(theta_a) * expit(theta_b))  # needs both
    np.testing.assert_allclose(pop.test_score(np.array([A1, B1, AB1]), 0.0),
                               (got[A1] + got[B1] + got[AB1]) / 3)


def test_irt_memory_no_prerequisite_no_learning(tiny: Catalog) -> None:
    """A learner who does not master ``a`` gains nothing from practising ``b``; one who
    masters it gains the learning rate per (massed) practice."""
    pop = IRTMemoryPopulation(tiny, 2, 2)
    pop.base[0, A] = pop.threshold[A] - 2.0  # learner 0 lacks the prerequisite
    pop.base[1, A] = pop.threshold[A] + 2.0  # learner 1 masters it
    pop.base[:, B] = pop.threshold[B] - 3.0
    before = pop.p_correct(np.full(2, B1), 0.0)
    for _ in range(10):  # massed at one moment: recall stays 1
        pop.practise(np.full(2, B1), np.array([True, True]), 0.0)
    after = pop.p_correct(np.full(2, B1), 0.0)
    assert after[0] == before[0]
    assert not pop.mastery(0.0)[0, B]
    assert after[1] == pytest.approx(irt_p(pop, B1, pop.base[1, B] + 10 * pop.rate[1, B]))
    assert after[1] > before[1]
    # a day later, learner 1's gain is recalled at the stability it has
    recall = retrievability(np.array(1.0), pop.stability[1, B])
    assert pop.p_correct(np.full(2, B1), DAY)[1] == pytest.approx(
        irt_p(pop, B1, pop.base[1, B] + 10 * pop.rate[1, B] * recall))


def test_irt_memory_forgetting_lowers_recall_with_time(tiny: Catalog) -> None:
    pop = IRTMemoryPopulation(tiny, 1, 3)
    pop.practise(np.array([A1]), np.array([True]), 0.0)
    # one first practice: gain = rate, stability stays the initial one (massed: no growth)
    assert pop.stability[0, A] == pytest.approx(pop.floor[0])
    p = [pop.p_correct(np.array([A1]), d * DAY)[0] for d in (0, 1, 7, 30)]
    assert p[0] > p[1] > p[2] > p[3] > irt_p(pop, A1, pop.base[0, A])
    for d, got in zip((0, 1, 7, 30), p, strict=True):
        recall = (1 + 19 / 81 * d / pop.floor[0]) ** -0.5  # FSRS: 0.9 after S days
        assert got == pytest.approx(irt_p(pop, A1, pop.base[0, A] + pop.rate[0, A] * recall))


def test_irt_memory_spaced_practice_outlasts_massed(tiny: Catalog) -> None:
    """Four correct answers a day apart, against four a minute apart ending at the same moment:
    same count, same last practice, higher stability and recall 7 and 30 days later."""
    spaced, massed = IRTMemoryPopulation(tiny, 1, 4), IRTMemoryPopulation(tiny, 1, 4)
    one, yes = np.array([A1]), np.array([True])
    end = 3 * DAY
    for k in range(4):
        spaced.practise(one, yes, k * DAY)
        massed.practise(one, yes, end - (3 - k) * 60.0)
    assert spaced.stability[0, A] > 3 * massed.stability[0, A]
    for d in (7, 30):
        at = end + d * DAY
        assert spaced.p_correct(one, at)[0] > massed.p_correct(one, at)[0]
        assert spaced.test_score(one, at)[0] > massed.test_score(one, at)[0]


def test_irt_memory_lapse_lowers_stability_not_below_initial(tiny: Catalog) -> None:
    pop = IRTMemoryPopulation(tiny, 1, 5)
    one = np.array([A1])
    for k in range(3):
        pop.practise(one, np.array([True]), k * 2 * DAY)
    grown = pop.stability[0, A]
    pop.practise(one, np.array([False]), 20 * DAY)
    assert pop.floor[0] <= pop.stability[0, A] < grown


# ------------------------------------------------------------------ fitted-bkt by hand
def fitted_numbers(pop: FittedBKTPopulation, skill: int) -> dict[str, float]:
    """A catalog skill's parameters as the fitted model file states them."""
    coef = to_pybkt(load_tracer(PARAMS))[pop.real_skills[skill]]
    return {"prior": coef["prior"], "learn": coef["learns"][0], "forget": coef["forgets"][0],
            "guess": coef["guesses"][-1], "slip": coef["slips"][-1]}


def test_fitted_p_correct_is_the_fitted_models(tiny: Catalog) -> None:
    pop = FittedBKTPopulation(tiny, 50_000, 6)
    a, b = fitted_numbers(pop, A), fitted_numbers(pop, B)
    got = pop.p_correct(np.full(pop.n, A1), 0.0)
    knows = pop.known[:, A]
    np.testing.assert_array_equal(got[knows], 1 - a["slip"])
    np.testing.assert_array_equal(got[~knows], a["guess"])
    both = pop.p_correct(np.full(pop.n, AB1), 0.0)  # the mean over the item's skills
    expected = (np.where(knows, 1 - a["slip"], a["guess"])
                + np.where(pop.known[:, B], 1 - b["slip"], b["guess"])) / 2
    np.testing.assert_allclose(both, expected)

    # the population's mean P(correct) is the fitted tracer's prediction for a new learner,
    # before and after one practice (averaging the tracer over both outcomes)
    tracer = load_tracer(PARAMS)
    real = (pop.real_skills[A],)
    fresh = tracer.new_state()
    p0 = tracer.predict_correct(fresh, "a.1", real)
    assert p0 == pytest.approx(a["prior"] * (1 - a["slip"]) + (1 - a["prior"]) * a["guess"])
    se = math.sqrt(p0 * (1 - p0) / pop.n)
    assert got.mean() == pytest.approx(p0, abs=4 * se)
    pop.practise(np.full(pop.n, A1), np.ones(pop.n, dtype=bool), 60.0)
    p1 = sum(
        p * tracer.predict_correct(tracer.update(fresh, AnswerEvent("u", "a.1", real, y)),
                                   "a.1", real)
        for y, p in ((True, p0), (False, 1 - p0)))
    assert pop.p_correct(np.full(pop.n, A1), 120.0).mean() == pytest.approx(p1, abs=4 * se)


def test_fitted_answers_give_back_the_fitted_parameters(tiny: Catalog) -> None:
    """Answers drawn from the population are BKT+forgetting's with the fitted numbers: fitting
    the model on them recovers those numbers (skill ``a`` has no prerequisite)."""
    n, answers = 4000, 25
    pop = FittedBKTPopulation(tiny, n, 11)
    truth = fitted_numbers(pop, A)
    rng = np.random.default_rng(0)
    correct = np.zeros((n, answers), dtype=bool)
    for t in range(answers):
        items = np.full(n, A1)
        correct[:, t] = rng.random(n) < pop.p_correct(items, t * 60.0)
        pop.practise(items, correct[:, t], t * 60.0)
    log = AnswerLog.from_columns(np.repeat(np.arange(n).astype(str), answers),
                                 np.full(n * answers, "a.1", dtype=object),
                                 np.full(n * answers, "a", dtype=object), correct.ravel())
    fitted = to_pybkt(make_tracer("bkt-forgets", num_fits=3, seed=0).fit(log))["a"]
    got = {"prior": fitted["prior"], "learn": fitted["learns"][0],
           "forget": fitted["forgets"][0], "guess": fitted["guesses"][-1],
           "slip": fitted["slips"][-1]}
    for key, value in truth.items():
        assert got[key] == pytest.approx(value, abs=0.03), key


def test_fitted_learns_only_with_prerequisites(tiny: Catalog) -> None:
    n = 40_000
    pop = FittedBKTPopulation(tiny, n, 7)
    learn = fitted_numbers(pop, B)["learn"]
    pop.known[: n // 2, A] = False  # first half lacks the prerequisite
    pop.known[n // 2:, A] = True
    pop.known[:, B] = False
    pop.practise(np.full(n, B1), np.zeros(n, dtype=bool), 0.0)
    assert not pop.known[: n // 2, B].any()
    learned = pop.known[n // 2:, B].mean()
    assert learned == pytest.approx(learn, abs=4 * math.sqrt(learn * (1 - learn) / (n // 2)))
    for step in range(30):  # however much they practise
        pop.practise(np.full(n, B1), np.ones(n, dtype=bool), step + 1.0)
    assert not pop.known[: n // 2, B].any()
    assert not pop.mastery(1e9)[: n // 2, B].any()


def test_fitted_forgets_per_opportunity_not_with_time(tiny: Catalog) -> None:
    n = 40_000
    pop = FittedBKTPopulation(tiny, n, 8)
    forget = fitted_numbers(pop, A)["forget"]
    pop.known[:, A] = True
    start = pop.p_correct(np.full(n, A1), 0.0)
    np.testing.assert_array_equal(start, pop.p_correct(np.full(n, A1), 30 * DAY))
    pop.practise(np.full(n, A1), np.ones(n, dtype=bool), 0.0)
    kept = pop.known[:, A].mean()
    assert kept == pytest.approx(1 - forget, abs=4 * math.sqrt(forget * (1 - forget) / n) + 1e-9)


def test_fitted_skill_mapping_is_seeded_by_the_catalog(math_catalog: Catalog,
                                                       tiny: Catalog) -> None:
    real = environment().skills
    assert len(real) == 72  # the skills of assist2009-dkt's training split with >= 1,000 answers
    counts = json.loads(PARAMS.read_text())["answers_per_skill"]
    assert all(counts[s] >= MIN_ANSWERS for s in real)
    one, other = (FittedBKTPopulation(math_catalog, 3, seed) for seed in (1, 2))
    assert one.real_skills == other.real_skills  # learners' seed does not change the skills
    assert len(set(one.real_skills)) == len(math_catalog.skills)  # without replacement
    assert FittedBKTPopulation(tiny, 3, 1).real_skills != one.real_skills[:2]
    many = tuple(f"s{k}" for k in range(100))  # more skills than real ones: reused after all
    drawn = real_skills_for(many, real)
    assert set(drawn[:72]) == set(real) and len(set(drawn)) == 72


def test_counter_uniform_is_a_fixed_uniform_function_of_its_keys() -> None:
    learners, skills, counts = np.meshgrid(np.arange(200), np.arange(20), np.arange(25))
    u = counter_uniform(3, learners, skills, counts).ravel()
    assert kstest(u, "uniform").pvalue > 1e-3
    np.testing.assert_array_equal(u, counter_uniform(3, learners, skills, counts).ravel())
    assert counter_uniform(3, 5, 2, 1) == counter_uniform(3, np.array([4, 5]), 2, 1)[1]
    assert counter_uniform(3, 5, 2, 1) != counter_uniform(4, 5, 2, 1)
    assert counter_uniform(3, 5, 2, 1) != counter_uniform(3, 2, 5, 1)


def test_population_size_must_be_positive(tiny: Catalog) -> None:
    for family in ("irt-memory", "fitted-bkt"):
        with pytest.raises(ValueError, match="n >= 1"):
            make_population(family, tiny, 0, 1)


@pytest.mark.shared_data
def test_committed_fit_matches_a_refit() -> None:
    """The committed parameters are what bench/fit_simulation_env.py fits on the data."""
    from training.readers import read_log

    train = SHARED / "assist2009-dkt" / "builder_train.csv"
    if not train.is_file():
        pytest.skip(f"../shared/data not found (looked for {train})")
    committed = json.loads(PARAMS.read_text())
    options = committed["options"]
    refit = fit_environment(read_log(train, "dkt3"), num_fits=options["num_fits"],
                            seed=options["seed"])
    assert refit["answers_per_skill"] == committed["answers_per_skill"]
    assert refit["skills"].keys() == committed["skills"].keys()
    for skill, ours in committed["skills"].items():
        for key in ("prior", "learns", "forgets", "guesses", "slips"):
            np.testing.assert_allclose(refit["skills"][skill][key], ours[key], atol=1e-4,
                                       err_msg=f"skill {skill} {key}")
    assert committed["source"]["test_auc"] >= 0.82  # pyBKT's BKT+forgets: 0.826
