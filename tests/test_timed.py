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
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from engine.events import NO_TIMESTAMP, AnswerEvent, AnswerLog
from engine.tracing import ItemIndex, make_tracer
from engine.tracing.simulate import random_params, simulate
from engine.tracing.timed import MAX_ITEMS
from engine.tracing.timed_features import (
    TIME_SCALES,
    add_answer,
    answer_times,
    decayed_counts,
    read_entry,
    recency_keys,
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
    assert len(state.item_keys) == 2 and state.total is not None
    assert model.item_entry(state, "i1") == add_answer(None, START.timestamp(), 1.0, scales)
    assert model.item_entry(state, "i3") is None


def test_answers_without_time_take_the_previous_answers_time() -> None:
    ns = np.array([10 * 10**9, NO_TIMESTAMP, NO_TIMESTAMP, 30 * 10**9, NO_TIMESTAMP],
                  dtype=np.int64)
    learner = np.array([0, 0, 1, 0, 1])
    np.testing.assert_array_equal(answer_times(learner, ns, NO_TIMESTAMP), [10, 10, 0, 30, 0])


# ================================================================== online = batch, time
@pytest.mark.parametrize("name", [*TIMED_MODELS, "every family", "2 items kept"])
def test_online_updates_reproduce_batch_predictions_in_time(name: str,
                                                            timed_log: AnswerLog) -> None:
    """Each answer predicted online at its own time (``at``), before the update, equals the
    batch prediction: gaps of minutes and of days, decaying counters and all, and items
    leaving the state's recency list (2 kept, of the 3 per skill the learners answer)."""
    if name == "2 items kept":  # the log has answers to items that left the list
        key = timed_log.learner.astype(np.int64) * len(timed_log.item_ids) + timed_log.item
        assert len(np.unique(recency_keys(timed_log.learner, timed_log.item, 2))) > len(
            np.unique(key))
    model = (make_tracer("timed", features=EVERY_FAMILY) if name == "every family"
             else make_tracer("timed", features=EVERY_FAMILY, max_items=2)
             if name == "2 items kept" else make_tracer(name)).fit(timed_log)
    batch = model.predict_log(timed_log)
    states: dict[str, Any] = {}
    online = []
    for event in timed_log.events():
        state = states.get(event.learner, model.new_state())
        online.append(model.predict_correct(state, event.item, event.skills,
                                            at=event.timestamp))
        states[event.learner] = model.update(state, event)
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-9)


# ================================================================== bounded state
def test_recency_keys_by_hand() -> None:
    """Learner 0 answers a b a c b a, learner 1 answers a (third row). With 2 items kept: the
    second a is 1 distinct item after the first (kept: same key); c is new; b comes back 2
    distinct items (a, c) after its last answer: it had left, a new key; so had a (c, b)."""
    learner = np.array([0, 0, 1, 0, 0, 0, 0])
    item = np.array([0, 1, 0, 0, 2, 1, 0])
    # keys are positions in learner order: rows 0 1 3 4 5 6 of learner 0 are 0..5, row 2 is 6
    np.testing.assert_array_equal(recency_keys(learner, item, 2), [0, 1, 6, 0, 3, 4, 5])
    np.testing.assert_array_equal(recency_keys(learner, item, 3), [0, 1, 6, 0, 3, 1, 0])


def _answers(n_items: int, start: datetime = START) -> list[AnswerEvent]:
    """One learner answering items q0, q1, ... once each, a minute apart, on one skill."""
    return [AnswerEvent("a", f"q{k}", ("s",), k % 3 > 0, start + timedelta(minutes=k))
            for k in range(n_items)]


def test_the_state_keeps_the_items_answered_most_recently() -> None:
    """With 2 items kept, answering q0 q1 q0 q2 evicts q1 (the least recently answered): q1 is
    then predicted as an item never answered (q9; both unknown to the model, so their item
    weights are alike), while q0, answered twice, keeps both answers' counters. (The model is
    fitted on answers r0 r0 r1 r1 r2 r2 ...: repeats within 2 items, so that its item counters
    have weights.)"""
    train = AnswerLog.from_events([
        AnswerEvent("b", f"r{k // 2 % 3}", ("s",), k % 3 > 0, START + timedelta(minutes=k))
        for k in range(12)])
    times = [START + timedelta(minutes=k) for k in range(4)]
    events = [AnswerEvent("a", item, ("s",), correct, t) for item, correct, t in zip(
        ["q0", "q1", "q0", "q2"], [True, False, True, False], times, strict=True)]
    at = START + timedelta(minutes=5)
    scales = [*TIME_SCALES, math.inf]
    for kept, evicted in ((2, True), (3, False)):
        model = make_tracer("timed", max_items=kept).fit(train)
        state = model.fold(events)
        assert (model.item_entry(state, "q1") is None) is evicted
        assert model.item_entry(state, "q0") == add_answer(
            add_answer(None, times[0].timestamp(), 1.0, scales), times[2].timestamp(), 1.0,
            scales)
        q0, q1, q9 = model.predict_items(
            state, ItemIndex([(i, ("s",)) for i in ("q0", "q1", "q9")]), at=at)
        assert bool(q1 == q9) is evicted and q0 != q9


def test_state_size_is_bounded() -> None:
    """A learner who answered 10,000 distinct items on one skill "s" keeps the default
    4,000: 4 bytes of magic, 9 of header, (1 time + 11 total + 8 recent + 3 ability + 11 for
    the skill + 11 x 4,000 items) floats of 8 bytes, 32,000 of item keys, 4 + 1 for the
    skill's id: 384,290 bytes; the newest 4,000 items are the ones kept, and online still
    equals batch when items on either side of that line are answered again."""
    assert MAX_ITEMS == 4000
    events = _answers(10_000)
    again = [replace(e, timestamp=START + timedelta(days=10, minutes=k))
             for k, e in enumerate(events[5_990:6_010])]
    model = make_tracer("timed").fit(AnswerLog.from_events([*events, *again]))
    state = model.fold(events)
    data = model.state_to_bytes(state)
    assert (len(data) == 4 + 9 + 8 * (1 + 11 + 8 + 3 + 11 + 11 * 4000) + 32_000 + 4 + 1
            == 384_290)
    assert model.item_entry(state, "q5999") is None
    assert model.item_entry(state, "q6000") is not None
    assert model.state_to_bytes(model.state_from_bytes(data)) == data
    online = []
    for event in again:
        online.append(model.predict_correct(state, event.item, event.skills,
                                            at=event.timestamp))
        state = model.update(state, event)
    assert len(set(np.round(online, 9))) > 1
    np.testing.assert_allclose(
        online, model.predict_log(AnswerLog.from_events([*events, *again]))[-len(again):],
        rtol=0, atol=1e-9)


def test_a_learner_under_the_bound_is_predicted_as_without_it(timed_log: AnswerLog) -> None:
    """The bound changes nothing for learners who answered no more distinct items than it:
    the same fit, the same predictions online and in batch, to the last bit."""
    most = max(len(np.unique(timed_log.item[timed_log.learner == k]))
               for k in range(timed_log.n_learners))
    bounded = make_tracer("timed", max_items=most).fit(timed_log)
    unbounded = make_tracer("timed", max_items=10**9).fit(timed_log)
    np.testing.assert_array_equal(bounded.predict_log(timed_log),
                                  unbounded.predict_log(timed_log))
    events = [e for e in timed_log.events() if e.learner == "u1"]
    items = ItemIndex([(i, (s,)) for i, s in zip(timed_log.item_ids, ["s0", "s1", "s2"] * 4,
                                                   strict=False)])
    at = START + timedelta(days=400)
    np.testing.assert_array_equal(bounded.predict_items(bounded.fold(events), items, at=at),
                                  unbounded.predict_items(unbounded.fold(events), items, at=at))


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
    ({"max_items": 0}, "max_items must be a whole number"),
    ({"max_items": True}, "max_items must be a whole number"),
    ({"max_items": 2.5}, "max_items must be a whole number"),
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
    # the first format (ids, no recency order) too: the service rebuilds it from the log
    for bad in (b"XXXX" + data[4:], data[:-3], data + b"x", b"TLR2", b"TLR1" + data[4:]):
        with pytest.raises(ValueError, match="timed-model state"):
            model.state_from_bytes(bad)
    # a state holding more items than the model keeps (another model's) is refused
    doc = json.loads(model.to_bytes())
    smaller = type(model).from_bytes(json.dumps(
        {**doc, "options": {**doc["options"], "max_items": 2}}).encode())
    assert len(state.item_keys) > 2
    with pytest.raises(ValueError, match="keeps 2 at most"):
        smaller.state_from_bytes(data)
    # repeated item keys (no state holds them)
    n_keys = len(state.item_keys)
    keys_at = data.rindex(state.item_keys.tobytes())
    twice = (data[:keys_at] + state.item_keys[:1].tobytes() * n_keys
             + data[keys_at + 8 * n_keys:])
    with pytest.raises(ValueError, match="repeated ids"):
        model.state_from_bytes(twice)
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
