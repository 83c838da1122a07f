"""The placement-value study: learners who know part of a course, placed or not."""

from __future__ import annotations

import numpy as np
import pytest

import engine.simulation  # noqa: F401  (registers the families)
from engine.catalog import Catalog
from engine.placement.session import StopRule
from engine.placement.skills import SkillStop
from engine.selection.registry import make_policy
from engine.simulation.base import DAY
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.placement_value import (
    PRIOR_KNOWLEDGE,
    course_truth,
    known_skills,
    place,
    placement_study,
    population_knowing,
    random_known,
)
from engine.simulation.run import EngineTutor, Schedule, learner_ids, run_tutor

FAMILIES = sorted(PRIOR_KNOWLEDGE)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return generated_catalog(8, seed=3)


def _closed(catalog: Catalog, names: set[str]) -> bool:
    return all(set(catalog.skills[s].requires) <= names for s in names)


def test_known_skills_are_a_prerequisite_closed_first_part(catalog: Catalog) -> None:
    known = known_skills(catalog, GENERATED_COURSE, 0.5)
    ids = list(catalog.skills)
    names = {ids[k] for k in known.tolist()}
    assert len(names) == 4
    assert _closed(catalog, names)  # whoever knows a skill knows its prerequisites
    assert len(known_skills(catalog, GENERATED_COURSE, 0.0)) == 0
    assert len(known_skills(catalog, GENERATED_COURSE, 1.0)) == 8


def test_random_known_sets_are_closed_of_the_share_and_differ(catalog: Catalog) -> None:
    known = random_known(catalog, GENERATED_COURSE, 0.5, 300, seed=4)
    ids = list(catalog.skills)
    assert known.shape == (300, 8)
    assert np.all(known.sum(axis=1) == 4)
    for row in known:
        assert _closed(catalog, {ids[k] for k in np.flatnonzero(row)})
    assert len({row.tobytes() for row in known}) > 5  # learners differ
    # every skill is known by some and not by others unless the graph forces it
    assert 0 < known.mean() < 1
    np.testing.assert_array_equal(known, random_known(catalog, GENERATED_COURSE, 0.5, 300, 4))


@pytest.mark.parametrize("family", FAMILIES)
def test_learners_truly_know_the_known_skills_at_the_start(catalog: Catalog,
                                                           family: str) -> None:
    known = known_skills(catalog, GENERATED_COURSE, 0.5)
    population = population_knowing(family, catalog, known, 200, seed=5)
    truth = population.mastery(0.0)
    assert truth[:, known].all()
    others = np.setdiff1d(np.arange(len(catalog.skills)), known)
    assert truth[:, others].mean() < 0.5  # the rest is mostly still to learn
    if family == "irt-memory":  # base ability does not fade: still known a month later
        assert population.mastery(30 * DAY)[:, known].all()
    mask = random_known(catalog, GENERATED_COURSE, 0.5, 200, seed=5)
    truth = population_knowing(family, catalog, mask, 200, seed=5).mastery(0.0)
    assert truth[mask].all()
    assert truth[~mask].mean() < 0.5


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["skills", "theta"])
def test_placement_moves_starting_mastery_the_right_way(catalog: Catalog, family: str,
                                                        method: str) -> None:
    mask = random_known(catalog, GENERATED_COURSE, 0.5, 150, seed=2)
    population = population_knowing(family, catalog, mask, 150, seed=2)
    before = population.p_correct(np.zeros(150, dtype=np.int64), 0.0)
    outcome = place(population, catalog, GENERATED_COURSE, seed=2, method=method)
    # the test teaches nothing: the learners answer as before
    np.testing.assert_array_equal(population.p_correct(np.zeros(150, dtype=np.int64), 0.0),
                                  before)
    assert np.all((outcome.length >= 1) & (outcome.length <= (20 if method == "skills" else 12)))
    assert [len(a) for a in outcome.answers] == outcome.length.tolist()
    truth, ids = course_truth(population, catalog, GENERATED_COURSE)
    placed = np.column_stack([outcome.mastery[s] for s in ids])
    # learners who know a skill start higher on it than those who do not
    assert placed[truth].mean() > placed[~truth].mean() + 0.3
    assert outcome.accuracy(truth, ids).mean() > 0.7  # chance: about 0.5


def test_per_skill_placement_beats_the_theta_mapping_on_a_deep_course() -> None:
    """Ground truth: learners who know a random prerequisite-closed half of a 20-skill course
    (prereq-forget: known or not, as the model says) are classified far above chance, and
    above one θ mapped to the skills, with as many items."""
    catalog = generated_catalog(20, seed=1)
    mask = random_known(catalog, GENERATED_COURSE, 0.5, 150, seed=3)
    population = population_knowing("prereq-forget", catalog, mask, 150, seed=3)
    truth, ids = course_truth(population, catalog, GENERATED_COURSE)
    skills = place(population, catalog, GENERATED_COURSE, seed=3,
                   stop=SkillStop(max_length=10, confidence=None)).accuracy(truth, ids).mean()
    theta = place(population, catalog, GENERATED_COURSE, seed=3, method="theta",
                  stop=StopRule(10, 10)).accuracy(truth, ids).mean()
    assert skills > 0.85
    assert skills > theta + 0.03


def test_the_study_is_deterministic_for_a_seed(catalog: Catalog) -> None:
    def study() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        result = placement_study("prereq-forget", catalog, GENERATED_COURSE,
                                 make_policy("target-success"), n=30, seed=9,
                                 schedule=Schedule(days=3, per_session=5),
                                 tracer=catalog.tracer, stop=SkillStop(max_length=6))
        return result.prior.outcomes, result.placed.outcomes, result.placed_exercises

    first, second = study(), study()
    for a, b in zip(first[:2], second[:2], strict=True):
        for metric in a:
            np.testing.assert_array_equal(a[metric], b[metric])
    np.testing.assert_array_equal(first[2], second[2])
    # the placement arm counts the test's items as exercises, within the budget (15)
    practice = first[1]["exercises_to_mastery"]
    assert np.all(first[2] <= 15)
    assert np.all((first[2] >= practice + 1) | (first[2] == 15))


def test_oracle_arm_and_summary(catalog: Catalog) -> None:
    study = placement_study("irt-memory", catalog, GENERATED_COURSE,
                            make_policy("target-success"), n=20, seed=4,
                            schedule=Schedule(days=2, per_session=5), tracer=catalog.tracer,
                            method="theta", known="first", stop=StopRule(max_length=4),
                            oracle=True)
    summary = study.summary()
    assert summary["method"] == "theta"
    assert summary["placement_items"]["mean"] == 4.0
    prior = study.prior.outcomes["exercises_to_mastery"].mean()
    placed = study.placed_exercises.mean()
    assert summary["placement"]["cut"] == pytest.approx((prior - placed) / prior)
    assert summary["oracle"]["post_test_difference"]["n"] == 20
    assert summary["known_skills"] == 4
    assert summary["placement"]["oracle_share"]["n"] == 20
    assert 0.0 <= summary["classification_accuracy"]["mean"] <= 1.0


def test_bad_input(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="supports the learner models"):
        population_knowing("fitted-bkt", catalog, np.array([0]), 5, seed=1)
    with pytest.raises(ValueError, match=r"known share .* \[0, 1\]"):
        known_skills(catalog, GENERATED_COURSE, 1.5)
    with pytest.raises(ValueError, match=r"known share .* \[0, 1\]"):
        random_known(catalog, GENERATED_COURSE, -0.1, 5, seed=1)
    with pytest.raises(ValueError, match="bool mask of shape"):
        population_knowing("irt-memory", catalog, np.zeros((4, 8), dtype=bool), 5, seed=1)
    population = population_knowing("irt-memory", catalog, np.array([0]), 5, seed=1)
    with pytest.raises(ValueError, match="unknown placement method 'irt'"):
        place(population, catalog, GENERATED_COURSE, seed=1, method="irt")
    with pytest.raises(ValueError, match="takes a SkillStop"):
        place(population, catalog, GENERATED_COURSE, seed=1, stop=StopRule())
    with pytest.raises(ValueError, match="unknown known-skills mode 'all'"):
        placement_study("irt-memory", catalog, GENERATED_COURSE, make_policy("random"), n=5,
                        seed=1, schedule=Schedule(days=1, per_session=1),
                        tracer=catalog.tracer, known="all")
    tutor = EngineTutor(catalog, GENERATED_COURSE, make_policy("target-success"),
                        catalog.tracer(), learner_ids("x", "irt-memory", 4))
    with pytest.raises(ValueError, match="5 learners, the run 4"):
        run_tutor("irt-memory", catalog, GENERATED_COURSE, tutor, n=4, seed=1,
                  schedule=Schedule(days=1, per_session=1), label="x", population=population)
