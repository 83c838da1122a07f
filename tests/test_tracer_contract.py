"""The tracer contract (engine/tracing/base.py), checked for every model of the registry: a model
added to ``MODELS`` is held to it without a test of its own.

Online = batch, the vectorized predictions equal the one-item ones, states and parameters
survive their byte forms, the registry rebuilds what it saved, unknown skills are treated as
the contract says, and ``get_options`` makes an unfitted twin.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.events import AnswerEvent, AnswerLog
from engine.tracing import (
    MODELS,
    ItemIndex,
    NotFittedError,
    Tracer,
    load_tracer,
    make_tracer,
    tracer_from_bytes,
)
from engine.tracing.simulate import random_params, simulate

#: options that keep each model's fit to a second or two
QUICK: dict[str, dict[str, Any]] = {
    "bkt": {"num_fits": 2}, "bkt-forgets": {"num_fits": 2}, "bkt-memory": {"num_fits": 2},
    "dkt": {"hidden": 8, "embed": 4, "members": 2, "epochs": 2, "window": 20, "batch_size": 8},
    "timed": {}, "das3h": {}, "best-lr": {}, "pfa": {},
}


@pytest.fixture(scope="module")
def log() -> AnswerLog:
    # items with their own ids, two skills per some answers: the general case
    plain, _ = simulate(random_params(4, seed=3, items_per_skill=3), 40,
                        answers_per_skill=(2, 6), seed=4)
    events = list(plain.events())
    events[5] = replace(events[5], skills=("s0", "s1"))
    events[17] = replace(events[17], skills=("s2", "s3"))
    return AnswerLog.from_events(events)


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest, log: AnswerLog) -> Tracer[Any]:
    return make_tracer(request.param, seed=1, **QUICK[request.param]).fit(log)


def test_every_registered_model_has_quick_options() -> None:
    assert set(QUICK) == set(MODELS)


def test_online_updates_reproduce_batch_predictions(fitted: Tracer[Any], log: AnswerLog) -> None:
    batch = fitted.predict_log(log)
    states: dict[str, Any] = {}
    online = []
    for event in log.events():
        state = states.get(event.learner, fitted.new_state())
        online.append(fitted.predict_correct(state, event.item, event.skills))
        states[event.learner] = fitted.update(state, event)
    np.testing.assert_allclose(online, batch, atol=2e-6)


def test_fold_is_the_learners_state(fitted: Tracer[Any], log: AnswerLog) -> None:
    events = [e for e in log.events() if e.learner == "u3"]
    state = fitted.new_state()
    for event in events:
        state = fitted.update(state, event)
    assert fitted.state_to_bytes(fitted.fold(events)) == fitted.state_to_bytes(state)
    # a skill the model does not know is skipped, the event's other skills still count
    extra = [replace(e, skills=(*e.skills, "unknown")) for e in events]
    assert fitted.state_to_bytes(fitted.fold(extra)) == fitted.state_to_bytes(state)
    with pytest.raises(KeyError, match="unknown"):
        fitted.update(state, extra[0])


def test_vectorized_predictions_equal_one_item_predictions(fitted: Tracer[Any],
                                                           log: AnswerLog) -> None:
    state = fitted.fold(e for e in log.events() if e.learner == "u1")
    items = ItemIndex([("s0-i0", ("s0",)), ("s1-i2", ("s1",)), ("new", ("s2",)),
                       ("both", ("s3", "s0"))])
    at = datetime(2026, 1, 1, tzinfo=UTC)
    expected = [fitted.predict_correct(state, i, s, at=at)
                for i, s in zip(items.item_ids, items.item_skills, strict=True)]
    for _ in range(2):  # the second call uses the model's cached mapping
        np.testing.assert_allclose(fitted.predict_items(state, items, at=at), expected,
                                   rtol=1e-12, atol=1e-12)
    mastery = fitted.mastery(state, items.skill_ids, at=at)
    np.testing.assert_allclose(fitted.mastery_of(state, items, at=at),
                               [mastery[s] for s in items.skill_ids], rtol=1e-12, atol=1e-12)
    assert set(fitted.mastery(state)) == set(fitted.skills)
    with pytest.raises(KeyError):
        fitted.predict_items(state, ItemIndex([("x", ("unknown",))]))


def test_state_bytes_round_trip(fitted: Tracer[Any], log: AnswerLog) -> None:
    state = fitted.fold(e for e in log.events() if e.learner == "u2")
    data = fitted.state_to_bytes(state)
    again = fitted.state_from_bytes(data)
    assert fitted.state_to_bytes(again) == data
    assert fitted.mastery(again) == fitted.mastery(state)
    with pytest.raises(ValueError):
        fitted.state_from_bytes(data + b"\0")


def test_a_new_state_round_trips_through_bytes(fitted: Tracer[Any]) -> None:
    """A learner never seen is cached as the new state (GET /next, a batch's first answer):
    ``timed`` could not read back a state of no skills (a 500 for every new learner)."""
    data = fitted.state_to_bytes(fitted.new_state())
    again = fitted.state_from_bytes(data)
    assert fitted.state_to_bytes(again) == data
    assert fitted.mastery(again) == fitted.mastery(fitted.new_state())


@pytest.mark.parametrize("fill", [b"\xff", b"\x7f"], ids=["nan", "huge"])
def test_damaged_state_bytes_are_refused(fitted: Tracer[Any], fill: bytes) -> None:
    """Bytes of the right size that no state holds (every value NaN, or every value about
    1e38 (float32) or 1e306 (float64)) are a ValueError, like bytes of the wrong size: a
    state store's damaged entry must not become a learner's state."""
    size = len(fitted.state_to_bytes(fitted.new_state()))
    with pytest.raises(ValueError):
        fitted.state_from_bytes(fill * size)


def test_parameters_round_trip_through_bytes_and_files(fitted: Tracer[Any], log: AnswerLog,
                                                       tmp_path: Path) -> None:
    expected = fitted.predict_log(log)
    again = tracer_from_bytes(fitted.name, fitted.to_bytes())
    np.testing.assert_array_equal(again.predict_log(log), expected)
    fitted.save(tmp_path / "saved")
    loaded = load_tracer(tmp_path / "saved")
    assert type(loaded) is type(fitted) and loaded.name == fitted.name
    np.testing.assert_array_equal(loaded.predict_log(log), expected)
    with pytest.raises(ValueError):
        type(fitted).from_bytes(b"not a model", source="test")


def test_options_make_an_unfitted_twin(fitted: Tracer[Any]) -> None:
    twin = type(fitted)(**fitted.get_options())
    assert twin.get_options() == fitted.get_options() and twin.name == fitted.name
    with pytest.raises(NotFittedError):
        twin.new_state()


def test_unseen_skills_are_counted(fitted: Tracer[Any], log: AnswerLog) -> None:
    assert fitted.unseen_skills(log) == 0
    foreign = AnswerLog.from_events([AnswerEvent("z", "q", ("other",), True),
                                     AnswerEvent("z", "s0-i0", ("s0",), False)])
    assert fitted.unseen_skills(foreign) == 1
    assert np.all((fitted.predict_log(foreign) > 0) & (fitted.predict_log(foreign) < 1))
