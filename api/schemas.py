"""What requests send: bodies and path ids, validated by pydantic (responses are plain JSON:
:mod:`api.responses`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    Strict,
    StrictInt,
    StringConstraints,
    model_validator,
)

from content.packs import pack_json_schema
from engine.ids import ID_PATTERN, MAX_ID_LENGTH, check_id
from engine.placement.skills import DEFAULT_CONFIDENCE

# the id rule is engine.ids's (check_id); its lengths and pattern are stated in the OpenAPI
# schema (the pattern only stated: it is the rule's own, check_id enforces it with its reasons)
_ID_SCHEMA = {"pattern": ID_PATTERN}
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH),
               AfterValidator(check_id), Field(json_schema_extra=_ID_SCHEMA)]
#: an id in a route's path
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH,
                             json_schema_extra=_ID_SCHEMA), AfterValidator(check_id)]
# ... documented (FastAPI merges the two Path()s)
LearnerId = Annotated[PathId, Path(description="The learner's id, chosen by the app (any id "
                                               "up to 128 characters; the engine stores no "
                                               "names).", examples=["learner-42"])]
ItemId = Annotated[PathId, Path(description="An item's id, from the content pack.",
                                examples=["es.greetings.01"])]
SkillId = Annotated[PathId, Path(description="A skill's id, from the content pack.",
                                 examples=["es.greetings"])]
CourseId = Annotated[PathId, Path(description="A course's id, from the content pack.",
                                  examples=["es.course.first-steps"])]
PackName = Annotated[PathId, Path(description="A content pack's name (its `name` key).",
                                  examples=["spanish-vocab-a1"])]
#: a JSON number in a body, as the document types it: pydantic's lax float also took `true` as
#: 1 and the string "0.3" as 0.3 (integers stay numbers)
Number = Annotated[float, Strict()]
Rate = Annotated[Number, Field(gt=0.0, lt=1.0)]


def _whole(value: Any) -> Any:
    """A float with no fractional part as its integer; anything else as it is."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: an integer of a JSON body (a count, a seed), read as JSON Schema reads "integer": 76.0 is 76
#: (the document says "integer", and a client's 76.0 met a 422), while a boolean, a fraction, a
#: string or an infinity stays a 422 (StrictInt: `true` is not 1). It goes last, after the
#: bounds: ``Annotated[StrictInt, Field(ge=1, le=100), WholeNumber]`` (bounds given after a
#: before-validator are still enforced, but pydantic documents them as "ge"/"le", which no
#: OpenAPI tool reads)
WholeNumber = BeforeValidator(_whole)

_FIRST_YEAR, _LAST_YEAR = 2000, 2099  # of a time a request gives


def _utc_moment(moment: datetime) -> datetime:
    """In UTC (a time without zone is taken as UTC), of a year 2000-2099 as written: the log
    stores UTC, and a date outside that range is a client bug, not an answer. (The year as
    written, not in UTC, is what the OpenAPI pattern can state.)"""
    if not _FIRST_YEAR <= moment.year <= _LAST_YEAR:
        raise ValueError("must be between 2000-01-01 and 2099-12-31")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


Moment = Annotated[datetime, AfterValidator(_utc_moment),
                   Field(json_schema_extra={"pattern": "^20[0-9]{2}-"})]
MAX_RESPONSE_MS = 86_400_000  # a day: a longer "response time" is a clock or client bug


class AnswerIn(BaseModel):
    """One answer of a learner to an item."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "item_id": "add-10-3", "correct": True,
        "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "answered_at": "2026-11-23T09:30:00Z", "response_ms": 5400}]})

    item_id: Id = Field(description="The item answered: an item id of the tenant's content "
                                    "(e.g. the `item` of the previous `next`).")
    correct: bool = Field(strict=True, description="Whether the answer was right (the app "
                                                   "judges it, e.g. against the item's "
                                                   "`answer`).")
    event_id: UUID = Field(description="Idempotency key: a retry with the same id counts once "
                                       "and gets the same response.")
    answered_at: Moment | None = Field(None, description="When the learner answered "
                                                           "(default: when received).")
    response_ms: Number | None = Field(None, ge=0, le=MAX_RESPONSE_MS,
                                      description="How long the learner took, in "
                                                  "milliseconds.")
    target_success: Rate | None = Field(None, description="Override the tenant's target "
                                                          "success rate for the next item.")
    course: Id | None = Field(None, description=(
        "The course the learner is working in: it becomes the learner's current course, "
        "and `next` is chosen in it, now and for every later answer and `GET /next` until "
        "another course is given. Omitted: the learner's current course (none: the whole "
        "content)."), examples=["es.course.first-steps"])


class XapiAccount(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Id
    homePage: str | None = None


class XapiActor(BaseModel):
    model_config = ConfigDict(extra="allow")
    account: XapiAccount


#: the one xAPI verb taken (api.xapi refuses others with its own code, unsupported_verb)
XAPI_ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
#: an xAPI ``result.duration`` as read: ISO 8601 hours, minutes and seconds (api.xapi)
XAPI_DURATION_PATTERN = r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$"


class XapiVerb(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(json_schema_extra={"const": XAPI_ANSWERED},
                    description="Only `answered` statements are taken (another verb: 422 "
                                "`unsupported_verb`).")


class XapiObject(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class XapiResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: bool = Field(strict=True)
    duration: Annotated[str, Field(json_schema_extra={"pattern": XAPI_DURATION_PATTERN})] | None \
        = Field(None, description="How long the answer took, e.g. `PT5.4S` (at most a day).")


class XapiStatement(BaseModel):
    """The parts of an xAPI statement the engine reads; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "actor": {"account": {"homePage": "https://app.example", "name": "learner-42"}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
        "object": {"id": "https://app.example/items/add-10-3"},
        "result": {"success": True, "duration": "PT5.4S"},
        "timestamp": "2026-11-23T09:30:00Z"}]})

    id: UUID
    actor: XapiActor
    verb: XapiVerb
    object: XapiObject
    result: XapiResult
    timestamp: Moment | None = None


#: a list of statements: at least one (its size is bounded by the body's)
Statements = Annotated[list[XapiStatement], Field(min_length=1)]


def _pack_schema(schema: dict[str, Any]) -> None:
    """PackIn's OpenAPI schema is the content loader's own (:func:`pack_json_schema`, made from
    its checkers), not one derived from PackIn's few fields."""
    schema.clear()
    schema.update(pack_json_schema())


class PackIn(BaseModel):
    """A content pack document (see content/packs/README.md); validated by the content loader.

    The fields are what a route reads before the loader runs; the loader gets the body itself
    (:meth:`document`), and its rules are what the OpenAPI document states."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_pack_schema)
    format: Literal["tutor-content-pack"] = Field(description="Always `tutor-content-pack`.")
    version: Literal[1] = Field(description="The pack format's version: 1.")
    name: Id
    _sent: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_sent(cls, data: Any, handler: ModelWrapValidatorHandler[PackIn]) -> PackIn:
        pack = handler(data)
        if isinstance(data, dict):
            pack._sent = data
        return pack

    def document(self) -> dict[str, Any]:
        """The body exactly as sent: the fields' lax reading (``"version": true`` is 1 to
        pydantic) must not decide what the loader sees."""
        return self._sent


class PlacementIn(BaseModel):
    """A placement test to start (api.placement): where, and when it ends."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "course": "math.course.whole-numbers", "method": "skills", "max_length": 20,
        "confidence": DEFAULT_CONFIDENCE}]})

    course: Id | None = Field(None, description=(
        "The course to place the learner in: its items with IRT parameters (`difficulty`) are "
        "the test's; it becomes the learner's current course. Omitted: the learner's current "
        "course (none: the whole content)."))
    method: Literal["skills", "theta"] = Field("skills", description=(
        "`skills`: a test over the course's skills on its prerequisite graph; its result is "
        "each skill's probability of being known. `theta`: one ability over the course, "
        "mapped to the skills its items practise."))
    max_length: Annotated[StrictInt, Field(ge=1, le=100), WholeNumber] = Field(
        20, description="The test ends after this many items.")
    se_target: Number | None = Field(None, gt=0, le=2, description=(
        "The test ends earlier, after at least 3 items, once the ability estimate's standard "
        "error is at most this (null: not on the ability's precision)."))
    confidence: Number | None = Field(DEFAULT_CONFIDENCE, gt=0.5, lt=1, description=(
        "`skills` tests: the test ends earlier, after at least 3 items, once every skill's "
        "probability of being known is at least this or at most 1 minus it (null: not on the "
        "skills' classification). A `theta` test has none: give null or leave it out."))

    @model_validator(mode="after")
    def _theta_has_no_confidence(self) -> PlacementIn:
        """A θ test classifies no skill: the default confidence is not its, a given one an
        error (not silently dropped)."""
        if self.method == "theta":
            if self.confidence is not None and "confidence" in self.model_fields_set:
                raise ValueError("confidence is the stop of a `skills` test: a `theta` test "
                                 "has none (give null, or leave it out)")
            self.confidence = None
        return self
