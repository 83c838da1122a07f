"""Every error, from validation to an unexpected crash, in one shape:
``{"error": {"code": ..., "message": ..., "details": ...}}``.

Routes raise :class:`ApiError` for what is wrong with a request and let the service's domain
errors through: :data:`DOMAIN_ERRORS` maps each to its status and code, for every route.
:data:`HANDLERS` are the app's exception handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match

from api import logs
from api.experiment_results import OverBudget
from api.placement import PlacementConflict, PlacementNotFound
from api.render import JSON
from api.service import Conflict, Invalid, NotFound
from api.store import StoreUnavailable
from engine.catalog import ContentError

log = logging.getLogger("tutor.api")
logs.install()  # no key, learner or SQL parameter in what is logged

#: the service's domain errors as (status, code); the message is the exception's
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    Invalid: (422, "validation_error"),
    PlacementNotFound: (404, "not_found"),
    PlacementConflict: (409, "conflict"),
    ContentError: (422, "invalid_content"),
    StoreUnavailable: (503, "unavailable"),
    OverBudget: (503, "over_budget"),
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error(status: int, code: str, message: str, details: Any = None) -> JSON:
    """The response for an error: its one shape."""
    return JSON({"error": {"code": code, "message": message, "details": details}},
                status_code=status)


async def _api_error(_: Request, exc: ApiError) -> JSON:
    return error(exc.status, exc.code, exc.message, exc.details)


async def _domain_error(_: Request, exc: Exception) -> JSON:
    # Starlette picks the handler along the exception's classes; so does this lookup
    status, code = next(DOMAIN_ERRORS[c] for c in type(exc).__mro__ if c in DOMAIN_ERRORS)
    return error(status, code, str(exc), getattr(exc, "details", None))


async def _invalid(_: Request, exc: RequestValidationError) -> JSON:
    details = _one_reading([{"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]}
                            for e in exc.errors()], exc.body)
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error(422, "validation_error",
                 f"{_element(first['loc'], exc.body)}{where}: {first['message']}", details)


def _is_list_reading(loc: list[Any]) -> bool:
    return len(loc) > 1 and isinstance(loc[1], str) and loc[1].startswith("list[")


def _one_reading(details: list[dict[str, Any]], body: Any) -> list[dict[str, Any]]:
    """A body that may be one object or a list of them (xAPI statements) is validated both
    ways, and the errors of both readings name them (``body.list[XapiStatement].1.id``); keep
    those of the reading the body has, without that name."""
    if not any(_is_list_reading(d["loc"]) for d in details):
        return details
    kept = [{**d, "loc": [d["loc"][0], *d["loc"][2:]]} for d in details
            if len(d["loc"]) > 1 and _is_list_reading(d["loc"]) == isinstance(body, list)]
    return kept or details


def _element(loc: Sequence[Any], body: Any) -> str:
    """Which element of a list body (the only one: xAPI statements) an error is in, by index
    and id, as the start of the message; "" for other bodies."""
    if len(loc) < 2 or loc[0] != "body" or not isinstance(loc[1], int) \
            or not isinstance(body, list) or not 0 <= loc[1] < len(body):
        return ""
    element = body[loc[1]]
    found = element.get("id") if isinstance(element, dict) else None
    return f"statement {loc[1]} (id {found!r}): "


async def _http(request: Request, exc: HTTPException) -> JSON:
    response = error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"),
                     str(exc.detail))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:  # every method of the path, not only its first route's
        response.headers["Allow"] = ", ".join(_allowed(request))
    return response


def _allowed(request: Request) -> list[str]:
    """The methods that some route takes at the request's path (a path's methods may be
    spread over several routes: Starlette's own ``Allow`` names the first one's only)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, BaseRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _database_unavailable(request: Request, exc: OperationalError) -> JSON:
    # the database refused the connection, closed it again after api.db's retries (a
    # failover, pg_terminate_backend), or could not run the transaction now (SQLite busy): a
    # dependency that cannot be reached, not a bug of the request. Nothing was done that a
    # retry would repeat (answers are idempotent by event_id, erasure all or nothing)
    route = getattr(request.scope.get("route"), "path", "an unknown route")
    log.warning("the database is unavailable on %s %s (%s): answered 503", request.method,
                route, type(exc.orig).__name__)  # (its message may quote SQL: not logged)
    return error(503, "unavailable", "the database cannot be reached now: retry (an answer "
                 "with the same event_id counts once)", {"database": type(exc.orig).__name__})


async def _crash(request: Request, exc: Exception) -> JSON:
    # the route's template, not the path: a path names a learner (api.logs)
    route = getattr(request.scope.get("route"), "path", "an unknown route")
    log.exception("unhandled error on %s %s", request.method, route)
    return error(500, "internal_error", "the server failed to handle this request; it has "
                 "been logged", {"type": type(exc).__name__})


HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    ApiError: _api_error,
    **dict.fromkeys(DOMAIN_ERRORS, _domain_error),
    RequestValidationError: _invalid,
    HTTPException: _http,
    OperationalError: _database_unavailable,
    Exception: _crash,
}
