"""What routes take from the app (its state, set by :func:`api.app.create_app`): the service,
the API key cache, and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from api.middleware import TENANT_STATE
from api.service import TutorService
from api.tenants import KeyCache, Tenant


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
        return found
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise ApiError(401, "unauthorized", "send `Authorization: Bearer <api key>`")
    found = await keys(request).tenant_for(key)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown API key")
    return found


Auth = Annotated[Tenant, Depends(tenant)]
