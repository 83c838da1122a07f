"""The time-aware logistic models (``timed``, ``das3h``, ``best-lr``, ``pfa``): decaying practice
counts computed by hand, online = batch on timestamped logs, predictions that depend on when
they are asked, weights recovered from answers drawn from known ones, bad input, the
chronological split, and the model on a slice of assist2017-timed.

The contract every tracer keeps (state bytes, parameter files, unknown skills...) is checked for
these models by tests/test_tracer_contract.py.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from engine.events import NO_TIMESTAMP, AnswerEvent, AnswerLog
from engine.tracing import make_tracer
from engine.tracing.simulate import random_params, simulate
from engine.tracing.timed_features import (
    add_answer,
    answer_times,
    decayed_counts,
    read_entry,
    scales_with_count,
)
from training.readers import read_log, write_csv
from training.splits import ChronoSplit, train_rows
from tutor.cli import app

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUR, DAY = 3600.0, 86400.0
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TIMED_MODELS = ("timed", "das3h", "best-lr", "pfa")
EVERY_FAMILY = ["item", "skill", "pfa", "skill-counts", "skill-decay", "total-counts",
                "total-decay", "item-decay", "lags", "recent", "ability"]


def with_times(log: AnswerLog, seed: int) -> AnswerLog:
    """``log`` with timestamps in milliseconds (gaps of minutes within a session, days between
    sessions) and response times."""
    rng = np.random.default_rng(seed)
    gaps = np.round(np.where(rng.random(len(log)) < 0.8, rng.exponential(300, len(log)),
                             rng.exponential(6 * DAY, len(log))), 3)
    ns = np.zeros(len(log), dtype=np.int64)
    for learner in range(log.n_learners):
        rows = np.flatnonzero(log.learner == learner)
        ns[rows] = int(START.timestamp() * 1e9) + np.cumsum(gaps[rows] * 1e9).astype(np.int64)
    response_ms = np.round(rng.lognormal(9, 0.6, len(log)))
    response_ms[rng.random(len(log)) < 0.1] = np.nan  # some answers without a response time
    return AnswerLog(log.learner_ids, log.item_ids, log.skill_ids, log.learner, log.item,
                     log.correct, log.skill_ptr, log.skill_codes, timestamp_ns=ns,
                     response_ms=response_ms)


@pytest.fixture(scope="module")
def timed_log() -> AnswerLog:
    plain, _ = simulate(random_params(4, seed=3, items_per_skill=3), 60,
                        answers_per_skill=(3, 8), seed=5)
    return with_times(plain, seed=6)


# ================================================================== counters by hand
def test_decayed_counts_by_hand() -> None:
    """One learner-skill answered at 0 s (right), 1 h (wrong), 2 h (right); another key at 1 h.
    With a one-hour constant, the third answer sees e^-1 + e^-2 attempts and e^-2 wins (the
    first answer, two hours old, is the only right one); the plain count sees 2 and 1."""
    key = np.array([0, 0, 0, 1])
    t = np.array([0.0, HOUR, 2 * HOUR, HOUR])
    y = np.array([1, 0, 1, 1])
    attempts, wins, lag = decayed_counts(key, t, y, scales_with_count([HOUR]))
    e1, e2 = math.exp(-1), math.exp(-2)
    np.testing.assert_allclose(attempts, [[0, 0], [e1, 1], [e1 + e2, 2], [0, 0]], rtol=1e-12)
    np.testing.assert_allclose(wins, [[0, 0], [e1, 1], [e2, 1], [0, 0]], rtol=1e-12)
    np.testing.assert_array_equal(lag, [-1, HOUR, HOUR, -1])
    # the online entry holds the same numbers, read at any time
    scales = [HOUR, math.inf]
    entry = add_answer(add_answer(None, 0.0, 1.0, scales), HOUR, 0.0, scales)
    a, w, since = read_entry(entry, 2 * HOUR, scales)
    np.testing.assert_allclose(a, [e1 + e2, 2], rtol=1e-12)
    np.testing.assert_allclose(w, [e2, 1], rtol=1e-12)
    assert since == HOUR
    a, w, _ = read_entry(entry, 3 * HOUR, scales)  # an hour later, the hour counter is e^-1 of it
    np.testing.assert_allclose(a, [(e1 + e2) * e1, 2], rtol=1e-12)


def test_state_counts_practice_per_skill_and_item_in_time() -> None:
    """The model's state after two answers a day apart: the skill's day counter read a day after
    the second answer is e^-1 + e^-2 (attempts), e^-2 (wins: only the first was right)."""
    log = AnswerLog.from_events([
        AnswerEvent("a", "i1", ("s",), True, START),
        AnswerEvent("a", "i2", ("s", "t"), False, START + timedelta(days=1)),
        AnswerEvent("b", "i1", ("t",), False, START),
        AnswerEvent("b", "i2", ("t",), True, START)])
    model = make_tracer("das3h", time_scales=[DAY]).fit(log)
    state = model.fold(e for e in log.events() if e.learner == "a")
    scales = [DAY, math.inf]
    a, w, since = read_entry(state.skills["s"], START.timestamp() + 2 * DAY, scales)
    np.testing.assert_allclose(a, [math.exp(-1) + math.exp(-2), 2], rtol=1e-12)
    np.testing.assert_allclose(w, [math.exp(-2), 1], rtol=1e-12)
    assert since == DAY
    a, w, _ = read_entry(state.skills["t"], START.timestamp() + 2 * DAY, scales)
    np.testing.assert_allclose([a, w], [[math.exp(-1), 1], [0, 0]], rtol=1e-12)
    assert set(state.items) == {"i1", "i2"} and state.total is not None


def test_answers_without_time_take_the_previous_answers_time() -> None:
    ns = np.array([10 * 10**9, NO_TIMESTAMP, NO_TIMESTAMP, 30 * 10**9, NO_TIMESTAMP],
                  dtype=np.int64)
    learner = np.array([0, 0, 1, 0, 1])
    np.testing.assert_array_equal(answer_times(learner, ns, NO_TIMESTAMP), [10, 10, 0, 30, 0])


# ================================================================== online = batch, time
@pytest.mark.parametrize("name", [*TIMED_MODELS, "every family"])
def test_online_updates_reproduce_batch_predictions_in_time(name: str,
                                                            timed_log: AnswerLog) -> None:
    """Each answer predicted online at its own time (``at``), before the update, equals the
    batch prediction: gaps of minutes and of days, decaying counters and all."""
    model = (make_tracer("timed", features=EVERY_FAMILY) if name == "every family"
             else make_tracer(name)).fit(timed_log)
    batch = model.predict_log(timed_log)
    states: dict[str, Any] = {}
    online = []
    for event in timed_log.events():
        state = states.get(event.learner, model.new_state())
        online.append(model.predict_correct(state, event.item, event.skills,
                                            at=event.timestamp))
        states[event.learner] = model.update(state, event)
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-9)


def test_predictions_depend_on_when_they_are_asked(timed_log: AnswerLog) -> None:
    model = make_tracer("timed").fit(timed_log)
    events = [e for e in timed_log.events() if e.learner == "u1"]
    state = model.fold(events)
    last = events[-1].timestamp
    assert last is not None
    item, skills = events[-1].item, events[-1].skills
    now = model.predict_correct(state, item, skills)
    assert now == model.predict_correct(state, item, skills, at=last)
    later = [model.predict_correct(state, item, skills, at=last + gap)
             for gap in (timedelta(minutes=1), timedelta(days=1), timedelta(days=90))]
    assert len({round(p, 9) for p in [now, *later]}) == 4
    mastery_now = model.mastery(state, [skills[0]])[skills[0]]
    assert mastery_now != model.mastery(state, [skills[0]], at=last + timedelta(days=90))[
        skills[0]]


def test_weights_recovered_from_answers_drawn_with_known_weights() -> None:
    """Answers drawn from a DAS3H-style logistic model with a one-day counter and the plain
    count (weights known) are fitted, nearly unregularized, back to those weights."""
    rng = np.random.default_rng(11)
    truth = np.array([-0.6, 0.9, -0.5, 0.7, 0.4])  # easiness, log1p A_day, A, W_day, W
    scales = [DAY, math.inf]
    rows: list[AnswerEvent] = []
    for learner in range(500):
        entry = None
        t = START.timestamp()
        for _ in range(30):
            t += float(rng.exponential(600) if rng.random() < 0.6 else rng.exponential(4 * DAY))
            a, w, _ = read_entry(entry, t, scales)
            x = np.array([1.0, *np.log1p(a), *np.log1p(w)])
            p = 1 / (1 + math.exp(-x @ truth))
            correct = bool(rng.random() < p)
            rows.append(AnswerEvent(f"u{learner}", "i", ("s",), correct,
                                    datetime.fromtimestamp(t, tz=UTC)))
            entry = add_answer(entry, t, float(correct), scales)
    model = make_tracer("timed", features=["skill", "skill-decay"], time_scales=[DAY],
                        c=1e6).fit(AnswerLog.from_events(rows))
    params = model.params_
    assert params is not None
    # one skill: its easiness and the intercept are one parameter
    fitted = [params.intercept + params.skill_w[0, 0], *params.skill_w[0, 1:]]
    np.testing.assert_allclose(fitted, truth, atol=0.15)


# ================================================================== bad input
@pytest.mark.parametrize(("options", "message"), [
    ({"features": "dash"}, "unknown feature preset 'dash'"),
    ({"features": ["item", "tempo"]}, "unknown feature families"),
    ({"c": 0}, "c must be positive"),
    ({"time_scales": [-1.0]}, "time_scales must be positive"),
    ({"recent_rates": [1.5]}, "recent_rates must lie in"),
])
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_tracer("timed", **options)


def test_bad_logs_and_bytes_are_refused(timed_log: AnswerLog) -> None:
    with pytest.raises(ValueError, match="empty log"):
        make_tracer("timed").fit(timed_log.take(np.zeros(0, dtype=np.intp)))
    with pytest.raises(ValueError, match="every answer of the log is right"):
        make_tracer("timed").fit(timed_log.take(np.flatnonzero(timed_log.correct)))
    model = make_tracer("timed").fit(timed_log)
    state = model.fold(e for e in timed_log.events() if e.learner == "u2")
    data = model.state_to_bytes(state)
    for bad in (b"XXXX" + data[4:], data[:-3], data + b"x", b"TLR1"):
        with pytest.raises(ValueError, match="timed-model state"):
            model.state_from_bytes(bad)
    doc = json.loads(model.to_bytes())
    with pytest.raises(ValueError, match="version 2"):
        type(model).from_bytes(json.dumps({**doc, "version": 2}).encode())
    with pytest.raises(ValueError, match="do not match"):
        type(model).from_bytes(json.dumps({**doc, "item_w": [0.0]}).encode())


# ================================================================== chronological split
def test_chronological_split_within_each_learner() -> None:
    learner = np.array([0, 1, 0, 0, 1, 0, 2])  # learner 0: 4 answers, 1: 2, 2: 1
    np.testing.assert_array_equal(train_rows(ChronoSplit(0.7), learner),
                                  [True, True, True, False, False, False, False])


def test_replay_timed_with_folds_and_chrono_split(timed_log: AnswerLog, tmp_path: Path) -> None:
    path = tmp_path / "timed.csv"
    write_csv(timed_log, path)
    runner = CliRunner()
    for extra in (["--folds", "3"], ["--split", "chrono:0.7"]):
        result = runner.invoke(app, ["replay", "--format", "csv", "--train", str(path),
                                     "--model", "timed", "--json", *extra])
        assert result.exit_code == 0, result.output
        out = json.loads(result.stdout)
        assert out["model"] == "timed" and 0.6 < out["auc"] < 1.0
    assert out["split"] == "chrono:0.7"
    assert out["n_test"] == int(np.sum(~train_rows(ChronoSplit(0.7), timed_log.learner)))
    bad = runner.invoke(app, ["replay", "--format", "csv", "--train", str(path), "--split",
                              "chrono:0.7", "--folds", "3"])
    assert bad.exit_code == 2 and "--split splits one log within each learner" in bad.stderr


# ================================================================== real data
@pytest.mark.shared_data
def test_timed_on_a_slice_of_assist2017_timed() -> None:
    """On 150 learners of assist2017-timed, fitted on 100 and scored on the other 50, the model
    predicts well above chance and its online side agrees with its batch side."""
    path = SHARED / "assist2017-timed" / "assist2017_timed.csv"
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (../shared/data: see its README)")
    log = read_log(path, "csv")
    train = log.select_learners(np.arange(100))
    test = log.select_learners(np.arange(100, 150))
    model = make_tracer("timed").fit(train)
    p = model.predict_log(test)
    assert roc_auc_score(test.correct, p) > 0.7
    first = test.take(test.learner == test.learner[0])
    state = model.new_state()
    online = []
    for event in first.events():
        online.append(model.predict_correct(state, event.item, event.skills,
                                            at=event.timestamp))
        state = model.update(state, event)
    np.testing.assert_allclose(online, model.predict_log(first), rtol=0, atol=1e-9)
