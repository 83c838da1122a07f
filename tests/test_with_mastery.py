"""``Tracer.with_mastery`` and ``fold(start=)``, what a placement's result goes through
(api/placement.py): for every registered model, masteries are set exactly, or the model
refuses (NotImplementedError) and says so."""

from __future__ import annotations

from typing import Any

import pytest
from test_tracer_contract import fitted, log  # noqa: F401 (fixtures: every model, fitted)

from engine.events import AnswerLog
from engine.tracing import Tracer

#: the models whose state holds a P(mastered) per skill, which must take a placement's
SETS_MASTERY = {"bkt", "bkt-forgets", "bkt-memory"}


def test_with_mastery_sets_the_named_skills_or_refuses(fitted: Tracer[Any],  # noqa: F811
                                                       log: AnswerLog) -> None:  # noqa: F811
    events = list(log.events())
    state = fitted.fold(events[:10])
    skills = list(fitted.skills)
    before = fitted.mastery(state, skills)
    want = {skills[0]: 0.9, skills[1]: 0.05, "not-a-skill-of-the-model": 0.5}
    try:
        placed = fitted.with_mastery(state, want)
    except NotImplementedError as exc:
        assert fitted.name not in SETS_MASTERY
        assert fitted.name in str(exc)
        return
    assert fitted.name in SETS_MASTERY
    got = fitted.mastery(placed, skills)
    assert got[skills[0]] == pytest.approx(0.9, abs=1e-12)
    assert got[skills[1]] == pytest.approx(0.05, abs=1e-12)
    assert {s: got[s] for s in skills[2:]} == {s: before[s] for s in skills[2:]}
    assert fitted.mastery(state, skills) == before  # the state given is left unchanged
    with pytest.raises(ValueError, match="must be in"):
        fitted.with_mastery(state, {skills[0]: 1.5})


def test_fold_from_a_start_is_the_updates_from_it(fitted: Tracer[Any],  # noqa: F811
                                                  log: AnswerLog) -> None:  # noqa: F811
    events = [e for e in log.events() if e.learner == next(iter(log.events())).learner]
    start = fitted.fold(events[:3])
    by_hand = start
    for event in events[3:]:
        by_hand = fitted.update(by_hand, event)
    assert fitted.state_to_bytes(fitted.fold(events[3:], start=start)) == \
        fitted.state_to_bytes(by_hand)
    # and the whole fold is the fold from the start of the first answers
    assert fitted.state_to_bytes(fitted.fold(events)) == fitted.state_to_bytes(by_hand)
