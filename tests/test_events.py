"""AnswerEvent validation and JSON shape; AnswerLog round trips, subsets, ordering, CSR checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest

from engine.events import AnswerEvent, AnswerLog

T0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _ev(learner: str, item: str, skills: tuple[str, ...] = ("s",), correct: bool = True,
        **kw: object) -> AnswerEvent:
    return AnswerEvent(learner=learner, item=item, skills=skills, correct=correct, **kw)


EVENTS = [
    _ev("u1", "i1", ("a",), True, timestamp=T0, response_ms=1520.5, attempt=1, hints=0,
        session="sess-1", event_id="e1"),
    _ev("u2", "i2", ("a", "b"), False, timestamp=T0 + timedelta(seconds=5)),
    _ev("u1", "i3", ("b",), False, timestamp=datetime(2024, 3, 1, 14, 0, tzinfo=timezone(
        timedelta(hours=2))), attempt=0, hints=3),
    _ev("u3", "i1", ("c", "a", "b"), True),
    _ev("u2", "i2", ("a", "b"), True, response_ms=0.0, event_id="e5"),
]


# ---------------------------------------------------------------------------------- AnswerEvent
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learner": ""}, "learner must be a non-empty string"),
        ({"item": ""}, "item must be a non-empty string"),
        ({"skills": ()}, "needs at least one skill id"),
        ({"skills": ("a", "")}, "needs at least one skill id"),
    ],
)
def test_event_rejects_empty_ids(kwargs: dict, match: str) -> None:
    fields = {"learner": "u", "item": "i", "skills": ("s",), "correct": True} | kwargs
    with pytest.raises(ValueError, match=match):
        AnswerEvent(**fields)


def test_event_normalises_skills_and_naive_timestamp() -> None:
    e = AnswerEvent("u", "i", ["a", "b"], True, timestamp=datetime(2024, 1, 2, 3, 4, 5))  # type: ignore[arg-type]
    assert e.skills == ("a", "b")
    assert e.timestamp == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert e.timestamp.tzinfo is UTC


@pytest.mark.parametrize("event", EVENTS)
def test_event_dict_json_round_trip(event: AnswerEvent) -> None:
    data = json.loads(json.dumps(event.to_dict()))
    back = AnswerEvent.from_dict(data)
    assert back == event
    if event.timestamp is not None:  # same instant and same UTC offset, not just equal instants
        assert back.timestamp is not None
        assert back.timestamp.utcoffset() == event.timestamp.utcoffset()


def test_event_to_dict_shape_and_timezones() -> None:
    aware = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    d = _ev("u", "i", ("a", "b"), False, timestamp=aware).to_dict()
    assert d["timestamp"] == "2024-03-01T14:00:00+02:00"
    assert d["skills"] == ["a", "b"]
    assert d["correct"] is False
    assert _ev("u", "i", timestamp=datetime(2024, 3, 1)).to_dict()["timestamp"] == \
        "2024-03-01T00:00:00+00:00"
    # an ISO string without offset is read as UTC
    back = AnswerEvent.from_dict({"learner": "u", "item": "i", "skills": ["a"], "correct": 1,
                                  "timestamp": "2024-03-01T12:00:00"})
    assert back.timestamp == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert back.correct is True
    assert back.response_ms is None and back.attempt is None and back.session is None


# ---------------------------------------------------------------------------------- AnswerLog
def test_log_from_events_round_trip() -> None:
    log = AnswerLog.from_events(EVENTS)
    assert len(log) == len(EVENTS)
    back = list(log.events())
    assert back == EVENTS
    for a, b in zip(back, EVENTS, strict=True):
        assert a.skills == b.skills  # order of a row's skills is kept
        assert (a.timestamp is None) == (b.timestamp is None)
        if a.timestamp is not None:
            assert a.timestamp.tzinfo is not None
    assert list(log) == EVENTS
    assert log[-1] == EVENTS[-1]
    assert list(log.learner_ids) == ["u1", "u2", "u3"]  # order of first appearance
    assert list(log.skill_ids) == ["a", "b", "c"]
    assert log.n_learners == 3
    assert log.skills_of(3) == ("c", "a", "b")


def test_log_timestamps_round_trip_at_microsecond_precision() -> None:
    rng = np.random.default_rng(0)
    base = datetime(1950, 1, 1, tzinfo=UTC)
    stamps = [base + timedelta(microseconds=int(x))
              for x in rng.integers(0, 150 * 365 * 86_400 * 10**6, 500)]
    events = [_ev("u", "i", timestamp=t) for t in stamps]
    assert [e.timestamp for e in AnswerLog.from_events(events).events()] == stamps


def test_empty_log() -> None:
    log = AnswerLog.from_events([])
    assert len(log) == 0
    assert list(log.events()) == []
    assert len(log.in_learner_order()) == 0


def test_log_index_out_of_range() -> None:
    log = AnswerLog.from_events(EVENTS)
    with pytest.raises(IndexError):
        log[len(EVENTS)]
    with pytest.raises(IndexError):
        log[-len(EVENTS) - 1]


def test_from_columns_rejects_non_binary_outcomes() -> None:
    with pytest.raises(ValueError, match="correct must be 0/1 or boolean; row 1 has"):
        AnswerLog.from_columns(["u", "u"], ["i", "i"], ["s", "s"], [1, 2])


def test_take_with_indices_and_mask() -> None:
    log = AnswerLog.from_events(EVENTS)
    sub = log.take(np.array([4, 1, 3]))
    assert list(sub.events()) == [EVENTS[4], EVENTS[1], EVENTS[3]]
    assert sub.skill_ids is log.skill_ids and sub.learner_ids is log.learner_ids
    mask = np.array([True, False, True, True, False])
    assert list(log.take(mask).events()) == [EVENTS[0], EVENTS[2], EVENTS[3]]
    assert len(log.take(np.array([], dtype=np.int64))) == 0


def test_select_learners_keeps_log_order() -> None:
    log = AnswerLog.from_events(EVENTS)
    codes = np.array([list(log.learner_ids).index("u2"), list(log.learner_ids).index("u3")])
    assert list(log.select_learners(codes).events()) == [EVENTS[1], EVENTS[3], EVENTS[4]]


def test_in_learner_order_by_timestamp_when_all_rows_have_one() -> None:
    t = [T0 + timedelta(minutes=m) for m in (5, 1, 3, 0, 3, 2)]
    learners = ["b", "a", "b", "a", "b", "c"]
    events = [_ev(u, f"i{n}", timestamp=ts) for n, (u, ts) in enumerate(zip(learners, t,
                                                                            strict=True))]
    ordered = list(AnswerLog.from_events(events).in_learner_order().events())
    # learners in order of first appearance (b, a, c); by time within each; the tie at minute 3
    # between i2 and i4 keeps file order
    assert [e.item for e in ordered] == ["i2", "i4", "i0", "i3", "i1", "i5"]


def test_in_learner_order_keeps_file_order_without_complete_timestamps() -> None:
    learners = ["b", "a", "b", "a", "b"]
    events = [_ev(u, f"i{n}", timestamp=T0 - timedelta(minutes=n) if n != 2 else None)
              for n, u in enumerate(learners)]
    ordered = list(AnswerLog.from_events(events).in_learner_order().events())
    assert [e.item for e in ordered] == ["i0", "i2", "i4", "i1", "i3"]


def test_in_learner_order_returns_self_when_already_ordered() -> None:
    log = AnswerLog.from_events([_ev("a", "i1"), _ev("a", "i2"), _ev("b", "i3")])
    assert log.in_learner_order() is log


def _csr(**overrides: object) -> AnswerLog:
    cols: dict[str, object] = {
        "learner_ids": np.array(["u"], dtype=object), "item_ids": np.array(["i"], dtype=object),
        "skill_ids": np.array(["a", "b"], dtype=object),
        "learner": np.zeros(2, np.int32), "item": np.zeros(2, np.int32),
        "correct": np.array([1, 0], np.int8),
        "skill_ptr": np.array([0, 1, 3], np.int64), "skill_codes": np.array([0, 0, 1], np.int32),
    }
    return AnswerLog(**(cols | overrides))  # type: ignore[arg-type]


def test_valid_csr_accepted() -> None:
    log = _csr()
    assert log.skills_of(0) == ("a",) and log.skills_of(1) == ("a", "b")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"skill_ptr": np.array([0, 1], np.int64)}, "n\\+1 offsets"),
        ({"skill_ptr": np.array([0, 1, 2], np.int64)}, "ending at len\\(skill_codes\\)"),
        ({"skill_ptr": np.array([0, 0, 3], np.int64)}, "at least one skill"),
        ({"learner": np.zeros(3, np.int32)}, "column 'learner' has 3 rows, expected 2"),
        ({"timestamp_ns": np.zeros(1, np.int64)}, "column 'timestamp_ns' has 1 rows"),
    ],
)
def test_bad_csr_rejected(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _csr(**overrides)
