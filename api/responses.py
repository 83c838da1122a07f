"""The shapes of the API's responses, as the service and the routes build them.

Routes return them as plain JSON (no response model): a response model would validate every
response a second time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict

#: an exercise chosen for a learner (:meth:`engine.selection.Choice.to_dict`)
Choice = dict[str, Any]


class Recorded(TypedDict):
    """The response to an answer, as the answer log stores it with the event."""

    learner_id: str
    event_id: str
    seq: int
    correct: bool
    mastery: dict[str, float]
    next: Choice | None
    reason: NotRequired[str]  # why ``next`` is None


class AnswerResponse(Recorded):
    duplicate: bool  # a retried event id: the response first given


class NextResponse(TypedDict):
    learner_id: str
    next: list[Choice]
    reason: NotRequired[str]  # why ``next`` is empty


class SkillState(TypedDict):
    skill_id: str
    name: str
    mastery: float
    answers: int
    last_answered_at: datetime | None


class StateResponse(TypedDict):
    learner_id: str
    answers: int
    created_at: datetime | None
    last_seen: datetime | None
    skills: list[SkillState]


class Event(TypedDict):
    """An answer in the log."""

    seq: int
    event_id: str
    item_id: str
    skills: list[str]
    correct: bool
    answered_at: datetime | None
    received_at: datetime | None
    response_ms: float | None


class HistoryResponse(TypedDict):
    learner_id: str
    events: list[Event]
    next_after: int | None  # the ``after`` of the next page; None on the last


class Profile(TypedDict):
    created_at: datetime | None
    last_seen: datetime | None
    answers: int


class ExportedEvent(Event):
    response: Recorded


class ExportResponse(TypedDict):
    learner_id: str
    tenant: str
    exported_at: datetime
    profile: Profile
    state: list[SkillState]
    events: list[ExportedEvent]


class StatementsResponse(TypedDict):
    ids: list[str]
    results: list[AnswerResponse]


class PackSummary(TypedDict):
    name: str
    skills: int
    items: int
    courses: int


class SkillResponse(TypedDict):
    id: str
    name: str
    requires: list[str]
    bkt: dict[str, float]
    items: list[str]


class ItemResponse(TypedDict):
    id: str
    skills: list[str]
    kind: str
    difficulty: float | None
    metadata: dict[str, Any]
