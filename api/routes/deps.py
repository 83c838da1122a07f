"""What routes take from the app (its state, set by :func:`api.app.create_app`): the service,
the API key cache, and the caller's tenant; and the class of every route, whose blocking work
waits for its tenant's turn for a thread (:mod:`api.threads`)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from api.errors import ApiError
from api.middleware import TENANT_STATE
from api.service import TutorService
from api.tenants import KeyCache, Tenant
from api.threads import run, serve_tenant


def service(request: Request) -> TutorService:
    found: TutorService = request.app.state.service
    return found


def keys(request: Request) -> KeyCache:
    found: KeyCache = request.app.state.keys
    return found


# async: a cached key lookup must not cost a thread-pool hop (a miss queries the database at
# most once per key and cache period; unknown keys are looked up together, at a bounded rate,
# while their requests wait: api.tenants.KeyCache). The header is read from the request: a
# Header() parameter, or fastapi.security's HTTPBearer (a dependency more), cost ~40 us per
# request in FastAPI's dependency solving; the scheme is documented in OpenAPI by
# api.openapi.TutorApi
async def tenant(request: Request) -> Tenant:
    """The caller's tenant, from its API key (``Authorization: Bearer <api key>``), as
    :class:`api.middleware.UnknownKeys` found it (else looked up here)."""
    found: Tenant | None = request.scope.get("state", {}).get(TENANT_STATE)
    if found is not None:
        serve_tenant(found.id)
        return found
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send `Authorization: Bearer <api key>`")
    found = await keys(request).tenant_for(key)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    serve_tenant(found.id)
    return found


Auth = Annotated[Tenant, Depends(tenant)]


class FairRoute(APIRoute):
    """A route whose synchronous endpoint runs in its tenant's turn for a thread
    (:mod:`api.threads`; FastAPI would run it in AnyIO's pool, first come, first served)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _in_fair_thread(endpoint)
        super().__init__(path, endpoint, **kwargs)


def _in_fair_thread(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)  # FastAPI reads the signature and annotations through it
    async def endpoint_in_thread(**values: Any) -> Any:
        return await run(functools.partial(endpoint, **values))
    return endpoint_in_thread
