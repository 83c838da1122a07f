"""A learner's answers, next exercises, progress, state, history, export and erasure."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api import metrics
from api.openapi import documented
from api.render import JSON
from api.responses import (
    AnswerResponse,
    ExportResponse,
    HistoryResponse,
    NextResponse,
    ProgressResponse,
    ReviewsResponse,
    StateResponse,
)
from api.routes.deps import Auth, FairRoute, service
from api.schemas import AnswerIn, LearnerId, Moment
from api.service import Answer

router = APIRouter(prefix="/v1/learners", tags=["learners"], default_response_class=JSON,
                   route_class=FairRoute)

#: the target retentions a review schedule is asked for. Below 0.5 a skill is more likely
#: forgotten than recalled when it falls due: that is relearning, not a review, and its due
#: time runs to centuries (recall 0.3 of a skill practised a few times is hundreds of years
#: away). Above 0.99 a review is due within days even of a skill remembered for a year
#: (stability 365 days: 25 days at 0.99, 3 at 0.999): daily drill, not spacing. Anki's desired
#: retention stops at 0.99 too (FSRS advises 0.70 to 0.97).
MIN_RETENTION, MAX_RETENTION = 0.5, 0.99
RETENTION_RULE = (f"The predicted recall at or below which a skill is due, {MIN_RETENTION} to "
                  f"{MAX_RETENTION}: below {MIN_RETENTION} a skill would be due when more "
                  "likely forgotten than recalled (relearning, not a review).")


# async: an answer that is one statement runs on the event loop, without a thread hop; the
# service moves any other to a worker thread itself
@router.post("/{learner_id}/answers", responses=documented(
    AnswerResponse, "The answer is recorded (or was: `duplicate`); the updated mastery of its "
    "skills and the next exercise, chosen in the learner's current course.", 404, 409))
async def post_answer(request: Request, learner_id: LearnerId, body: AnswerIn, t: Auth) -> Any:
    """Record an answer; returns the updated mastery of its skills and the next exercise
    (`next`, the same object as each of `GET /next`'s), chosen in the learner's current
    course: the `course` given now, or the last one given to an answer or to `GET /next`."""
    metrics.ANSWERS.inc()
    response = await service(request).answer_async(t, learner_id, Answer(
        item_id=body.item_id, correct=body.correct, event_id=str(body.event_id),
        answered_at=body.answered_at, response_ms=body.response_ms,
        target_success=body.target_success, course=body.course))
    # a Response, not the dict: FastAPI would first copy a dict through jsonable_encoder, a
    # pure-Python walk (~23 us per answer) of what is already plain JSON
    return JSON(response)


Course = Annotated[str | None, Query(
    min_length=1, max_length=128, examples=["es.course.first-steps"],
    description="A course's id: choose within it. It becomes the learner's current course "
                "(answers choose their `next` in it too) until another is given. Omitted: "
                "the learner's current course (none: the whole content).")]


@router.get("/{learner_id}/next", responses=documented(
    NextResponse, "The next exercises, best first (empty, with `reason`, when nothing can be "
    "recommended).", 404))
def get_next(request: Request, learner_id: LearnerId, t: Auth,
             n: Annotated[int, Query(ge=1, le=50, examples=[3],
                                     description="How many exercises, best first.")] = 1,
             course: Course = None,
             target: Annotated[float | None, Query(
                 gt=0, lt=1, examples=[0.7],
                 description="The predicted success to aim at (default: the tenant's "
                             "target success rate).")] = None,
             at: Annotated[Moment | None, Query(
                 examples=["2026-11-23T09:30:00Z"],
                 description="The moment the choice is for (default: now): predictions, due "
                             "reviews and the course's completion as of then, from every "
                             "answer recorded, as an answer's own `next` is chosen at its "
                             "`answered_at` (an app that replays a session, a simulation). "
                             "At most the server's clock plus the allowed skew (else "
                             "422).")] = None) -> Any:
    """The next exercise(s) for a learner (a new learner starts from the priors), each the
    same object as an answer's `next`."""
    return service(request).next_items(t, learner_id, n, course, target, at)


#: what `at` means to a read of a learner (progress, reviews)
AS_OF = ("Only the answers given by then (`answered_at` at or before it) count, and a "
         "placement's result only if the test had ended by then: a learner with no answer by "
         "then has the priors. With a model that forgets with time, what the learner knows "
         "then.")

#: the course a read is about (unlike `Course`, it does not change the learner's course)
ReadCourse = Annotated[str | None, Query(
    min_length=1, max_length=128, examples=["es.course.first-steps"],
    description="A course's id (omitted: the learner's current course; none: the whole "
                "content).")]


@router.get("/{learner_id}/progress", responses=documented(
    ProgressResponse, "Skills mastered of the course's skills.", 404))
def get_progress(request: Request, learner_id: LearnerId, t: Auth,
                 course: ReadCourse = None,
                 at: Annotated[Moment | None, Query(
                     examples=["2026-11-23T09:30:00Z"],
                     description="The moment the mastery is for (default: now): the learner "
                                 "as of then. " + AS_OF)] = None,
                 ) -> Any:
    """A learner's progress in a course: how many of its skills are mastered (mastery at
    least the threshold selection uses), and `complete` once all are. A learner never seen
    starts from the priors."""
    return service(request).progress(t, learner_id, course, at)


@router.get("/{learner_id}/reviews", responses=documented(
    ReviewsResponse, "Every learned skill's review time, due ones first.", 404))
def get_reviews(request: Request, learner_id: LearnerId, t: Auth,
                course: ReadCourse = None,
                retention: Annotated[float, Query(
                    ge=MIN_RETENTION, le=MAX_RETENTION, examples=[0.9],
                    description=RETENTION_RULE)] = 0.9,
                at: Annotated[Moment | None, Query(
                    examples=["2026-11-23T09:30:00Z"],
                    description="The moment recall is predicted for (default: now). "
                                + AS_OF)] = None,
                ) -> Any:
    """A learner's due and upcoming reviews (for app notifications): each learned skill with
    the time its predicted recall falls to `retention`, up to ten years (3,650 days) after
    `at`; a skill recalled for longer has `due_at` null and a `reason`. Only a model with
    memory (`bkt-memory`) schedules reviews; with another, `memory` is false and the list is
    empty."""
    return service(request).reviews(t, learner_id, course, retention, at)


@router.get("/{learner_id}/state", responses=documented(
    StateResponse, "Mastery per skill, answer counts, last seen.", 404))
def get_state(request: Request, learner_id: LearnerId, t: Auth) -> Any:
    """Mastery per skill, answer counts, last seen."""
    return service(request).state(t, learner_id)


@router.get("/{learner_id}/history", responses=documented(
    HistoryResponse, "A page of answers, in order.", 404))
def get_history(request: Request, learner_id: LearnerId, t: Auth,
                after: Annotated[int, Query(  # seq is an int4
                    ge=0, le=2**31 - 1, examples=[100],
                    description="Answers after this `seq`: the `next_after` of the previous "
                                "page (0: from the first).")] = 0,
                limit: Annotated[int, Query(ge=1, le=1000, examples=[100],
                                            description="At most this many answers.")] = 100,
                ) -> Any:
    """Answers in order, a page at a time: pass ``next_after`` as ``after`` for the next."""
    return service(request).history(t, learner_id, after, limit)


@router.get("/{learner_id}/export", responses=documented(
    ExportResponse, "Everything held about the learner.", 404))
def get_export(request: Request, learner_id: LearnerId, t: Auth) -> Any:
    """Everything held about the learner, as JSON."""
    return service(request).export(t, learner_id)


@router.delete("/{learner_id}", status_code=204, responses=documented(
    None, "Erased.", 404, 503, status=204))
def delete_learner(request: Request, learner_id: LearnerId, t: Auth) -> Response:
    """Erase the learner: answers, state and cache entries."""
    service(request).erase(t, learner_id)
    return Response(status_code=204)
