"""What the experiment routes take (pydantic) and return (documented shapes, like
:mod:`api.responses`)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    Tag,
    create_model,
    field_validator,
)
from typing_extensions import TypedDict

from api.schemas import Id, Moment, WholeNumber
from api.service import RECENT
from engine.selection.options import Option
from engine.selection.registry import DEFAULT_POLICY, POLICIES, PolicySpec

#: the range of an arm's weight: shares as unequal as 1 to a million, and never a sum that
#: overflows or a share that rounds to 0 (issue 20: two arms of 1e308 broke every assignment)
MIN_WEIGHT, MAX_WEIGHT = 1e-3, 1e3
#: the integers a response can render (orjson: signed 64 bits; issue 20: a 100-bit seed was
#: stored, then no listing could render it)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: an option that its policy leaves unbounded (a seed, a count) lies within +-2**53 here:
#: integers that every JSON client holds exactly (JavaScript's safe integers), well within 64
#: bits, and one bound exact for integers and floats alike
OPTION_NUMBER_BOUND = 2**53
#: narrower maxima the service sets: a fixed curriculum's streak is read from the last RECENT
#: outcomes the service keeps per learner (a longer one never passed a skill)
_SERVICE_MAXIMUM = {"streak": RECENT}


def _option_type(option: Option) -> Any:
    """The pydantic type of one declared option: its kind and range as the policy checks
    them, bounded by +-2**53 where the policy sets no bound, and by the service's maxima."""
    low = -OPTION_NUMBER_BOUND if option.minimum is None else option.minimum
    high = min(OPTION_NUMBER_BOUND if option.maximum is None else option.maximum,
               _SERVICE_MAXIMUM.get(option.name, OPTION_NUMBER_BOUND))
    bounds: dict[str, Any] = {
        "gt" if option.exclusive_minimum and option.minimum is not None else "ge": low,
        "lt" if option.exclusive_maximum and high == option.maximum else "le": high}
    if option.integer:
        whole: dict[str, Any] = {key: int(value) for key, value in bounds.items()}
        return Annotated[StrictInt, Field(**whole), WholeNumber]
    return Annotated[StrictFloat, Field(allow_inf_nan=False, **bounds)]


def _title(policy: str) -> str:
    return "".join(word.capitalize() for word in policy.split("-"))


class _Arm(BaseModel):
    """One arm: a policy configuration and its share of the learners."""

    model_config = ConfigDict(extra="forbid")

    name: Id = Field(description="The arm's name, unique in the experiment.")
    weight: float = Field(1.0, ge=MIN_WEIGHT, le=MAX_WEIGHT, allow_inf_nan=False, strict=True,
                          description=f"Allocation weight, {MIN_WEIGHT:g} to {MAX_WEIGHT:g}: the "
                                      "arm gets weight / (sum of the weights) of the learners.")
    # each policy's arm states these two exactly (:func:`_arm_model`)
    policy: str
    options: BaseModel


@functools.cache
def options_model(policy: str) -> type[BaseModel]:
    """Exactly the declared options of the registry's ``policy`` (any other is a 422), each of
    its kind and in its range: one model per policy, which arms and a tenant's defaults
    (:mod:`api.defaults_schemas`) share, so the document states what the policy's constructor
    checks."""
    spec = POLICIES[policy]
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        f"{_title(policy)}Options", __config__=ConfigDict(extra="forbid"),
        __doc__=f"The options of `{policy}` (its keyword arguments; omitted: the default).",
        **{o.name: (_option_type(o), spec.default(o.name)) for o in spec.options})
    return model


def _arm_model(policy: str, spec: PolicySpec) -> type[_Arm]:
    """The arm of ``policy``: its name as a constant and its options (:func:`options_model`),
    generated from the registry."""
    options = options_model(policy)
    tag: Any = Literal[policy]
    required = policy != DEFAULT_POLICY
    return cast(type[_Arm], create_model(
        f"{_title(policy)}Arm", __base__=_Arm,
        __doc__=f"An arm served by `{policy}`: {spec.summary}.",
        policy=(tag, Field(... if required else policy, description=(
            "The policy choosing exercises" + ("." if required else
                                               f" (default: `{DEFAULT_POLICY}`, the engine's "
                                               "default, stored by its name).")))),
        options=(options, Field(default_factory=options, description=(
            "The policy's options; an option it does not take, or a value outside its "
            "range, is a 422.")))))


def _policy_of(arm: Any) -> Any:
    """The tag that picks an arm's model: its policy (the default when none is given)."""
    if isinstance(arm, dict):
        return arm.get("policy", DEFAULT_POLICY)
    return getattr(arm, "policy", None)


#: an arm: one of the registry's policies with that policy's options (to a type checker, the
#: fields every arm has)
if TYPE_CHECKING:
    ArmIn = _Arm
else:
    ArmIn = Annotated[
        Union[tuple(Annotated[_arm_model(name, spec), Tag(name)]  # noqa: UP007
                    for name, spec in POLICIES.items())],
        Discriminator(_policy_of, custom_error_type="unknown_policy",
                      custom_error_message=f"unknown policy (policies: {', '.join(POLICIES)})")]


class ExperimentIn(BaseModel):
    """An experiment: its arms, and when it runs. Fixed once created (a new split is a new
    experiment); only its stop can be brought forward."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "name": "target-0.7-vs-0.8",
        "arms": [{"name": "control", "policy": "target-success",
                  "options": {"target_success": 0.75}},
                 {"name": "low", "policy": "target-success",
                  "options": {"target_success": 0.7}},
                 {"name": "high", "policy": "target-success",
                  "options": {"target_success": 0.8}}],
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
