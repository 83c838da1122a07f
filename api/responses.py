"""The shapes of the API's responses, as the service and the routes build them.

Routes return them as plain JSON (no response model): a response model would validate every
response a second time. The OpenAPI document describes them all the same: each route names
its shape in ``responses=`` (:func:`api.openapi.documented`), which FastAPI only documents.
(``typing_extensions.TypedDict``: pydantic reads ``typing.TypedDict`` only from Python 3.12.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field
from typing_extensions import TypedDict

from engine.placement.skills import DEFAULT_CONFIDENCE


class ItemContent(TypedDict):
    """What an app shows of an item: its content from the pack (content/packs/README.md)."""

    kind: Annotated[str, Field(description="The pack's kind of item (default `exercise`), "
                                           "e.g. `multiple-choice`, `translate`.")]
    prompt: Annotated[str | None, Field(description="The question, as the pack words it "
                                                    "(null: the pack gives none).")]
    answer: Annotated[str | list[str] | None, Field(
        description="The accepted answer, or the accepted answers, preferred first (null: "
                    "the pack gives none). The app judges the learner's answer and sends "
                    "`correct`.")]
    metadata: Annotated[dict[str, Any], Field(
        description="The item's other metadata from the pack, e.g. `choices` of a "
                    "multiple-choice item.")]


class Exercise(ItemContent):
    """An exercise chosen for a learner: the item, its content, its skills, the predicted
    success and why it was chosen. The same shape in the answer response and in ``/next``."""

    item: Annotated[str, Field(description="The item's id: the `item_id` of the answer to it.")]
    skills: Annotated[list[str], Field(description="The skills the item practises.")]
    p_correct: Annotated[float, Field(ge=0, le=1, description="The predicted probability that "
                                                              "the learner answers it right.")]
    reason: Annotated[str, Field(description="Why it was chosen, in words.")]
    outside_course: NotRequired[Annotated[bool, Field(description=(
        "Present, true, when the item practises a prerequisite that the learner's course does "
        "not teach: the course's own skills are all locked behind such prerequisites, not yet "
        "learned, so they come first."))]]


#: what ``complete`` says, in the answer response and in ``/next``
_COMPLETE = (
    "Whether the learner's course (else the whole content) is complete: every skill learned and "
    "no review due. Then `next` is empty (null in an answer's response) and `reason` says when "
    "the next review falls due; reviews that fall due are offered again, the most forgotten "
    "first. Always false for a learner who opted out of personalization (the fixed curriculum "
    "starts the course over) and while a placement test runs; absent from responses recorded "
    "before it existed (a retried answer gets its response as first given).")

#: the former name of :class:`Exercise`
Choice = Exercise


class Recorded(TypedDict):
    """The response to an answer, as the answer log stores it with the event."""

    learner_id: str
    event_id: str
    seq: int
    correct: bool
    mastery: dict[str, float]
    course: str | None  # the learner's current course, which ``next`` was chosen in
    next: Exercise | None
    reason: NotRequired[str]  # why ``next`` is None
    complete: NotRequired[Annotated[bool, Field(description=_COMPLETE)]]


class AnswerResponse(Recorded):
    """The response to an answer: the mastery of the item's skills after it, and the next
    exercise, chosen in the learner's current course (``reason`` says why there is none)."""

    duplicate: bool  # a retried event id: the response first given


class NextResponse(TypedDict):
    """The next exercises for a learner, best first, chosen in the learner's current course
    (``reason`` says why there are none)."""

    learner_id: str
    course: str | None  # the learner's current course, which ``next`` was chosen in
    next: list[Exercise]
    reason: NotRequired[str]  # why ``next`` is empty
    complete: NotRequired[Annotated[bool, Field(description=_COMPLETE)]]


class SkillState(TypedDict):
    skill_id: str
    name: str
    mastery: float
    answers: int
    last_answered_at: datetime | None


class StateResponse(TypedDict):
    """A learner's mastery of every skill, with answer counts and times."""

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
    """A learner's answers in order, a page at a time."""

    learner_id: str
    events: list[Event]
    next_after: int | None  # the ``after`` of the next page; None on the last


class Profile(TypedDict):
    created_at: datetime | None
    last_seen: datetime | None
    answers: int


class ExportedEvent(Event):
    response: Annotated[dict[str, Any], Field(
        description="The response given to the answer, as it was given (the answer "
                    "response's shape at the time, without `duplicate`).")]
    policy: Annotated[str | None, Field(description="The policy that chose the response's "
                                                    "`next` (null: answers before 0006).")]
    experiment: Annotated[str | None, Field(description="The experiment whose arm chose it "
                                                        "(null: none).")]
    arm: str | None


class Consent(TypedDict):
    """A learner's choices: personalization (false: opted out, served the fixed curriculum and
    never enrolled in experiments) and taking part in experiments (null: not asked)."""

    learner_id: str
    personalization: bool
    experiments: bool | None
    updated_at: Annotated[datetime | None, Field(description="When they were last set (null: "
                                                             "never; the defaults apply).")]


class Assignment(TypedDict):
    """A learner's arm in an experiment, from the first exercise served while it ran."""

    experiment: str
    arm: str
    assigned_at: datetime


class PlacementSkill(TypedDict):
    """One skill's estimate in a per-skill placement test."""

    skill: str
    p_known: Annotated[float, Field(ge=0, le=1, description=(
        "The probability that the learner knows the skill, from the answers and the "
        "prerequisite graph (a right answer is evidence for what the item's skills require; "
        "a wrong one against what builds on them). Its distance from 0 and 1 is the "
        "uncertainty: once the test has ended it is the skill's starting mastery (kept "
        "within [0.01, 0.99])."))]
    status: Annotated[Literal["known", "not known", "uncertain"], Field(description=(
        f"`known` when `p_known` is at least the test's `confidence` ({DEFAULT_CONFIDENCE} where "
        "it has none), `not known` when at most 1 minus it, else `uncertain`."))]
    answered: Annotated[int, Field(ge=0, description=(
        "The test's answers to items practising the skill (0: all that is known of it came "
        "through the prerequisite graph)."))]


class PlacementResponse(TypedDict):
    """A learner's placement test (api.placement): while it runs, the estimates so far and the
    item to give now; once it has ended, its result, the learner's starting state."""

    learner_id: str
    course: Annotated[str | None, Field(description="The course placed in (null: the whole "
                                                    "content).")]
    method: Annotated[Literal["skills", "theta"], Field(description=(
        "`skills`: the per-skill test (each skill's P(known) on the course's prerequisite "
        "graph); `theta`: one ability, mapped to the skills the items practise."))]
    status: Annotated[Literal["running", "finished", "stopped", "abandoned"], Field(
        description="`running`, `finished` (its stopping rule ended it), `stopped` (stopped "
                    "early) or `abandoned` (it could no longer run: its course or items left "
                    "the content, or the learner opted out of personalization; no result, "
                    "`reason` says why).")]
    theta: Annotated[float | None, Field(
        description="The ability estimate (EAP over the test's answers, whatever the method; "
                    "before any answer, the prior's mean; null: the test was stopped before "
                    "any answer).")]
    se: Annotated[float | None, Field(ge=0, description="The ability estimate's standard "
                                                        "error (null as `theta`).")]
    items_used: Annotated[int, Field(ge=0, description="Items answered in the test.")]
    items: Annotated[list[str], Field(description="The ids of the items answered, in order.")]
    max_length: Annotated[int, Field(description="The test ends after this many items.")]
    se_target: Annotated[float | None, Field(
        description="The test ends once the standard error is at most this (null: not on "
                    "the ability's precision).")]
    confidence: Annotated[float | None, Field(description=(
        "`skills` tests: the test ends once every skill's `p_known` is at least this or at "
        "most 1 minus it (null: not on the skills' classification; always null for `theta`)."
    ))]
    skills: Annotated[list[PlacementSkill] | None, Field(description=(
        "`skills` tests: every skill of the course, prerequisites first, with its estimate: "
        "so far while running, the result once ended (null for `theta` tests, and for a test "
        "stopped before any answer or abandoned: no result)."))]
    mastery: Annotated[dict[str, float] | None, Field(
        description="Once ended: each skill's starting P(mastered), the state the learner's "
                    "practice starts from (every skill of the course for a `skills` test, "
                    "the skills its items practise for a `theta` test; null while running, "
                    "and for a test stopped before any answer: the learner starts from the "
                    "prior).")]
    next: Annotated[Exercise | None, Field(
        description="While running: the item to give now (answer it with `POST /answers`); "
                    "null once ended.")]
    reason: Annotated[str | None, Field(description="Why an `abandoned` test was ended "
                                                    "(null otherwise).")]
    started_at: datetime
    ended_at: datetime | None


class ExportResponse(TypedDict):
    """Everything held about a learner."""

    learner_id: str
    tenant: str
    exported_at: datetime
    profile: Profile
    consent: Consent
    experiments: list[Assignment]
    state: list[SkillState]
    events: list[ExportedEvent]
    placement: PlacementResponse | None  # the learner's placement test (null: none taken)


class StatementsResponse(TypedDict):
    """The statements' ids and, in the same order, each one's answer response."""

    ids: list[str]
    results: list[AnswerResponse]


class PackSummary(TypedDict):
    """A content pack imported: its name and sizes."""

    name: str
    skills: int
    items: int
    courses: int


class PackListed(PackSummary):
    title: str
    imported_at: datetime


class PacksResponse(TypedDict):
    """The tenant's content packs, by name."""

    packs: list[PackListed]


class SkillResponse(TypedDict):
    """A skill: its prerequisites (``requires``), BKT parameters and items."""

    id: str
    name: str
    description: str
    requires: list[str]
    bkt: dict[str, float]
    items: list[str]


class ItemResponse(ItemContent):
    """An item: its skills, its content and its difficulty (IRT logits; null: not given)."""

    id: str
    skills: list[str]
    difficulty: float | None


class CourseResponse(TypedDict):
    """A course: its skills, in the pack's order, and how many items it has (those whose
    skills it all lists)."""

    id: str
    name: str
    skills: list[str]
    items: int


class CoursesPage(TypedDict):
    """Courses by id, a page at a time: pass ``next_after`` as ``after`` for the next."""

    courses: list[CourseResponse]
    next_after: Annotated[str | None, Field(description="The `after` of the next page; null "
                                                        "on the last.")]


class SkillsPage(TypedDict):
    """Skills by id, a page at a time: pass ``next_after`` as ``after`` for the next."""

    skills: list[SkillResponse]
    next_after: Annotated[str | None, Field(description="The `after` of the next page; null "
                                                        "on the last.")]


class ItemsPage(TypedDict):
    """Items by id, a page at a time: pass ``next_after`` as ``after`` for the next."""

    items: list[ItemResponse]
    next_after: Annotated[str | None, Field(description="The `after` of the next page; null "
                                                        "on the last.")]


class SkillProgress(TypedDict):
    skill_id: str
    name: str
    mastery: float
    mastered: bool


class ProgressResponse(TypedDict):
    """A learner's progress in a course: skills mastered of its skills (mastery at least the
    threshold that selection uses), and ``complete`` when every one is."""

    learner_id: str
    course: Annotated[str | None, Field(description="The course (null: the whole content).")]
    mastered: int
    total: int
    complete: bool
    mastery_threshold: float
    skills: list[SkillProgress]


class DueReview(TypedDict):
    """A learned skill's review: when its predicted recall falls to the retention asked for."""

    skill_id: str
    name: str
    due_at: Annotated[datetime | None, Field(
        description="When the predicted recall reaches the retention (in the past: overdue); "
                    "null when that is more than ten years (3,650 days) after `at`: `reason` "
                    "says so.")]
    recall: Annotated[float, Field(description="Predicted recall at `at`, 0 to 1.")]
    last_practised_at: datetime
    due_now: Annotated[bool, Field(description="Recall at `at` is at or below the retention.")]
    reason: NotRequired[Annotated[str, Field(description="Why `due_at` is null (only then).")]]


class ReviewsResponse(TypedDict):
    """A learner's due and upcoming reviews, due ones first, then by due time."""

    learner_id: str
    course: Annotated[str | None, Field(description="The course (null: the whole content).")]
    at: Annotated[datetime, Field(description="The moment recall is predicted for.")]
    retention: Annotated[float, Field(description="The predicted recall at or below which a "
                                                  "skill is due.")]
    memory: Annotated[bool, Field(description="Whether the tenant's model has memory (knowledge "
                                              "that fades between practices); without it no "
                                              "review is ever due and the list is empty.")]
    reviews: list[DueReview]


class Health(TypedDict):
    """The process is up."""

    status: str  # "ok"


class Readiness(TypedDict):
    """Ready: the database answers. ``degraded`` names a dependency that does not but can be
    done without (the state store: states are then rebuilt from the log)."""

    status: str  # "ready"
    degraded: NotRequired[dict[str, str]]


class ErrorBody(TypedDict):
    code: Annotated[str, Field(description="What went wrong, for programs: `not_found`, "
                                           "`validation_error`, `conflict`, ...", examples=[
                                               "not_found"])]
    message: Annotated[str, Field(description="What went wrong, for people.")]
    details: Annotated[Any, Field(description="More about it, for some codes (e.g. each "
                                              "invalid field of a `validation_error`); null "
                                              "otherwise.")]


class ErrorResponse(TypedDict):
    """Every error, of every route, has this one shape."""

    error: ErrorBody
