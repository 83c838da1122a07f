"""What the experiment routes take (pydantic) and return (documented shapes, like
:mod:`api.responses`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from api.experiments import DEFAULT_POLICY
from api.schemas import Id, Moment
from engine.selection.registry import POLICIES

_POLICY_NAMES = ", ".join(f"`{name}`" for name in POLICIES)


class ArmIn(BaseModel):
    """One arm: a policy configuration and its share of the learners."""

    model_config = ConfigDict(extra="forbid")

    name: Id = Field(description="The arm's name, unique in the experiment.")
    weight: float = Field(1.0, gt=0, allow_inf_nan=False,
                          description="Allocation weight: the arm gets weight / (sum of the "
                                      "weights) of the learners.")
    policy: str = Field(DEFAULT_POLICY, max_length=64,
                        description=f"The policy choosing exercises: {_POLICY_NAMES}.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The policy's options, e.g. `{\"target_success\": "
        "0.7}` for `target-success` (an arm's target overrides the tenant's and requests').")


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
                              description="The arms; the first is the control that the "
                                          "others are compared with.")
    starts_at: Moment | None = Field(None, description="When it starts (default: now).")
    stops_at: Moment | None = Field(None, description="When it stops (default: when stopped "
                                                      "by `POST .../stop`).")
    require_consent: bool = Field(False, description="Enrol only learners whose `experiments` "
                                                     "consent is true (default: all but "
                                                     "those who refused).")


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
