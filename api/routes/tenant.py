"""The tenant's own settings: the default policy and tracer that serve its learners."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.defaults_schemas import DefaultsIn
from api.openapi import documented
from api.render import JSON
from api.routes.deps import Auth, FairRoute, keys, service
from api.service import Conflict, Invalid
from api.tenant_defaults import DefaultsResponse, read_defaults, set_defaults

router = APIRouter(tags=["tenant"], default_response_class=JSON, route_class=FairRoute)


@router.get("/v1/tenant/defaults", responses=documented(
    DefaultsResponse, "What serves the tenant's learners outside experiments."))
def get_defaults(request: Request, t: Auth) -> Any:
    """The policy that chooses the exercises of the tenant's learners outside experiments,
    its options, and the tracer that models them, each with where it comes from (configured,
    the engine's default, the policy's own tracer, a registered model)."""
    return read_defaults(service(request).engine, t.id)


@router.put("/v1/tenant/defaults", responses=documented(
    DefaultsResponse, "The defaults are set; what serves the learners now.", 409))
def put_defaults(request: Request, body: DefaultsIn, t: Auth) -> Any:
    """Set the tenant's default policy, its options and its tracer in one call, replacing
    what was set (what the body leaves out is the engine's default: `{}` goes back to the
    engine's defaults). Learners in a running experiment keep their arm's policy; the others
    get the new one at their next exercise (on every worker within
    `TUTOR_KEY_CACHE_SECONDS`). A new tracer rebuilds each learner's state from the answer
    log once, at their next request. 422, nothing changed: an unknown policy or tracer, an
    option the policy does not take or out of its range, a policy that needs a tracer with
    memory with a `tracer` without it. 409: a tracer while a registered (fitted) model serves
    the tenant, a policy that needs memory while a registered model without it serves, or a
    tracer without memory while an experiment's arm needs memory."""
    svc = service(request)
    options = body.options.model_dump(exclude_unset=True) if body.policy is not None else {}
    try:
        with svc.log.writer:
            found = set_defaults(svc.engine, t.id, body.policy, options, body.tracer)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    except LookupError as exc:
        raise Conflict(str(exc)) from None
    keys(request).forget(t.id)  # this worker serves the new defaults at once
    return found
