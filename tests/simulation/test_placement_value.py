"""The placement-value study: learners who know part of a course, placed or not."""

from __future__ import annotations

import numpy as np
import pytest

import engine.simulation  # noqa: F401  (registers the families)
from engine.catalog import Catalog
from engine.placement.session import StopRule
from engine.selection.registry import make_policy
from engine.simulation.base import DAY
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.placement_value import (
    PRIOR_KNOWLEDGE,
    known_skills,
    place,
    placement_study,
    population_knowing,
)
from engine.simulation.run import EngineTutor, Schedule, learner_ids, run_tutor

FAMILIES = sorted(PRIOR_KNOWLEDGE)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return generated_catalog(8, seed=3)


def test_known_skills_are_a_prerequisite_closed_first_part(catalog: Catalog) -> None:
    known = known_skills(catalog, GENERATED_COURSE, 0.5)
    ids = list(catalog.skills)
    names = {ids[k] for k in known.tolist()}
    assert len(names) == 4
    for skill in names:  # whoever knows a skill knows its prerequisites
        assert set(catalog.skills[skill].requires) <= names
    assert len(known_skills(catalog, GENERATED_COURSE, 0.0)) == 0
    assert len(known_skills(catalog, GENERATED_COURSE, 1.0)) == 8


@pytest.mark.parametrize("family", FAMILIES)
def test_learners_truly_know_the_known_skills_at_the_start(catalog: Catalog,
                                                           family: str) -> None:
    known = known_skills(catalog, GENERATED_COURSE, 0.5)
    population = population_knowing(family, catalog, known, 200, seed=5)
    truth = population.mastery(0.0)
    assert truth[:, known].all()
    others = np.setdiff1d(np.arange(len(catalog.skills)), known)
    assert truth[:, others].mean() < 0.5  # the rest is mostly still to learn
    assert truth[:, known].mean() > truth[:, others].mean()
    if family == "irt-memory":  # base ability does not fade: still known a month later
        assert population.mastery(30 * DAY)[:, known].all()


@pytest.mark.parametrize("family", FAMILIES)
def test_placement_moves_starting_mastery_the_right_way(catalog: Catalog, family: str) -> None:
    known = known_skills(catalog, GENERATED_COURSE, 0.5)
    population = population_knowing(family, catalog, known, 150, seed=2)
    before = population.p_correct(np.zeros(150, dtype=np.int64), 0.0)
    outcome = place(population, catalog, GENERATED_COURSE, seed=2)
    # the test teaches nothing: the learners answer as before
    np.testing.assert_array_equal(population.p_correct(np.zeros(150, dtype=np.int64), 0.0),
                                  before)
    assert np.all((outcome.length >= 1) & (outcome.length <= 12))
    ids = list(catalog.skills)
    truth = population.mastery(0.0)
    placed = np.column_stack([outcome.mastery[s] for s in ids])
    prior = 1.0 - catalog.tracer().new_state()
    # learners who know a skill start higher on it than those who do not ...
    assert placed[truth].mean() > placed[~truth].mean() + 0.3
    # ... and the skills they all know start above the prior
    assert np.all(placed[:, known].mean(axis=0) > prior[known])


def test_the_study_is_deterministic_for_a_seed(catalog: Catalog) -> None:
    def study() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
        result = placement_study("prereq-forget", catalog, GENERATED_COURSE,
                                 make_policy("target-success"), n=30, seed=9,
                                 schedule=Schedule(days=3, per_session=5),
                                 tracer=catalog.tracer, stop=StopRule(max_length=6, se=0.3))
        return result.prior.outcomes, result.placed.outcomes, result.placed_exercises

    first, second = study(), study()
    for a, b in zip(first[:2], second[:2], strict=True):
        for metric in a:
            np.testing.assert_array_equal(a[metric], b[metric])
    np.testing.assert_array_equal(first[2], second[2])
    # the placement arm counts the test's items as exercises
    assert np.all(first[2] >= first[1]["exercises_to_mastery"] + 1)


def test_oracle_arm_and_summary(catalog: Catalog) -> None:
    study = placement_study("irt-memory", catalog, GENERATED_COURSE,
                            make_policy("target-success"), n=20, seed=4,
                            schedule=Schedule(days=2, per_session=5), tracer=catalog.tracer,
                            stop=StopRule(max_length=4), oracle=True)
    summary = study.summary()
    assert summary["placement_items"]["mean"] == 4.0
    prior = study.prior.outcomes["exercises_to_mastery"].mean()
    placed = study.placed_exercises.mean()
    assert summary["placement"]["cut"] == pytest.approx((prior - placed) / prior)
    assert summary["oracle"]["post_test_difference"]["n"] == 20
    assert len(study.known) == 4


def test_bad_input(catalog: Catalog) -> None:
    with pytest.raises(ValueError, match="supports the learner models"):
        population_knowing("fitted-bkt", catalog, np.array([0]), 5, seed=1)
    with pytest.raises(ValueError, match=r"known share .* \[0, 1\]"):
        known_skills(catalog, GENERATED_COURSE, 1.5)
    population = population_knowing("irt-memory", catalog, np.array([0]), 5, seed=1)
    tutor = EngineTutor(catalog, GENERATED_COURSE, make_policy("target-success"),
                        catalog.tracer(), learner_ids("x", "irt-memory", 4))
    with pytest.raises(ValueError, match="5 learners, the run 4"):
        run_tutor("irt-memory", catalog, GENERATED_COURSE, tutor, n=4, seed=1,
                  schedule=Schedule(days=1, per_session=1), label="x", population=population)
