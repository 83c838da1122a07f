"""Fixtures of the HTTP API tests: real backends, tenants with content, clients and servers.

Two backends, both real:

* ``sqlite``: a fresh SQLite file per test, learner states cached in process;
* ``postgres+redis``: one fresh PostgreSQL database per test session (``tutor_test_<random>``,
  dropped at the end) and Redis database 15 (flushed at the start and the end; the state store
  has no configurable key prefix). Tests keep apart by using their own tenants.

PostgreSQL and Redis must be running (CI starts them): when they cannot be reached, the tests
that need them FAIL, saying how to start them; nothing is skipped.
Override the addresses with ``TUTOR_TEST_POSTGRES_URL`` (a URL of the maintenance database,
``postgres``) and ``TUTOR_TEST_REDIS_URL``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from api.app import create_app
from api.db import make_engine, tenants, upgrade
from api.settings import Settings
from api.tenant_defaults import set_defaults
from api.tenants import Tenant, create_tenant, import_pack
from content.packs import bundled_packs, catalog_from_packs, parse_pack
from engine.events import AnswerEvent
from engine.tracing.bkt import BKT

ROOT = Path(__file__).resolve().parents[2]
TUTOR = Path(sys.executable).with_name("tutor")
PG_ADMIN_URL = os.environ.get("TUTOR_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TUTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HOW_TO_START = (
    "The API tests need PostgreSQL and Redis running (CI starts them). On this machine:\n"
    "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n"
    "  redis-server --daemonize yes\n"
    "(or point TUTOR_TEST_POSTGRES_URL / TUTOR_TEST_REDIS_URL at running servers)")
WAIT_S = 60.0  # the longest any helper waits for a server

# A small pack: one skill with items of clearly different difficulty (their own guess/slip), a
# skill behind a prerequisite, and two courses.
MINI_PACK: dict[str, Any] = {
    "format": "tutor-content-pack", "version": 1, "name": "mini", "title": "Mini",
    "skills": [
        {"id": "mini.a", "name": "Skill A",
         "bkt": {"prior": 0.3, "learn": 0.2, "guess": 0.2, "slip": 0.1}},
        {"id": "mini.b", "name": "Skill B", "requires": ["mini.a"],
         "bkt": {"prior": 0.2, "learn": 0.2, "guess": 0.2, "slip": 0.1}},
        {"id": "mini.c", "name": "Skill C",
         "bkt": {"prior": 0.5, "learn": 0.1, "guess": 0.25, "slip": 0.1}},
    ],
    "items": [
        # P(correct) of a new learner: easy 0.705, mid 0.41, hard 0.245
        {"id": "mini.a.easy", "skill": "mini.a", "guess": 0.6, "slip": 0.05},
        {"id": "mini.a.mid", "skill": "mini.a"},
        {"id": "mini.a.hard", "skill": "mini.a", "guess": 0.05, "slip": 0.3},
        {"id": "mini.b.1", "skill": "mini.b"},
        {"id": "mini.b.2", "skill": "mini.b"},
        {"id": "mini.c.1", "skill": "mini.c"},
        {"id": "mini.ac", "skills": ["mini.a", "mini.c"]},
    ],
    "courses": [
        {"id": "mini.course.a", "name": "Course A", "skills": ["mini.a"]},
        {"id": "mini.course.b", "name": "Course B", "skills": ["mini.b"]},
        {"id": "mini.course.c", "name": "Course C", "skills": ["mini.c"]},
    ],
}


def pack_document(pack: str | Mapping[str, Any]) -> dict[str, Any]:
    """``"mini"``, a bundled pack's name (``"math"`` for math-basics) or a document."""
    if isinstance(pack, Mapping):
        return copy.deepcopy(dict(pack))
    if pack == "mini":
        return copy.deepcopy(MINI_PACK)
    bundled = bundled_packs()
    path = bundled.get(pack) or bundled[{"math": "math-basics",
                                         "vocab": "spanish-vocab-a1"}[pack]]
    return json.loads(path.read_text(encoding="utf-8"))


def error_of(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an error in the API's one shape; return its ``error`` object."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"code", "message", "details"}, body
    assert isinstance(err["code"], str) and err["code"], body
    assert isinstance(err["message"], str) and err["message"], body
    if code is not None:
        assert err["code"] == code, body
    return err


def new_event_id() -> str:
    return str(uuid.uuid4())


def fixed_event_ids(label: str, n: int) -> list[str]:
    """``n`` event ids that are the same on every run (uuid5 of ``label``)."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"tutor-tests/{label}/{i}")) for i in range(n)]


# ====================================================================== reference replay
def tracer_for(packs: Sequence[str | Mapping[str, Any]]) -> BKT:
    """A BKT tracer with the catalog's parameters, built here independently of the server."""
    catalog = catalog_from_packs(parse_pack(pack_document(p)) for p in packs)
    return BKT().set_params(catalog.bkt_params())


def replay(packs: Sequence[str | Mapping[str, Any]], events: Sequence[Mapping[str, Any]],
           learner: str = "x") -> dict[str, float]:
    """Mastery per skill after folding ``events`` (history entries, sorted by seq) into a fresh
    state: the definition of a learner's state."""
    tracer = tracer_for(packs)
    state = tracer.new_state()
    for e in sorted(events, key=lambda e: e["seq"]):
        state = tracer.update(state, AnswerEvent(learner, e["item_id"], tuple(e["skills"]),
                                                 bool(e["correct"])))
    return dict(tracer.mastery(state))


def state_mastery(state: Mapping[str, Any]) -> dict[str, float]:
    """``{skill: mastery}`` of a ``/state`` response."""
    return {s["skill_id"]: s["mastery"] for s in state["skills"]}


def assert_same_mastery(got: Mapping[str, float], want: Mapping[str, float],
                        tol: float = 2e-6) -> None:
    """Masteries equal up to the 6 decimals ``/state`` rounds to."""
    assert set(got) == set(want), (sorted(got), sorted(want))
    bad = {s: (got[s], want[s]) for s in want if abs(got[s] - want[s]) > tol}
    assert not bad, f"mastery differs (got, want): {bad}"


def full_history(client: httpx.Client | TestClient, learner: str,
                 headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every event of a learner, following ``next_after``."""
    out: list[dict[str, Any]] = []
    after = 0
    for _ in range(10_000):
        r = client.get(f"/v1/learners/{learner}/history", params={"after": after, "limit": 1000},
                       headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["events"])
        if page["next_after"] is None:
            return out
        after = page["next_after"]
    raise AssertionError("history paging does not end")


# ====================================================================== backends
@dataclass
class Backend:
    """A database (and state store) the API runs on."""

    name: str
    database_url: str
    redis_url: str | None
    engine: sa.Engine
    _redis: redis.Redis | None = field(default=None, repr=False)

    def settings(self, **overrides: Any) -> Settings:
        return Settings(database_url=self.database_url, redis_url=self.redis_url, **overrides)

    @property
    def redis(self) -> redis.Redis:
        assert self.redis_url, f"backend {self.name} has no Redis"
        if self._redis is None:
            self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=5)
        return self._redis

    def env(self) -> dict[str, str]:
        """Environment for a ``tutor`` subprocess on this backend (no inherited TUTOR_*)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("TUTOR_", "PROMETHEUS_MULTIPROC_DIR"))}
        env["TUTOR_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["TUTOR_REDIS_URL"] = self.redis_url
        return env


def _fail_unreachable(what: str, exc: BaseException) -> None:
    pytest.fail(f"{what} is not reachable ({type(exc).__name__}: {exc}).\n{HOW_TO_START}",
                pytrace=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT",
                             connect_args={"connect_timeout": 5}, poolclass=sa.pool.NullPool)
    name = f"tutor_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        _fail_unreachable(f"PostgreSQL at {PG_ADMIN_URL}", exc)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Redis database 15, flushed before and after the session."""
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        _fail_unreachable(f"Redis at {REDIS_URL}", exc)
    client.flushdb()
    try:
        yield REDIS_URL
    finally:
        client.flushdb()
        client.close()


def _sqlite_backend(tmp_path: Path) -> Backend:
    url = f"sqlite:///{tmp_path / 'tutor.db'}"
    upgrade(url)
    return Backend("sqlite", url, None, make_engine(url))


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A fresh SQLite database per test module (tests keep apart by their own tenants)."""
    backend = _sqlite_backend(tmp_path_factory.mktemp("sqlite"))
    yield backend
    backend.engine.dispose()


@pytest.fixture(scope="session")
def pg_backend(postgres_url: str, redis_url: str) -> Iterator[Backend]:
    backend = Backend("postgres+redis", postgres_url, redis_url, make_engine(postgres_url))
    yield backend
    backend.engine.dispose()
    if backend._redis is not None:
        backend._redis.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that uses it runs on both backends (one database per module and backend)."""
    name = "sqlite_backend" if request.param == "sqlite" else "pg_backend"
    return request.getfixturevalue(name)


# ====================================================================== tenants
@dataclass(frozen=True)
class TenantKey:
    tenant: Tenant
    key: str
    packs: tuple[str | Mapping[str, Any], ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant_on(engine: sa.Engine, packs: Sequence[str | Mapping[str, Any]] = ("mini",),
                   target_success: float = 0.75, name: str | None = None,
                   policy: str | None = None, tracer: str | None = None) -> TenantKey:
    """A new tenant (unique name), its API key, and ``packs`` imported; served by ``policy``
    on ``tracer`` (None: the engine's defaults; api.tenant_defaults)."""
    tenant, key = create_tenant(engine, name or f"t-{uuid.uuid4().hex[:12]}", target_success)
    for pack in packs:
        import_pack(engine, tenant.id, pack_document(pack), f"test pack {pack!r}"[:80])
    if policy is not None or tracer is not None:
        set_defaults(engine, tenant.id, policy, {}, tracer)
    # the content version moved on with each import
    with engine.connect() as conn:
        row = conn.execute(sa.select(tenants).where(tenants.c.id == tenant.id)).one()
    return TenantKey(Tenant.of(row), key, tuple(packs))


@pytest.fixture
def make_tenant(backend: Backend) -> Callable[..., TenantKey]:
    """``make_tenant(packs=("mini",), target_success=0.75, policy=None, tracer=None)`` on the
    test's backend."""

    def make(packs: Sequence[str | Mapping[str, Any]] = ("mini",),
             target_success: float = 0.75, policy: str | None = None,
             tracer: str | None = None) -> TenantKey:
        return make_tenant_on(backend.engine, packs, target_success, policy=policy,
                              tracer=tracer)

    return make


# ====================================================================== in-process clients
@pytest.fixture
def make_client(backend: Backend) -> Iterator[Callable[..., TestClient]]:
    """``make_client(**settings_overrides)``: a TestClient on a new app for the backend (each
    call a separate app: like a separate worker process)."""
    opened: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        client = TestClient(create_app(backend.settings(**overrides)),
                            raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)
        client.app.state.service.engine.dispose()  # type: ignore[attr-defined]


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


# ====================================================================== real servers
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``tutor serve`` in its own process group, so that killing it kills its workers too."""

    def __init__(self, backend: Backend, workers: int, log_dir: Path) -> None:
        self.backend = backend
        self.workers = workers
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.ready = False
        self.metrics_dir = log_dir  # PROMETHEUS_MULTIPROC_DIR of the current run

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.log_dir / f"server-{self.starts}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def launch(self) -> Server:
        """Start the process; do not wait for it (see :meth:`wait_ready`)."""
        assert self.proc is None, "already running"
        self.starts += 1
        self.ready = False
        self.port = free_port()
        env = self.backend.env()
        self.metrics_dir = self.log_dir / f"metrics-{self.starts}"
        self.metrics_dir.mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        with open(self.log_dir / f"server-{self.starts}.log", "wb") as log:
            self.proc = subprocess.Popen(
                [str(TUTOR), "serve", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", str(self.workers), "--database-url", self.backend.database_url],
                cwd=self.log_dir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = WAIT_S) -> Server:
        """Wait until ``/readyz`` answers 200 (fail if the process exits or time runs out)."""
        assert self.proc is not None, "not launched"
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError(f"tutor serve exited with {code}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                self.ready = httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            if not self.ready:
                if time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"tutor serve not ready after {timeout}s:\n{self.log()}")
                time.sleep(0.1)
        return self

    def start(self, timeout: float = WAIT_S) -> Server:
        return self.launch().wait_ready(timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (server and workers) and reap the server."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        if sig != signal.SIGKILL:  # workers left behind by a graceful stop
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None
        self.ready = False

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30.0), **kwargs)


class ServerPool:
    """Servers by name, launched once per session (early: see ``_prelaunch_servers``) and
    always killed at the end. A test may kill and restart its server; it is not shared."""

    def __init__(self, request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> None:
        self._request = request
        self._tmp = tmp_path_factory
        self._servers: dict[str, Server] = {}

    def launch(self, name: str) -> Server:
        """The server ``name``, launched if it is not yet (not waiting for it)."""
        if name not in self._servers:
            backend_name, workers = SERVERS[name]
            if backend_name == "sqlite":  # a database of its own
                backend = _sqlite_backend(self._tmp.mktemp(f"sqlite-{name}"))
            else:
                backend = self._request.getfixturevalue("pg_backend")
            server = Server(backend, workers, self._tmp.mktemp(f"server-{name}"))
            self._servers[name] = server.launch()
        return self._servers[name]

    def kill_all(self) -> None:
        for server in self._servers.values():
            server.kill()
            if server.backend.name == "sqlite":
                server.backend.engine.dispose()


# name -> (backend, workers) of the servers tests use; a test names one with
# ``@pytest.mark.server(name)`` (one per test; may depend on a ``which`` parameter:
# ``"crash-{which}"``)
SERVERS: dict[str, tuple[str, int]] = {
    "two-workers": ("postgres+redis", 2),
    "crash-postgres+redis": ("postgres+redis", 1),
    "crash-sqlite": ("sqlite", 1),
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server(name): the test uses the real server `name`, "
                                       "launched at the start of the session")


def _server_name(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("server")
    if mark is None:
        return None
    params = getattr(getattr(item, "callspec", None), "params", {})
    return str(mark.args[0]).format(**params)


@pytest.fixture(scope="session")
def server_pool(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(request, tmp_path_factory)
    try:
        yield pool
    finally:
        pool.kill_all()


@pytest.fixture(scope="session", autouse=True)
def _prelaunch_servers(request: pytest.FixtureRequest) -> None:
    """Launch the servers the selected tests need at the start of the session, so that they
    boot (seconds each) while other tests run. A failure here is left to the test."""
    names = {n for item in request.session.items if (n := _server_name(item))}
    if not names:
        return
    pool: ServerPool = request.getfixturevalue("server_pool")
    for name in sorted(names):
        with contextlib.suppress(Exception, pytest.fail.Exception):
            pool.launch(name)


@pytest.fixture
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> Server:
    """The test's ``@pytest.mark.server`` server, ready."""
    name = _server_name(request.node)
    assert name, "mark the test with @pytest.mark.server(name)"
    server = server_pool.launch(name)
    if server.proc is None:  # killed by an earlier test: a fresh one
        server.launch()
    return server.wait_ready()
