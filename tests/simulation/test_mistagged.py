"""The ``mistagged`` family: 30% of the items practise another skill than their tags, the same
way for a catalog whatever the learners' seed; answers follow the true skill."""

from __future__ import annotations

import numpy as np

from engine.simulation.base import make_population
from engine.simulation.courses import generated_catalog
from engine.simulation.mistagged import SHARE, true_catalog
from engine.simulation.prereq_forget import PrereqForget


def test_a_share_of_items_is_retagged_the_same_way_every_time() -> None:
    catalog = generated_catalog(20, seed=2)
    truth = true_catalog(catalog)
    assert list(truth.items) == list(catalog.items) and list(truth.skills) == list(catalog.skills)
    moved = [i for i in catalog.items if truth.items[i].skills != catalog.items[i].skills]
    assert abs(len(moved) - SHARE * len(catalog.items)) <= 0.05 * len(catalog.items)
    for i in moved:  # one other skill, never one of the tags
        assert len(truth.items[i].skills) == 1
        assert truth.items[i].skills[0] not in catalog.items[i].skills
    assert all(any(s in item.skills for item in truth.items.values()) for s in truth.skills)
    again = true_catalog(generated_catalog(20, seed=2))
    assert all(again.items[i].skills == truth.items[i].skills for i in catalog.items)


def test_answers_follow_the_true_skill_not_the_tag() -> None:
    catalog = generated_catalog(20, seed=2)
    truth = true_catalog(catalog)
    mistagged = make_population("mistagged", catalog, 400, seed=5)
    reference = PrereqForget(truth, 400, seed=5)  # the same learners on the true tags
    items = np.arange(len(catalog.items))
    for j in items[::7].tolist():
        chosen = np.full(400, j, dtype=np.int64)
        np.testing.assert_allclose(mistagged.p_correct(chosen, 0.0),
                                   reference.p_correct(chosen, 0.0))
    assert mistagged.catalog is not catalog  # its catalog is the truth, the oracle's
