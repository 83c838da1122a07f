"""The HTTP API (FastAPI), versioned under ``/v1``: :func:`create_app` wires the settings,
database, state store, service, middleware, error handlers and routers together.

Every error has one shape (:mod:`api.errors`); the routes are in :mod:`api.routes`.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors, threads
from api.db import make_engine
from api.middleware import BodyLimit, Observe, PathEncoding, UnknownKeys
from api.openapi import TutorApi
from api.placement import PlacementLimits
from api.routes import content, experiments, learners, operations, placement, tenant, xapi
from api.service import TutorService
from api.settings import Settings
from api.store import make_store
from api.tenants import KeyCache
from api.threads import FairThreads
from content.packs import BUNDLED_PACKS_DIR

#: seconds a computing thread keeps the interpreter lock once another thread asks for it
#: (bench/noisy_neighbour.py, pack imports beside a quiet tenant: its p99 14 ms against 49 ms
#: with Python's default 5 ms)
SWITCH_INTERVAL_S = 0.0005


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    service = TutorService(engine, make_store(settings, engine),
                           timedelta(seconds=settings.max_clock_skew_seconds),
                           PlacementLimits(settings.max_placement_items,
                                           settings.placement_cache_bytes))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # blocking work runs in this many threads, shared fairly between tenants (only in a
        # running loop); AnyIO's default pool, sized alike, serves the rest
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        threads.install(FairThreads(settings.threads, settings.tenant_cpu_share))
        # a thread computing (a pack import, a placement start) holds the interpreter lock
        # until it is asked for it and the switch interval passes: the event loop waited up
        # to 5 ms (Python's default) at every wake-up of every request it serves
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        await service.open()
        try:
            yield
        finally:
            await service.close()

    app = TutorApi(
        # the routers' routes themselves, not the routers (app.include_router): FastAPI matches
        # an included router as one more layer, which cost ~15-20 us per request
        routes=[route for routes in (learners, placement, xapi, content, experiments, tenant,
                                     operations)
                for route in routes.router.routes],
        lifespan=lifespan,
        title="Adaptive tutoring engine",
        version="1",
        description="Knowledge tracing and next-exercise selection, one call per answer. "
                    "Authenticate with `Authorization: Bearer <api key>` "
                    "(`tutor tenant create NAME`).",
        exception_handlers=errors.HANDLERS,
    )
    # what the routes use (api.routes.deps)
    app.state.service = service
    app.state.max_content_items = settings.max_content_items  # (api.routes.content)
    app.state.request_budget_seconds = settings.request_budget_seconds  # (.experiments)
    app.state.keys = KeyCache(engine, ttl=settings.key_cache_seconds)
    app.add_middleware(BodyLimit, limit=lambda path: settings.max_pack_bytes
                       if path.startswith("/v1/content") else settings.max_body_bytes)
    app.add_middleware(UnknownKeys, keys=app.state.keys)  # inside CORS: 401s get its headers
    app.add_middleware(PathEncoding)
    if settings.cors_origins:  # browser apps on these origins (TUTOR_CORS_ORIGINS; "*": any)
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_middleware(Observe)
    return app


def warm_up() -> None:
    """Run an answer's computation once (the tracer's update, mastery, prediction, the choice
    in a course) on the bundled math pack, for the engine's default policy on its tracer and
    for target-success on BKT (tenants that named it), so that numba loads its compiled
    kernels now: done by the first request instead, it stalled a fresh worker for ~0.4 s of
    CPU (~2 s under load)."""
    from datetime import UTC, datetime

    from api.tenant_defaults import FALLBACK_TRACER, policy_tracer
    from content.packs import catalog_from_packs, load_pack
    from engine.events import AnswerEvent
    from engine.selection import SelectionContext, journey, make_policy
    from engine.selection.registry import DEFAULT_POLICY

    catalog = catalog_from_packs([load_pack(BUNDLED_PACKS_DIR / "math.json")])
    item = next(iter(catalog.items.values()))
    course = next(iter(catalog.courses))
    for policy, model in ((DEFAULT_POLICY, policy_tracer(DEFAULT_POLICY)),
                          ("target-success", FALLBACK_TRACER)):
        tracer = catalog.tracer(model)
        state = tracer.update(tracer.new_state(), AnswerEvent(
            "warm-up", item.id, item.skills, True, timestamp=datetime.now(UTC)))
        tracer.mastery(tracer.state_from_bytes(tracer.state_to_bytes(state)), item.skills)
        journey.choose(make_policy(policy), tracer, state, catalog, SelectionContext(
            recent_items=(item.id,), course=course, target_success=0.75, seed=1,
            learner="warm-up", at=datetime.now(UTC)))


def app_from_env() -> FastAPI:
    """Uvicorn's factory entry point (``api.app:app_from_env``); settings from the environment.

    The engine's kernels are loaded before the first request (:func:`warm_up`). The ~250,000
    objects left by the imports are frozen out of the garbage collector: full collections over
    them paused workers for 140-225 ms under load.
    """
    app = create_app()
    warm_up()
    gc.collect()
    gc.freeze()
    return app
