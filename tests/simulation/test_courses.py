"""Generated courses: valid content of the requested size, the same for a seed."""

from __future__ import annotations

import pytest

from engine.simulation.courses import GENERATED_COURSE, generated_catalog


def test_a_generated_course_has_the_requested_shape() -> None:
    catalog = generated_catalog(20, seed=1, items_per_skill=5)
    assert len(catalog.skills) == 20 and len(catalog.items) == 100
    assert catalog.courses[GENERATED_COURSE].skills == tuple(catalog.skills)
    assert any(s.requires for s in catalog.skills.values())  # a graph, not a list
    assert any(len(i.skills) == 2 for i in catalog.items.values())
    assert all(i.difficulty is not None and i.discrimination for i in catalog.items.values())
    position = {s: k for k, s in enumerate(catalog.order)}
    assert all(position[r] < position[s.id] for s in catalog.skills.values() for r in s.requires)


def test_the_same_seed_gives_the_same_course() -> None:
    one, two = generated_catalog(12, seed=4), generated_catalog(12, seed=4)
    assert list(one.skills.values()) == list(two.skills.values())
    assert list(one.items.values()) == list(two.items.values())
    assert list(generated_catalog(12, seed=5).skills.values()) != list(one.skills.values())


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 skill"):
        generated_catalog(0)
    with pytest.raises(ValueError, match="items_per_skill"):
        generated_catalog(3, items_per_skill=0)
