"""The knowledge-structure model: prerequisite-closed states, the prior's draws, the answers'
likelihoods propagated over the graph both ways, and the items' information."""

from __future__ import annotations

import numpy as np
import pytest

from engine.placement.knowledge import (
    DiagnosticItem,
    KnowledgeModel,
    entropy,
    sample_states,
)
from engine.simulation.courses import GENERATED_COURSE, generated_catalog

#: a 3-skill chain: c requires b, b requires a
CHAIN = {"a": [], "b": ["a"], "c": ["b"]}
CHAIN_ITEMS = [DiagnosticItem(f"i{s}", (s,), 0.2, 0.1) for s in "abc"]


def chain_model(**options: object) -> KnowledgeModel:
    return KnowledgeModel.build(CHAIN, CHAIN_ITEMS, partial=(0.0,), particles=40_000,
                                **options)  # type: ignore[arg-type]


def p_known(model: KnowledgeModel, answers: list[tuple[str, bool]]) -> dict[str, float]:
    weights = np.zeros(model.shape)
    for item, correct in answers:
        weights += model.log_likelihood(model.index[item], correct)
    p = model.probabilities(weights)[0]
    return dict(zip(model.skills, p.tolist(), strict=False))


def test_states_are_prerequisite_closed_and_every_size_equally_likely() -> None:
    catalog = generated_catalog(20, seed=2)
    skills = list(catalog.order)
    position = {s: k for k, s in enumerate(skills)}
    requires = [[position[r] for r in catalog.skills[s].requires] for s in skills]
    states = sample_states(requires, 20_000, np.random.default_rng(0))
    for k, reqs in enumerate(requires):
        for r in reqs:  # whoever knows a skill knows its prerequisites
            assert not np.any(states[:, k] & ~states[:, r])
    sizes = np.bincount(states.sum(axis=1), minlength=21) / len(states)
    np.testing.assert_allclose(sizes, 1 / 21, atol=0.006)
    fixed = sample_states(requires, 100, np.random.default_rng(0), size=7)
    assert np.all(fixed.sum(axis=1) == 7)
    with pytest.raises(ValueError, match="21 skills out of 20"):
        sample_states(requires, 1, np.random.default_rng(0), size=21)


def test_a_chain_by_hand() -> None:
    """On a chain the closed states are {}, {a}, {a, b}, {a, b, c}, a quarter each a priori
    (so P(a) = 0.75, P(b) = 0.5, P(c) = 0.25). A right answer on c (0.9 if c is known, else
    0.2) leaves {a, b, c} at 0.9 / 1.5 = 0.6 and the others at 0.2 / 1.5 each; a wrong answer
    on a (0.1 if a is known, else 0.8) leaves {} at 0.8 / 1.1 and the others at 0.1 / 1.1."""
    model = chain_model()
    prior = p_known(model, [])
    assert prior == pytest.approx({"a": 0.75, "b": 0.5, "c": 0.25}, abs=0.01)
    right_on_top = p_known(model, [("ic", True)])
    assert right_on_top == pytest.approx({"a": 1 - 0.2 / 1.5, "b": 0.6 + 0.2 / 1.5,
                                          "c": 0.6}, abs=0.01)
    assert right_on_top["a"] > prior["a"] and right_on_top["b"] > prior["b"]
    wrong_on_bottom = p_known(model, [("ia", False)])
    assert wrong_on_bottom == pytest.approx({"a": 0.3 / 1.1, "b": 0.2 / 1.1, "c": 0.1 / 1.1},
                                            abs=0.01)
    assert wrong_on_bottom["c"] < prior["c"] and wrong_on_bottom["b"] < prior["b"]


def test_partial_knowledge_makes_a_lucky_answer_weaker_evidence() -> None:
    tight = chain_model()
    mixed = KnowledgeModel.build(CHAIN, CHAIN_ITEMS, partial=(0.0, 0.5), particles=40_000)
    assert p_known(mixed, [("ic", True)])["a"] < p_known(tight, [("ic", True)])["a"]
    # answers that only partial knowledge explains move the responder types towards it
    weights = np.zeros(mixed.shape)
    for item, correct in [("ic", True), ("ia", False), ("ib", True), ("ia", False)]:
        weights += mixed.log_likelihood(mixed.index[item], correct)
    assert mixed.probabilities(weights)[1][1] > 0.5
    assert mixed.guess[1] == pytest.approx(0.2 + 0.5 * (1 - 0.1 - 0.2))


def test_items_of_prerequisites_and_conjunctions() -> None:
    items = [DiagnosticItem("cb", ("c", "b"), 0.2, 0.1),  # b is implied by c: c's column
             DiagnosticItem("solo", ("a",), 0.2, 0.1)]
    model = KnowledgeModel.build({"a": [], "b": [], "c": ["b"]}, items, particles=2000)
    assert model.column.tolist() == [model.skills.index("c"), model.skills.index("a")]
    both = KnowledgeModel.build({"a": [], "b": []}, [DiagnosticItem("ab", ("a", "b"), .2, .1)],
                                particles=2000)
    assert both.column.tolist() == [2]  # a column of its own: a and b
    np.testing.assert_array_equal(both.holds[:, 2], both.holds[:, 0] & both.holds[:, 1])


def test_information_by_hand() -> None:
    """One item, P(skills known) 0.5, guess 0.2, slip 0.1: P(right) = 0.55 and the
    information is H(0.55) - 0.5 H(0.1) - 0.5 H(0.2); an item whose skill is surely known
    tells nothing."""
    model = KnowledgeModel.build({"a": [], "b": []}, [DiagnosticItem("ia", ("a",), .2, .1),
                                                      DiagnosticItem("ib", ("b",), .2, .1)],
                                 partial=(0.0,), particles=100)
    info = model.information(np.array([0.5, 1.0]), np.array([1.0]))
    h = entropy(np.array([0.55, 0.1, 0.2]))
    assert info[0] == pytest.approx(h[0] - 0.5 * h[1] - 0.5 * h[2])
    assert info[1] == pytest.approx(0.0, abs=1e-12)


def test_the_states_are_the_same_in_every_process() -> None:
    catalog = generated_catalog(12, seed=0)
    course = catalog.courses[GENERATED_COURSE]
    first = KnowledgeModel.from_catalog(catalog, course.skills, list(catalog.items))
    second = KnowledgeModel.from_catalog(catalog, course.skills, list(catalog.items))
    np.testing.assert_array_equal(first.holds, second.holds)
    assert first.holds.flags.writeable is False


def test_from_catalog_takes_the_contents_guess_and_slip() -> None:
    catalog = generated_catalog(4, seed=0)
    model = KnowledgeModel.from_catalog(catalog, list(catalog.skills), list(catalog.items),
                                        particles=100)
    item = catalog.items[model.items[0].id]
    params = catalog.skills[item.skills[0]].bkt
    assert model.guess[0, 0] == pytest.approx(params.guess)
    assert model.slip[0] == pytest.approx(params.slip)


@pytest.mark.parametrize(("requires", "items", "options", "message"), [
    ({"a": ["b"], "b": ["a"]}, CHAIN_ITEMS[:1], {}, "cycle"),
    ({"a": ["z"]}, CHAIN_ITEMS[:1], {}, "requires 'z', which is not one of the model's"),
    ({}, CHAIN_ITEMS[:1], {}, "at least one skill"),
    (CHAIN, [], {}, "at least one item"),
    (CHAIN, [DiagnosticItem("x", ("q",), .2, .1)], {}, r"no other \(unknown: \['q'\]\)"),
    (CHAIN, CHAIN_ITEMS[:1] * 2, {}, "'ia' is given twice"),
    (CHAIN, [DiagnosticItem("x", ("a",), .6, .5)], {}, "guess < 1 - slip"),
    (CHAIN, CHAIN_ITEMS, {"particles": 1}, "at least 2 particles"),
    (CHAIN, CHAIN_ITEMS, {"partial": (1.0,)}, r"share in \[0, 1\)"),
])
def test_bad_input(requires: dict[str, list[str]], items: list[DiagnosticItem],
                   options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KnowledgeModel.build(requires, items, **options)  # type: ignore[arg-type]
