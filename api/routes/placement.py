"""A learner's placement test: start it, see it (and the item to give now), stop it early.
Its answers are ordinary answers (`POST /v1/learners/{id}/answers`): see :mod:`api.placement`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.openapi import documented
from api.render import JSON
from api.responses import PlacementResponse
from api.routes.deps import Auth, FairRoute, service
from api.schemas import LearnerId, PlacementIn

router = APIRouter(prefix="/v1/learners", tags=["placement"], default_response_class=JSON,
                   route_class=FairRoute)


@router.post("/{learner_id}/placement", status_code=201, responses=documented(
    PlacementResponse, "The placement test has started; `next` is its first item.", 404, 409,
    status=201))
def start_placement(request: Request, learner_id: LearnerId, body: PlacementIn,
                    t: Auth) -> Any:
    """Start a placement test for a new learner (one without answers; 409 otherwise, if the
    learner has one already, if the learner opted out of personalization (`PUT .../consent`),
    or if the course has no calibrated items or more than the server's limit
    (`TUTOR_MAX_PLACEMENT_ITEMS`)): an adaptive test over the course's calibrated items. The
    `skills` method (the default) estimates every skill of the course on its prerequisite
    graph, each item chosen for what its answer tells about which skills are known, and ends
    at `max_length` items or once every skill is classified at `confidence`; `theta`
    estimates one ability. Either also ends once the ability is known to `se_target`, if
    given. Give its `next` item, send the answer to `POST /answers` (whose `next` is the
    test's next item, until the test ends: then the learner's practice starts from the
    mastery the test found)."""
    return JSON(service(request).placements.start(
        t, learner_id, body.course, body.method, body.max_length, body.se_target,
        body.confidence), status_code=201)


@router.get("/{learner_id}/placement", responses=documented(
    PlacementResponse, "The learner's placement test: status, estimates, items used, and "
                       "the item to give now while it runs (its result once it has ended).", 404,
    409))
def get_placement(request: Request, learner_id: LearnerId, t: Auth) -> Any:
    """The learner's placement test: status, each skill's estimate (`skills` tests) and the
    ability estimate with its standard error, items used, and while it runs the item to give
    now; once it has ended, each skill's starting mastery. A test that can no longer run (its
    course or items left the content, or the learner opted out of personalization) is ended
    by this read, or by the learner's next `GET /next` or answer, as `abandoned`, without a
    result: practice then goes on as usual.
    During a test, an answer naming another `course` than the test's, or with an
    `answered_at` before the test started, is refused (409)."""
    return service(request).placements.show(t, learner_id)


@router.post("/{learner_id}/placement/stop", responses=documented(
    PlacementResponse, "The placement test has ended, with the answers it has.", 404, 409))
def stop_placement(request: Request, learner_id: LearnerId, t: Auth) -> Any:
    """End the learner's running placement test now, with the answers it has (none: the
    learner starts from the prior); 409 if it has ended already."""
    return service(request).placements.stop(t, learner_id)
