"""The app's ASGI middleware: paths that decode exactly, body size limits and request metrics.

Both are plain ASGI: Starlette's ``BaseHTTPMiddleware`` costs a task and a stream per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import metrics
from api.errors import error
from api.tenants import KeyCache


class PathEncoding:
    """Refuse (400) a path or a query string whose percent-encoding is not UTF-8.

    The server decodes the path with every invalid byte as U+FFFD, so ``%FF``, ``%C3`` and
    ``%80`` would all become the same learner, whose answers and erasure they would share; a
    query's values are decoded the same way (``?course=%FF`` and ``?course=%C3`` would name the
    same course). Only the raw bytes (``scope["raw_path"]``, ``scope["query_string"]``) tell
    them apart; bytes without ``%`` are ASCII. (Checking a whole query string is checking each
    value: its separators are ASCII, which no multi-byte sequence can contain.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for part, raw in (("path", scope.get("raw_path")),
                              ("query", scope.get("query_string"))):
                problem = _not_utf8(raw)
                if raw and problem is not None:
                    await error(400, f"invalid_{part}", f"the {part}'s percent-encoding is not "
                                f"UTF-8 ({problem}): ids are UTF-8 text, and an undecodable "
                                "one cannot be told apart from another",
                                {part: raw.decode("ascii", "replace")})(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _not_utf8(raw: bytes | None) -> str | None:
    """What makes percent-encoded ``raw`` not UTF-8 once decoded (None: it is UTF-8)."""
    if not raw or (b"%" not in raw and raw.isascii()):
        return None
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"byte {exc.object[exc.start]:#04x}"
    return None


class UnknownKeys:
    """Refuse (401) a ``/v1`` request whose API key is unknown before the app routes it or
    reads its body.

    A flood of random keys costs no database transaction per key (:class:`api.tenants.KeyCache`
    looks unknown keys up together, ten times a second), but each request still cost the
    routing, the body's parsing and the dependencies before the key was checked: 0.3 to 0.4 ms
    of a worker's CPU, taken from the valid clients; about 0.2 ms now (bench/key_flood.py,
    bench/README.md). Here the key is checked first. A request without a bearer key, or whose
    look-up fails (the database unreachable), goes on to the app, whose dependency answers it
    as always (401, 503); a known key's look-up is then served from the cache.
    """

    def __init__(self, app: ASGIApp, keys: KeyCache) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            key = _bearer_key(scope["headers"])
            if key is not None:
                try:
                    found = await self.keys.tenant_for(key)
                except Exception:  # the app's dependency looks it up again, and reports it
                    pass
                else:
                    if found is None:
                        await error(401, "unauthorized", "unknown API key")(scope, receive,
                                                                            send)
                        return
                    # the dependency takes it from here: a request's key is looked up once
                    scope.setdefault("state", {})[TENANT_STATE] = found
        await self.app(scope, receive, send)


#: where :class:`UnknownKeys` leaves the caller's tenant for :func:`api.routes.deps.tenant`
#: (``request.state``: a copy per request)
TENANT_STATE = "tutor_tenant"


def _bearer_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (as :func:`api.routes.deps.tenant`
    reads it), or None."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            key = key.strip()
            return key if scheme.lower() == "bearer" and key else None
    return None


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
    """Request latency per route and status into Prometheus."""

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
