"""Experiments (A/B tests of policies) and learners' consent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from api.experiment_admin import (
    create_experiment,
    list_experiments,
    set_consent,
    stop_experiment,
)
from api.experiment_results import experiment_results
from api.experiment_schemas import (
    ConsentIn,
    ExperimentIn,
    ExperimentResponse,
    ExperimentsResponse,
    ResultsResponse,
)
from api.openapi import documented
from api.render import JSON
from api.responses import Consent
from api.routes.deps import Auth, FairRoute, service
from api.schemas import LearnerId, PathId

router = APIRouter(tags=["experiments"], default_response_class=JSON,
                   route_class=FairRoute)

ExperimentName = Annotated[PathId, Path(description="The experiment's name.",
                                        examples=["target-0.7-vs-0.8"])]


@router.post("/v1/experiments", status_code=201, responses=documented(
    ExperimentResponse, "The experiment is defined.", 409, status=201))
def post_experiment(request: Request, body: ExperimentIn, t: Auth) -> Any:
    """Define an experiment: arms (policy configurations) with allocation weights, a start
    and an optional stop. While it runs, each learner is assigned an arm by a hash of
    (experiment, learner) at their first served exercise, and keeps it; learners who opted
    out of personalization or refused experiments are never enrolled. One experiment of a
    tenant runs at a time (409 for an overlap or a name taken, also when two are created at
    once, and for an arm whose policy needs a tracer with memory where the tenant's tracer
    has none). Arm names are unique in the experiment, weights 0.001 to 1000, and each arm's
    options are its policy's own, each in the range the policy takes (numbers its policy
    leaves unbounded within +-2**53; a whole-number float counts as an integer): 422
    otherwise, nothing stored."""
    return JSON(create_experiment(service(request), t.id, body), status_code=201)


@router.get("/v1/experiments", responses=documented(
    ExperimentsResponse, "The tenant's experiments."))
def get_experiments(request: Request, t: Auth) -> Any:
    """The tenant's experiments, oldest first, with their status."""
    return {"experiments": list_experiments(service(request), t.id)}


@router.post("/v1/experiments/{name}/stop", responses=documented(
    ExperimentResponse, "The experiment is stopped (it was already: unchanged).", 404))
def post_experiment_stop(request: Request, name: ExperimentName, t: Auth) -> Any:
    """Stop the experiment now: nobody is enrolled or served by its arms from now on; the
    assignments and answers stay for its results."""
    return stop_experiment(service(request), t.id, name)


@router.get("/v1/experiments/{name}/results", responses=documented(
    ResultsResponse, "Results per arm, with always-valid intervals and the "
    "sample-ratio-mismatch check.", 404, 409))
def get_experiment_results(
        request: Request, name: ExperimentName, t: Auth,
        alpha: Annotated[float, Query(gt=0, lt=1, examples=[0.05], description=(
            "Error rate of the intervals (1 - confidence)."))] = 0.05) -> Any:
    """Per arm, replayed from the answer log: answers, accuracy, exercises to skill mastery
    and the share of learners who return after at least a day, per learner with intervals
    that stay valid however often they are looked at (a confidence sequence), each arm
    against the control (the first), and the sample-ratio-mismatch check. 409 for a
    definition stored before the API refused such definitions (weights too far apart to
    split the learners): it is never served."""
    return experiment_results(service(request), t, name, alpha,
                              budget_s=request.app.state.request_budget_seconds)


@router.put("/v1/learners/{learner_id}/consent", responses=documented(
    Consent, "The learner's choices are recorded (a learner never seen is created)."))
def put_consent(request: Request, learner_id: LearnerId, body: ConsentIn, t: Auth) -> Any:
    """Set a learner's consent: personalization (false: the fixed curriculum, never enrolled
    in experiments) and taking part in experiments. Part of the learner's export."""
    return set_consent(service(request), t.id, learner_id, body.personalization,
                       body.experiments)
