"""Health, readiness and metrics, for whoever runs the service (no API key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Engine

from api import metrics
from api.db import retry_if_disconnected
from api.errors import ApiError
from api.openapi import documented
from api.render import JSON
from api.responses import Health, Readiness
from api.routes.deps import FairRoute, service

router = APIRouter(tags=["operations"], default_response_class=JSON,
                   route_class=FairRoute)


@router.get("/healthz", responses=documented(Health, "The process is up."))
def healthz() -> Any:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=documented(Readiness, "Ready (perhaps degraded).", 503))
def readyz(request: Request) -> Any:
    """Ready when the database answers; ``degraded`` names a state store that does not."""
    tutor = service(request)
    try:
        _ping(tutor.engine)
    except Exception as exc:  # any failure means not ready
        raise ApiError(503, "not_ready", "a dependency is unavailable",
                       {"database": type(exc).__name__}) from None
    try:
        tutor.store.ping()
    except Exception as exc:
        # still ready: without the cache, answers rebuild states from the log (slower)
        return {"status": "ready", "degraded": {"state_store": (
            f"{type(exc).__name__}: learner states are rebuilt from the log on every "
            "request until it answers")}}
    return {"status": "ready"}


@retry_if_disconnected  # a connection the database closed (a restart) is not unreadiness
def _ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")


@router.get("/metrics", include_in_schema=False)
def get_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
