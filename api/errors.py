"""Every error, from validation to an unexpected crash, in one shape:
``{"error": {"code": ..., "message": ..., "details": ...}}``.

Routes raise :class:`ApiError` for what is wrong with a request and let the service's domain
errors through: :data:`DOMAIN_ERRORS` maps each to its status and code, for every route.
:data:`HANDLERS` are the app's exception handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from api.render import JSON
from api.service import Conflict, NotFound
from api.store import StoreUnavailable
from engine.catalog import ContentError

log = logging.getLogger("tutor.api")

#: the service's domain errors as (status, code); the message is the exception's
DOMAIN_ERRORS: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    ContentError: (422, "invalid_content"),
    StoreUnavailable: (503, "unavailable"),
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
    return error(status, code, str(exc))


async def _invalid(_: Request, exc: RequestValidationError) -> JSON:
    details = [{"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]}
               for e in exc.errors()]
    first = details[0] if details else {"loc": [], "message": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error(422, "validation_error", f"{where}: {first['message']}", details)


async def _http(_: Request, exc: HTTPException) -> JSON:
    return error(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"),
                 str(exc.detail))


async def _crash(request: Request, exc: Exception) -> JSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error(500, "internal_error", "the server failed to handle this request; it has "
                 "been logged", {"type": type(exc).__name__})


HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    ApiError: _api_error,
    **dict.fromkeys(DOMAIN_ERRORS, _domain_error),
    RequestValidationError: _invalid,
    HTTPException: _http,
    Exception: _crash,
}
