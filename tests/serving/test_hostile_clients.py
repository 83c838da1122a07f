"""Clients that are not playing along cost the service little, and its logs tell them nothing:
a flood of unknown API keys costs a bounded number of database look-ups, slow clients
(slowloris) are cut off after the header and body timeouts, and a failing request leaves no
key hash or SQL parameter in the logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from api.tenants import KeyCache

from .conftest import Backend, Server, _sqlite_backend, error_of, make_tenant_on, new_event_id


# ====================================================================== unknown API keys
def random_key() -> str:
    return "tk_" + secrets.token_urlsafe(32)


def count_key_lookups(engine: sa.Engine) -> list[str]:
    """The statements on ``api_keys`` that ``engine`` runs from now on."""
    seen: list[str] = []

    def statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if "api_keys" in sql:
            seen.append(sql)

    sa.event.listen(engine, "before_cursor_execute", statement)
    return seen


def test_a_flood_of_unknown_keys_costs_a_bounded_number_of_lookups(
        sqlite_backend: Backend) -> None:
    """300 requests with random keys at once cost a few look-ups, not 300; a valid key and a
    key created during the flood are accepted."""
    t = make_tenant_on(sqlite_backend.engine)
    app = create_app(sqlite_backend.settings())
    lookups = count_key_lookups(app.state.service.engine)
    n = 300

    async def flood() -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tutor") as http:
            def unknown() -> Any:
                return http.get("/v1/learners/x/next",
                                headers={"Authorization": f"Bearer {random_key()}"})

            first = await asyncio.gather(*(unknown() for _ in range(n // 2)))
            created = make_tenant_on(sqlite_backend.engine)  # a new key, mid-flood
            rest, valid, new = await asyncio.gather(
                asyncio.gather(*(unknown() for _ in range(n // 2))),
                http.get("/v1/learners/x/next", headers=t.headers),
                http.get("/v1/learners/x/next", headers=created.headers))
            return [*first, *rest], valid, new

    with TestClient(app, raise_server_exceptions=False) as client:
        responses, valid, new = client.portal.call(flood)
    for r in responses:
        error_of(r, 401, "unauthorized")  # type: ignore[arg-type]
    assert valid.status_code == 200, valid.text
    assert new.status_code == 200, new.text
    assert len(lookups) <= 6, f"{len(lookups)} key look-ups for {n} unknown keys"
    app.state.service.engine.dispose()


def test_unknown_keys_one_at_a_time_are_looked_up_at_a_bounded_rate(
        sqlite_backend: Backend) -> None:
    """A client sending one random key after another is answered 401 each time, at most one
    look-up per interval (it waits for the next one)."""
    make_tenant_on(sqlite_backend.engine)
    app = create_app(sqlite_backend.settings())
    lookups = count_key_lookups(app.state.service.engine)
    keys: KeyCache = app.state.keys
    with TestClient(app, raise_server_exceptions=False) as client:
        start = time.monotonic()
        for _ in range(12):
            error_of(client.get("/v1/learners/x/next",
                                headers={"Authorization": f"Bearer {random_key()}"}), 401)
        elapsed = time.monotonic() - start
        # the same unknown key again is answered from the negative cache
        again = random_key()
        error_of(client.get("/v1/learners/x/next", headers={"Authorization": f"Bearer {again}"}),
                 401)
        before = len(lookups)
        for _ in range(20):
            error_of(client.get("/v1/learners/x/next",
                                headers={"Authorization": f"Bearer {again}"}), 401)
        assert len(lookups) == before
    assert len(lookups) <= 2 + elapsed / keys.unknown_interval, (len(lookups), elapsed)
    app.state.service.engine.dispose()


def test_the_key_caches_are_bounded(sqlite_backend: Backend) -> None:
    t = make_tenant_on(sqlite_backend.engine)
    keys = KeyCache(sqlite_backend.engine, ttl=60.0, max_entries=50)

    async def flood() -> list[Any]:
        return await asyncio.gather(*(keys.tenant_for(random_key()) for _ in range(200)),
                                    keys.tenant_for(t.key))

    *unknown, known = asyncio.run(flood())
    assert unknown == [None] * 200
    assert known is not None and known.id == t.tenant.id
    assert keys.sizes() == (1, 50)


# ====================================================================== slow clients
@dataclass
class _WithEnv(Backend):
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


HEADER_S, BODY_S = 1.0, 2.0


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tutor serve`` (one worker, SQLite) with a 1 s header and a 2 s body timeout."""
    plain = _sqlite_backend(tmp_path_factory.mktemp("slow-db"))
    backend = _WithEnv(plain.name, plain.database_url, None, plain.engine,
                       extra={"TUTOR_HEADER_TIMEOUT_SECONDS": str(HEADER_S),
                              "TUTOR_BODY_TIMEOUT_SECONDS": str(BODY_S)})
    server = Server(backend, 1, tmp_path_factory.mktemp("slow-server")).start()
    yield server
    server.kill()
    plain.engine.dispose()


def closed_after(socks: list[socket.socket], trickle: bytes, limit: float) -> list[float]:
    """Seconds until the server closed each socket, sending a byte of ``trickle`` on each
    every 0.2 s meanwhile (inf: still open after ``limit`` seconds)."""
    start = time.monotonic()
    closed = [float("inf")] * len(socks)
    sent = 0
    while time.monotonic() - start < limit and any(c == float("inf") for c in closed):
        open_ = [s for s, c in zip(socks, closed, strict=True) if c == float("inf")]
        readable, _, _ = select.select(open_, [], [], 0.2)
        for s in readable:
            i = socks.index(s)
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data or b"408" in data or b"431" in data:
                closed[i] = time.monotonic() - start
        if trickle:
            byte = trickle[sent % len(trickle):sent % len(trickle) + 1]
            sent += 1
            for s, c in zip(socks, closed, strict=True):
                if c == float("inf"):
                    try:
                        s.send(byte)
                    except OSError:
                        closed[socks.index(s)] = time.monotonic() - start
    return closed


def connect(server: Server, first: bytes) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if first:
        s.sendall(first)
    return s


@pytest.mark.parametrize("phase", ["nothing", "headers", "body"])
def test_slow_clients_are_cut_off(slow_server: Server, phase: str) -> None:
    """50 connections at once: silent, or trickling their headers, or trickling their body
    (one byte every 0.2 s): the server closes each within its timeout (plus slack)."""
    head = (b"POST /v1/learners/slow/answers HTTP/1.1\r\nHost: tutor\r\n"
            b"Authorization: Bearer tk_slow\r\nContent-Type: application/json\r\n")
    first, trickle, limit = {
        "nothing": (b"", b"", HEADER_S),
        "headers": (head, b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", HEADER_S),
        "body": (head + b"Content-Length: 1000\r\n\r\n{\"item_id\": ", b"aaaaaaaa", BODY_S),
    }[phase]
    socks = [connect(slow_server, first) for _ in range(50)]
    try:
        closed = closed_after(socks, trickle, limit + 8)
    finally:
        for s in socks:
            s.close()
    late = [round(c, 2) for c in closed if c > limit + 1.5]
    assert not late, f"{len(late)} of 50 slow connections outlived the {limit} s timeout: {late}"
    # the server still serves everyone else, keep-alive included
    with slow_server.client() as http:
        for _ in range(3):
            assert http.get("/healthz").status_code == 200
        time.sleep(limit + 0.5)  # an idle keep-alive connection is not a slow request
        assert http.get("/healthz").status_code == 200


def test_oversized_headers_are_refused(slow_server: Server) -> None:
    """1 MB of headers, sent fast: refused (431) or cut off, never read whole."""
    s = connect(slow_server, b"GET /healthz HTTP/1.1\r\nHost: tutor\r\n")
    got = b""
    try:
        for _ in range(100):
            s.sendall(b"X-Big: " + b"a" * 10_000 + b"\r\n")
        s.sendall(b"\r\n")
        got = s.recv(65536)
    except OSError:
        pass  # closed while sending
    finally:
        s.close()
    assert not got.startswith(b"HTTP/1.1 200"), got[:200]


# ====================================================================== logs
def test_a_failing_request_logs_no_key_and_no_sql_parameters(
        pg_backend: Backend, caplog: pytest.LogCaptureFixture) -> None:
    """Two requests fail in the database: the API key look-up (its SQL parameter is the key's
    hash) and an answer whose event id is in the log twice (PostgreSQL's message names the
    conflicting value). The logs say what failed, with no key, key prefix, key hash, learner,
    event id or other parameter value."""
    t = make_tenant_on(pg_backend.engine)
    learner = f"log-{secrets.token_hex(4)}"
    event_id = new_event_id()
    app = create_app(pg_backend.settings(key_cache_seconds=0.0))
    engine = app.state.service.engine
    key_hash = hashlib.sha256(t.key.encode()).hexdigest()
    broken = {"keys": False, "append": False}

    def break_statements(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> Any:
        if broken["keys"] and "api_keys.key_hash" in sql:
            sql = sql.replace("SELECT ", "SELECT 1 / 0, ", 1)  # division by zero
        if broken["append"] and sql.startswith("INSERT INTO events") and "ON CONFLICT" in sql:
            sql = sql[:sql.index(" ON CONFLICT")] + " RETURNING events.id"
        return sql, params

    sa.event.listen(engine, "before_cursor_execute", break_statements, retval=True)
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {"item_id": "mini.a.mid", "correct": True, "event_id": event_id}
        assert client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                           json=body).status_code == 200
        broken["keys"] = True
        error_of(client.get(f"/v1/learners/{learner}/state", headers=t.headers), 500)
        broken["keys"], broken["append"] = False, True
        error_of(client.post(f"/v1/learners/{learner}/answers", headers=t.headers,
                             json=body), 500)
    app.state.service.engine.dispose()

    # (the test's own HTTP client logs its requests' URLs: not the service's logs)
    logged = "\n".join(caplog.handler.format(r) for r in caplog.records
                        if not r.name.startswith(("httpx", "httpcore")))
    assert "ZeroDivision" in logged or "DivisionByZero" in logged, logged[-3000:]
    assert "UniqueViolation" in logged, logged[-3000:]
    for secret in (t.key, t.key[:10], t.key[3:13], key_hash, key_hash[:16], learner, event_id):
        assert secret not in logged, f"{secret!r} is in the logs:\n{logged[-3000:]}"
    assert "[parameters:" not in logged
    assert "DETAIL:" not in logged


def test_no_engine_echoes_statements(tmp_path: Path) -> None:
    from api.db import make_engine

    for url in (f"sqlite:///{tmp_path / 'x.db'}",
                "postgresql+psycopg://postgres@127.0.0.1/postgres"):
        engine = make_engine(url)
        assert not engine.echo
        assert engine.hide_parameters is True
        engine.dispose()
