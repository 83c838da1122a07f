"""The HTTP API (FastAPI), versioned under ``/v1``.

Every error, from validation to an unexpected crash, has one shape:
``{"error": {"code": ..., "message": ..., "details": ...}}``. Handlers are plain functions run
in the server's thread pool; the work per request is a short database transaction. Answers
are ``async``: most are one statement on the event loop (:mod:`api.one_statement`).
"""


import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.db import make_engine
from api.schemas import MAX_RESPONSE_MS, AnswerIn, PackIn, XapiStatement
from api.service import Answer, Conflict, NotFound, TutorService
from api.settings import Settings
from api.store import InProcessStore, RedisStore, StateStore, StoreUnavailable
from api.tenants import KeyCache, Tenant, import_pack
from content.catalog import ContentError
from content.packs import BUNDLED_PACKS_DIR

log = logging.getLogger("tutor.api")
ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
#: OpenAPI's name for the scheme every /v1 route requires
API_KEY = "apiKey"
PathId = Path(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")


class JSON(Response):
    """JSON rendered by orjson (datetimes as ISO 8601)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error(status: int, code: str, message: str, details: Any = None) -> JSON:
    return JSON({"error": {"code": code, "message": message, "details": details}},
                status_code=status)


class BodyLimit:
    """Reject bodies over ``limit(path)`` bytes with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: Callable[[str], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await error(413, "payload_too_large",
                        f"request body over {limit} bytes")(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # (FastAPI passes an HTTPException from here through)
                raise HTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, limited, send)


class Observe:
    """Request latency per route and status into Prometheus (plain ASGI: Starlette's
    ``BaseHTTPMiddleware`` costs a task and a stream per request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            metrics.observe(scope["method"], getattr(route, "path", "unmatched"), status,
                            time.perf_counter() - start)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for ``settings`` (default: from the environment)."""
    settings = settings or Settings.from_env()
    engine = make_engine(settings.database_url)
    store: StateStore = RedisStore(settings.redis_url) if settings.redis_url \
        else InProcessStore()
    service = TutorService(engine, store)
    keys = KeyCache(engine, ttl=settings.key_cache_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # sync routes run in AnyIO's default thread pool, sized here (only in a running loop)
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        await service.open()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Adaptive tutoring engine",
        version="1",
        description="Knowledge tracing and next-exercise selection, one call per answer. "
                    "Authenticate with `Authorization: Bearer <api key>` "
                    "(`tutor tenant create NAME`).",
        default_response_class=JSON,
    )
    app.state.service = service
    app.add_middleware(BodyLimit, limit=lambda path: settings.max_pack_bytes
                       if path.startswith("/v1/content") else settings.max_body_bytes)

    app.add_middleware(Observe)

    # ---------------------------------------------------------------- errors, one shape
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSON:
        return error(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSON:
        details = [{"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]}
                   for e in exc.errors()]
        first = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return error(422, "validation_error", f"{where}: {first['message']}", details)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSON:
        code = {404: "not_found", 405: "method_not_allowed",
                413: "payload_too_large"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSON:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error(500, "internal_error", "the server failed to handle this request; it has "
                     "been logged", {"type": type(exc).__name__})

    # ---------------------------------------------------------------- auth
    # async: a cached key lookup must not cost a thread-pool hop (a miss queries the database
    # at most once per key and cache period). The header is read from the request: a Header()
    # parameter, or fastapi.security's HTTPBearer (a dependency more), cost ~40 us per request
    # in FastAPI's dependency solving; the scheme is documented in OpenAPI by `openapi` below
    async def tenant(request: Request) -> Tenant:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "unauthorized", "send `Authorization: Bearer <api key>`")
        found = keys.tenant_for(key)
        if found is None:
            raise ApiError(401, "unauthorized", "unknown API key")
        return found

    Auth = Annotated[Tenant, Depends(tenant)]
    LearnerId = Annotated[str, PathId]

    def call(fn: Callable[..., Any], *args: Any) -> Any:
        """Run a service call, turning its domain errors into API errors."""
        with domain_errors():
            return fn(*args)

    # ---------------------------------------------------------------- learners
    # async: an answer that is one statement runs on the event loop, without a thread hop;
    # the service moves any other to a worker thread itself
    @app.post("/v1/learners/{learner_id}/answers", tags=["learners"])
    async def post_answer(learner_id: LearnerId, body: AnswerIn, t: Auth) -> Any:
        """Record an answer; returns the updated mastery of its skills and the next exercise."""
        metrics.ANSWERS.inc()
        with domain_errors():
            response = await service.answer_async(t, learner_id, Answer(
                item_id=body.item_id, correct=body.correct, event_id=str(body.event_id),
                answered_at=body.answered_at, response_ms=body.response_ms,
                target_success=body.target_success))
        # a Response, not the dict: FastAPI would first copy a dict through jsonable_encoder,
        # a pure-Python walk (~23 us per answer) of what is already plain JSON
        return JSON(response)

    @app.get("/v1/learners/{learner_id}/next", tags=["learners"])
    def get_next(learner_id: LearnerId, t: Auth,
                 n: Annotated[int, Query(ge=1, le=50)] = 1,
                 course: Annotated[str | None, Query(max_length=128)] = None,
                 target: Annotated[float | None, Query(gt=0, lt=1)] = None) -> Any:
        """The next exercise(s) for a learner (a new learner starts from the priors)."""
        return call(service.next_items, t, learner_id, n, course, target)

    @app.get("/v1/learners/{learner_id}/state", tags=["learners"])
    def get_state(learner_id: LearnerId, t: Auth) -> Any:
        """Mastery per skill, answer counts, last seen."""
        return call(service.state, t, learner_id)

    @app.get("/v1/learners/{learner_id}/history", tags=["learners"])
    def get_history(learner_id: LearnerId, t: Auth,
                    after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # seq is an int4
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        """Answers in order, a page at a time: pass ``next_after`` as ``after`` for the next."""
        return call(service.history, t, learner_id, after, limit)

    @app.get("/v1/learners/{learner_id}/export", tags=["learners"])
    def get_export(learner_id: LearnerId, t: Auth) -> Any:
        """Everything held about the learner, as JSON."""
        return call(service.export, t, learner_id)

    @app.delete("/v1/learners/{learner_id}", status_code=204, tags=["learners"])
    def delete_learner(learner_id: LearnerId, t: Auth) -> Response:
        """Erase the learner: answers, state and cache entries."""
        call(service.erase, t, learner_id)
        return Response(status_code=204)

    # ---------------------------------------------------------------- xAPI
    @app.post("/v1/xapi/statements", tags=["xapi"])
    async def post_statements(body: XapiStatement | list[XapiStatement], t: Auth) -> Any:
        """Record xAPI ``answered`` statements (one or a list), each like an answer."""
        statements = body if isinstance(body, list) else [body]
        if not statements:
            raise ApiError(400, "bad_request", "no statements")
        items = (await anyio.to_thread.run_sync(service.runtime, t)).catalog.items
        answers = [(s.actor.account.name, _xapi_answer(s, items)) for s in statements]
        with domain_errors():
            results = [await service.answer_async(t, learner, answer)
                       for learner, answer in answers]
        return {"ids": [str(s.id) for s in statements], "results": results}

    # ---------------------------------------------------------------- content
    @app.post("/v1/content/packs", tags=["content"])
    def post_pack(body: PackIn, t: Auth) -> Any:
        """Import (or replace) a content pack; it is validated with the tenant's other packs."""
        pack = call(import_pack, engine, t.id, body.document(), f"pack {body.name!r}")
        keys.forget(t.id)
        return {"name": pack.name, "skills": len(pack.skills), "items": len(pack.items),
                "courses": len(pack.courses)}

    @app.get("/v1/content/skills/{skill_id}", tags=["content"])
    def get_skill(skill_id: Annotated[str, PathId], t: Auth) -> Any:
        catalog = service.runtime(t).catalog
        skill = catalog.skills.get(skill_id)
        if skill is None:
            raise ApiError(404, "not_found", f"skill {skill_id!r} not found")
        return {"id": skill.id, "name": skill.name, "requires": list(skill.requires),
                "bkt": {k: getattr(skill.bkt, k) for k in skill.bkt.__slots__},
                "items": [i.id for i in catalog.items_for(skill.id)]}

    @app.get("/v1/content/items/{item_id}", tags=["content"])
    def get_item(item_id: Annotated[str, PathId], t: Auth) -> Any:
        item = service.runtime(t).catalog.items.get(item_id)
        if item is None:
            raise ApiError(404, "not_found", f"item {item_id!r} not found")
        return {"id": item.id, "skills": list(item.skills), "kind": item.kind,
                "difficulty": item.difficulty, "metadata": dict(item.metadata)}

    # ---------------------------------------------------------------- operations
    @app.get("/healthz", tags=["operations"])
    def healthz() -> Any:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> Any:
        """Ready when the database answers; ``degraded`` names a state store that does not."""
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:  # any failure means not ready
            raise ApiError(503, "not_ready", "a dependency is unavailable",
                           {"database": type(exc).__name__}) from None
        try:
            store.ping()
        except Exception as exc:
            # still ready: without the cache, answers rebuild states from the log (slower)
            return {"status": "ready", "degraded": {"state_store": (
                f"{type(exc).__name__}: learner states are rebuilt from the log on every "
                "request until it answers")}}
        return {"status": "ready"}

    def openapi() -> dict[str, Any]:
        """FastAPI's schema, with the bearer scheme that every /v1 route requires."""
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)  # built once, kept in app.openapi_schema
            schema.setdefault("components", {})["securitySchemes"] = {API_KEY: {
                "type": "http", "scheme": "bearer",
                "description": "An API key from `tutor tenant create NAME`."}}
            for path, operations in schema["paths"].items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{API_KEY: []}]
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def get_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """The service's domain errors as API errors."""
    try:
        yield
    except NotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except ContentError as exc:
        raise ApiError(422, "invalid_content", str(exc)) from None
    except StoreUnavailable as exc:
        raise ApiError(503, "unavailable", str(exc)) from None


_DURATION = re.compile(r"^PT(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


def _xapi_answer(statement: XapiStatement, items: Any) -> Answer:
    """An xAPI statement as an :class:`Answer`; the object IRI's last segment may be the item."""
    if statement.verb.id != ANSWERED:
        raise ApiError(422, "unsupported_verb", f"only {ANSWERED} statements are accepted, "
                       f"got {statement.verb.id!r}")
    item_id = statement.object.id
    if item_id not in items:
        item_id = re.split(r"[/#]", item_id.rstrip("/"))[-1]
    response_ms = None
    if statement.result.duration is not None:
        match = _DURATION.match(statement.result.duration)
        if match is None:
            raise ApiError(422, "validation_error", "result.duration: expected an ISO 8601 "
                           f"duration like PT5.4S, got {statement.result.duration!r}")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        response_ms = (h * 3600 + m * 60 + s) * 1000
        if response_ms > MAX_RESPONSE_MS:
            raise ApiError(422, "validation_error", "result.duration: longer than a day, got "
                           f"{statement.result.duration!r}")
    return Answer(item_id=item_id, correct=statement.result.success, event_id=str(statement.id),
                  answered_at=statement.timestamp, response_ms=response_ms)


def warm_up() -> None:
    """Run an answer's computation once (BKT update, mastery, prediction, selection) on the
    bundled math pack, so that numba loads its compiled kernels now: done by the first request
    instead, it stalled a fresh worker for ~0.4 s of CPU (~2 s under load)."""
    from content.packs import catalog_from_packs, load_pack
    from engine.events import AnswerEvent
    from engine.selection import SelectionContext, TargetSuccessPolicy
    from engine.tracing import BKT

    catalog = catalog_from_packs([load_pack(BUNDLED_PACKS_DIR / "math.json")])
    tracer = BKT().set_params(catalog.bkt_params())
    item = next(iter(catalog.items.values()))
    state = tracer.update(tracer.new_state(), AnswerEvent("warm-up", item.id, item.skills, True))
    tracer.mastery(tracer.state_from_bytes(tracer.state_to_bytes(state)), item.skills)
    TargetSuccessPolicy().choose(tracer, state, catalog, SelectionContext(
        recent_items=(item.id,), target_success=0.75, seed=1, learner="warm-up"))


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
