"""A learner's answers, next exercises, state, history, export and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import metrics
from api.render import JSON
from api.routes.deps import Auth, service
from api.schemas import AnswerIn, PathId
from api.service import Answer

router = APIRouter(prefix="/v1/learners", tags=["learners"], default_response_class=JSON)


# async: an answer that is one statement runs on the event loop, without a thread hop; the
# service moves any other to a worker thread itself
@router.post("/{learner_id}/answers")
async def post_answer(request: Request, learner_id: PathId, body: AnswerIn, t: Auth) -> Any:
    """Record an answer; returns the updated mastery of its skills and the next exercise."""
    metrics.ANSWERS.inc()
    response = await service(request).answer_async(t, learner_id, Answer(
        item_id=body.item_id, correct=body.correct, event_id=str(body.event_id),
        answered_at=body.answered_at, response_ms=body.response_ms,
        target_success=body.target_success))
    # a Response, not the dict: FastAPI would first copy a dict through jsonable_encoder, a
    # pure-Python walk (~23 us per answer) of what is already plain JSON
    return JSON(response)


@router.get("/{learner_id}/next")
def get_next(request: Request, learner_id: PathId, t: Auth,
             n: Annotated[int, Query(ge=1, le=50)] = 1,
             course: Annotated[str | None, Query(max_length=128)] = None,
             target: Annotated[float | None, Query(gt=0, lt=1)] = None) -> Any:
    """The next exercise(s) for a learner (a new learner starts from the priors)."""
    return service(request).next_items(t, learner_id, n, course, target)


@router.get("/{learner_id}/state")
def get_state(request: Request, learner_id: PathId, t: Auth) -> Any:
    """Mastery per skill, answer counts, last seen."""
    return service(request).state(t, learner_id)


@router.get("/{learner_id}/history")
def get_history(request: Request, learner_id: PathId, t: Auth,
                after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # seq is an int4
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    """Answers in order, a page at a time: pass ``next_after`` as ``after`` for the next."""
    return service(request).history(t, learner_id, after, limit)


@router.get("/{learner_id}/export")
def get_export(request: Request, learner_id: PathId, t: Auth) -> Any:
    """Everything held about the learner, as JSON."""
    return service(request).export(t, learner_id)


@router.delete("/{learner_id}", status_code=204)
def delete_learner(request: Request, learner_id: PathId, t: Auth) -> Response:
    """Erase the learner: answers, state and cache entries."""
    service(request).erase(t, learner_id)
    return Response(status_code=204)
