"""The oracle tutor on a hand-made course (:mod:`tests.simulation.toy`): it follows the
prerequisite order, picks the item whose true P(correct) is closest to 0.75, never practises a
mastered skill and stops once the course is mastered; and it runs as a row of ``compare``,
built on each family's population."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

import engine.simulation  # noqa: F401  (registers the families)
from engine.catalog import Catalog, Course, Item, Skill
from engine.selection import make_policy
from engine.simulation.base import NO_ITEM
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.oracle import OracleTutor
from engine.simulation.run import EPOCH, Schedule, compare, run_tutor

from .toy import CATALOG, COURSE, ITEMS, ToyLearners

#: learners knowing: nothing; a; a and c (not b: not closed under prerequisites); everything
KNOWN = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 1], [1, 1, 1]], dtype=bool)
#: what the oracle gives each of them, exercise by exercise (worked out from the toy's rules:
#: a2 is a's item closest to 0.75; bc belongs to c, its last skill, and is closer than c1)
EXPECTED = [["a2", "a2", "b1", "b1", "bc", "bc"], ["b1", "b1", "bc", "bc"], ["b1", "b1"], []]


def test_the_oracle_teaches_in_order_at_the_target_and_stops_at_mastery() -> None:
    learners = ToyLearners(KNOWN)
    oracle = OracleTutor(learners, CATALOG, COURSE)
    np.testing.assert_array_equal(oracle.mastery(EPOCH), KNOWN.astype(float))  # the truth
    given: list[list[str]] = [[] for _ in KNOWN]
    for step in range(8):
        at = EPOCH + timedelta(minutes=step)
        t = (at - EPOCH).total_seconds()
        chosen = oracle.choose(at)
        mastered = learners.mastery(t)
        for i, j in enumerate(chosen.tolist()):
            if j == NO_ITEM:
                assert mastered[i].all()  # it stops only at mastery
                continue
            # never an item all of whose skills are mastered (a known skill is not practised)
            assert not all(mastered[i, "abc".index(s)] for s in CATALOG.items[ITEMS[j]].skills)
            given[i].append(ITEMS[j])
        learners.practise(chosen, np.ones(len(KNOWN), dtype=bool), t)
    assert given == EXPECTED


def test_an_oracle_run_counts_to_mastery_and_is_complete_there() -> None:
    learners = ToyLearners(KNOWN)
    run = run_tutor("toy", CATALOG, COURSE, OracleTutor(learners, CATALOG, COURSE),
                    n=len(KNOWN), seed=1, schedule=Schedule(days=1, per_session=8),
                    label="oracle", population=learners)
    assert run.outcomes["exercises_to_mastery"].tolist() == [6, 4, 2, 0]
    assert run.outcomes["exercises_to_complete"].tolist() == [6, 4, 2, 0]
    assert run.outcomes["exercises_on_known"].tolist() == [0, 0, 0, 0]
    assert run.mastered.all()


def test_the_oracle_is_a_row_of_compare_with_each_policys_share_of_its_gain() -> None:
    policies = {"fixed-curriculum": make_policy("fixed-curriculum"),
                "random": make_policy("random")}
    result = compare(["toy"], CATALOG, COURSE, policies, n=len(KNOWN), seed=2,
                     schedule=Schedule(days=2, per_session=6), tracer=CATALOG.tracer,
                     tutors={"oracle": OracleTutor},
                     population=lambda family, catalog, n, seed: ToyLearners(KNOWN, seed),
                     gain=("fixed-curriculum", "oracle"))
    runs, summary = result.runs["toy"], result.summary()["toy"]
    assert list(summary) == ["fixed-curriculum", "random", "oracle"]
    assert runs["oracle"].outcomes["exercises_to_mastery"].tolist() == [6, 4, 2, 0]
    assert "share_of_oracle_gain" not in summary["fixed-curriculum"]
    assert "share_of_oracle_gain" not in summary["oracle"]
    fixed, random, oracle = (runs[r].outcomes["exercises_to_mastery"].mean()
                             for r in ("fixed-curriculum", "random", "oracle"))
    share = summary["random"]["share_of_oracle_gain"]
    assert share["mean"] == pytest.approx((fixed - random) / (fixed - oracle))


def test_every_family_can_have_an_oracle_row() -> None:
    """The factory takes whatever population the family makes: no family is named."""
    catalog = generated_catalog(6, seed=2, items_per_skill=3)
    result = compare(["prereq-forget", "irt-memory", "fitted-bkt"], catalog, GENERATED_COURSE,
                     {"fixed-curriculum": make_policy("fixed-curriculum")}, n=20, seed=3,
                     schedule=Schedule(days=3, per_session=8), tracer=catalog.tracer,
                     tutors={"oracle": OracleTutor}, gain=("fixed-curriculum", "oracle"))
    for runs in result.runs.values():
        oracle, fixed = runs["oracle"], runs["fixed-curriculum"]
        # the oracle is done when the course is mastered, and is not slower on average
        np.testing.assert_array_equal(oracle.outcomes["exercises_to_complete"][oracle.mastered],
                                      oracle.outcomes["exercises_to_mastery"][oracle.mastered])
        assert oracle.outcomes["exercises_to_mastery"].mean() <= \
            fixed.outcomes["exercises_to_mastery"].mean()


def test_the_oracle_refuses_a_course_skill_without_an_item_of_its_own() -> None:
    catalog = Catalog.build([Skill("a", "A"), Skill("b", "B", requires=("a",))],
                            [Item("ab", ("a", "b"))], [Course("c", "C", ("a", "b"))])
    learners = ToyLearners(np.zeros((1, 3), dtype=bool))
    learners.catalog = catalog  # the oracle reads which items practise what from the learners
    with pytest.raises(ValueError, match=r"every course skill.*; a has none"):
        OracleTutor(learners, catalog, "c")
