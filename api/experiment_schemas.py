"""What the experiment routes take (pydantic) and return (documented shapes, like
:mod:`api.responses`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from typing_extensions import TypedDict

from api.experiments import DEFAULT_POLICY
from api.schemas import Id, Moment
from api.service import RECENT
from engine.selection.registry import POLICIES

_POLICY_NAMES = ", ".join(f"`{name}`" for name in POLICIES)

#: the range of an arm's weight: shares as unequal as 1 to a million, and never a sum that
#: overflows or a share that rounds to 0 (issue 20: two arms of 1e308 broke every assignment)
MIN_WEIGHT, MAX_WEIGHT = 1e-3, 1e3
#: the integers a response can render (orjson: signed 64 bits; issue 20: a 100-bit seed was
#: stored, then no listing could render it)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: an option's numbers lie within +-2**53: integers that every JSON client holds exactly
#: (JavaScript's safe integers), well within 64 bits. One bound for integers and floats, and
#: exact in both: JSON Schema counts 1e16 as an integer, Python reads it as a float, and the
#: document must refuse what the server refuses either way
OPTION_NUMBER_BOUND = 2**53
MAX_OPTIONS = 16


def _bounded_integer(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Refuse a wider integer before the union below could read it as a float (a 30-digit
    seed as 1e30, 2**53 + 1 as 2**53, silently)."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and not -OPTION_NUMBER_BOUND <= value <= OPTION_NUMBER_BOUND:
        raise ValueError(f"an option's integer must be within +-2**53 "
                         f"({OPTION_NUMBER_BOUND}), got {value}")
    return handler(value)


#: an option's value: a boolean or a bounded number (what policies take)
OptionValue = Annotated[
    StrictBool
    | Annotated[StrictInt, Field(ge=-OPTION_NUMBER_BOUND, le=OPTION_NUMBER_BOUND)]
    | Annotated[StrictFloat, Field(ge=-OPTION_NUMBER_BOUND, le=OPTION_NUMBER_BOUND,
                                   allow_inf_nan=False)],
    Field(union_mode="left_to_right"), WrapValidator(_bounded_integer)]
OptionName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class ArmIn(BaseModel):
    """One arm: a policy configuration and its share of the learners."""

    model_config = ConfigDict(extra="forbid")

    name: Id = Field(description="The arm's name, unique in the experiment.")
    weight: float = Field(1.0, ge=MIN_WEIGHT, le=MAX_WEIGHT, allow_inf_nan=False, strict=True,
                          description=f"Allocation weight, {MIN_WEIGHT:g} to {MAX_WEIGHT:g}: the "
                                      "arm gets weight / (sum of the weights) of the learners.")
    policy: str = Field(DEFAULT_POLICY, max_length=64, json_schema_extra={
        "enum": list(POLICIES)}, description=f"The policy choosing exercises: {_POLICY_NAMES}.")
    options: dict[OptionName, OptionValue] = Field(
        default_factory=dict, max_length=MAX_OPTIONS,
        json_schema_extra={"additionalProperties": False}, description=(
            "The policy's options (its keyword arguments, at most "
            f"{MAX_OPTIONS}), e.g. `{{\"target_success\": 0.7}}` for `target-success` (an arm's "
            "target overrides the tenant's and requests'). Values are booleans or numbers "
            "within +-2**53 (9007199254740992, integers every JSON client holds exactly); "
            "an option the policy does not take, or a value it refuses, is a 422 "
            f"(`fixed-curriculum`'s `streak` is at most {RECENT}: the answers the service "
            "remembers per learner)."))


class ExperimentIn(BaseModel):
    """An experiment: its arms, and when it runs. Fixed once created (a new split is a new
    experiment); only its stop can be brought forward."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "target-0.7-vs-0.8",
        "arms": [{"name": "control", "options": {"target_success": 0.75}},
                 {"name": "low", "options": {"target_success": 0.7}},
                 {"name": "high", "options": {"target_success": 0.8}}],
        "starts_at": "2026-12-01T00:00:00Z", "stops_at": "2027-01-01T00:00:00Z"}]})

    name: Id = Field(description="The experiment's name, unique for the tenant (it also "
                                 "seeds the assignment hash).")
    arms: list[ArmIn] = Field(min_length=2, max_length=20,
                              description="The arms, with names unique in the experiment (a "
                                          "name given twice is a 422); the first is the "
                                          "control that the others are compared with.")
    starts_at: Moment | None = Field(None, description="When it starts (default: now).")
    stops_at: Moment | None = Field(None, description="When it stops (default: when stopped "
                                                      "by `POST .../stop`).")
    require_consent: bool = Field(False, description="Enrol only learners whose `experiments` "
                                                     "consent is true (default: all but "
                                                     "those who refused).")

    @field_validator("arms")
    @classmethod
    def _names_unique(cls, arms: list[ArmIn]) -> list[ArmIn]:
        """An arm is found by its name (assignments store it): two of one name are refused
        here, at the boundary, as a 422."""
        seen: set[str] = set()
        for arm in arms:
            if arm.name in seen:
                raise ValueError(f"arm {arm.name!r} is named twice")
            seen.add(arm.name)
        return arms


class ConsentIn(BaseModel):
    """A learner's choices."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "personalization": False, "experiments": False}]})

    personalization: bool = Field(strict=True, description=(
        "false: opt out of personalization: the learner gets the fixed curriculum (course "
        "order, a skill passed after 3 correct answers in a row) and is never enrolled in an "
        "experiment."))
    experiments: bool | None = Field(None, strict=True, description=(
        "Whether the learner takes part in experiments: false is never enrolled; null: not "
        "asked (enrolled unless an experiment requires consent)."))


class ArmOut(TypedDict):
    name: str
    weight: float
    policy: str
    options: dict[str, Any]


class ExperimentResponse(TypedDict):
    """An experiment's definition and status."""

    name: str
    arms: list[ArmOut]
    require_consent: bool
    starts_at: datetime
    stops_at: datetime | None
    created_at: datetime
    status: Literal["scheduled", "running", "stopped"]


class ExperimentsResponse(TypedDict):
    """The tenant's experiments, oldest first."""

    experiments: list[ExperimentResponse]


class Estimate(TypedDict):
    """A mean over learners, with its always-valid interval (null bounds: no interval yet,
    fewer than two values or no spread)."""

    mean: float | None
    n: Annotated[int, Field(description="Learners it is over.")]
    ci: Annotated[list[float | None], Field(description="[low, high], valid at every look.")]


class Difference(TypedDict):
    """An arm's mean minus the control's, with its always-valid interval and p-value."""

    estimate: float | None
    ci: list[float | None]
    p_value: Annotated[float, Field(description="Always-valid p-value of no difference.")]
    significant: Annotated[bool, Field(description="The interval excludes 0.")]


class ArmResults(TypedDict):
    """One arm: its learners and answers, and per-learner metrics."""

    arm: str
    policy: str
    weight: float
    learners: Annotated[int, Field(description="Learners assigned.")]
    active: Annotated[int, Field(description="Learners with an answer served by the arm.")]
    answers: Annotated[int, Field(description="Answers served by the arm.")]
    metrics: dict[str, Estimate]


class SrmResult(TypedDict):
    """Sample-ratio-mismatch check: chi-square of the learners per arm against the weights
    (`mismatch` when p < 0.001: the comparison is not to be trusted)."""

    counts: list[int]
    expected: list[float]
    chi2: float
    p_value: float
    mismatch: bool


class ResultsResponse(TypedDict):
    """An experiment's results per arm, replayed from the answer log, with intervals that stay
    valid however often they are looked at, and the sample-ratio-mismatch check."""

    experiment: str
    status: Literal["scheduled", "running", "stopped"]
    computed_at: datetime
    alpha: float
    control: str
    metrics: Annotated[dict[str, str], Field(description="What each metric measures.")]
    arms: list[ArmResults]
    differences: Annotated[dict[str, dict[str, Difference]], Field(
        description="Per arm other than the control, per metric: arm minus control.")]
    srm: SrmResult
