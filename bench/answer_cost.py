"""CPU time and round trips per answer, in process: what one ``POST /v1/learners/{id}/answers``
costs the server, without HTTP parsing, sockets or a load client sharing the cores.

The app (``api.app.app_from_env``, with the settings of the chosen backend) is driven through its
ASGI interface on an event loop, inside its lifespan, one request at a time, so each answer runs
where it runs under uvicorn (on the event loop or in the thread pool).
Two phases per backend, on a fresh database with the bundled math pack:

* **CPU**: ``time.process_time()`` (every thread of this process) over ``--answers`` answers,
  ``--repeat`` times, after ``--warmup`` unmeasured ones; the answers go to a pool of
  ``--learners`` learners, each to the item the previous response recommended, like
  ``bench/load.py``. CPU time, not wall time: the machine is shared, and CPU per answer is what
  bounds a saturated server.
* **round trips**: ``--count`` more answers with every client/server exchange counted.
  PostgreSQL: libpq's protocol trace of each of the engine's (psycopg) connections
  (``PQtrace``), where one round trip is a run of frontend messages followed by the backend's
  reply, plus the statements run on the one-statement answers' asyncpg connections (one round
  trip each once prepared; asyncpg prepares a statement once per connection). Redis: commands sent
  (``send_packed_command``: a pipeline or a script call is one). SQLite has no round trips; its
  row counts statements executed and transactions committed (each commit is an fsync); these two
  columns count what goes through SQLAlchemy, which the one-statement answers of PostgreSQL
  (``api.one_statement``) bypass.

Needs PostgreSQL (``--pg-dsn``, a role that may CREATE DATABASE; a database
``tutor_cost_<random>`` is created and dropped) and Redis (``--redis-url``, FLUSHDB before and
after) for the ``pg-redis`` backend. Run from the repository root:
``.venv/bin/python bench/answer_cost.py [--backends sqlite pg-redis] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import redis
import sqlalchemy as sa
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.db import upgrade  # noqa: E402
from api.tenants import create_tenant, import_pack  # noqa: E402

MATH_PACK = ROOT / "content" / "packs" / "math.json"


# ---------------------------------------------------------------------------------- backends
@contextlib.contextmanager
def backend_env(name: str, args: argparse.Namespace, tmp: Path) -> Iterator[dict[str, str]]:
    """``TUTOR_*`` settings of a fresh, migrated database (and a flushed Redis) for ``name``."""
    if name == "sqlite":
        url = f"sqlite:///{tmp / 'cost.db'}"
        upgrade(url)
        yield {"TUTOR_DATABASE_URL": url}
        return
    import psycopg

    db = f"tutor_cost_{secrets.token_hex(4)}"
    with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    info = psycopg.conninfo.conninfo_to_dict(args.pg_dsn)
    url = (f"postgresql+psycopg://{info.get('user', 'postgres')}@"
           f"{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{db}")
    client = redis.Redis.from_url(args.redis_url)
    client.flushdb()
    try:
        upgrade(url)
        yield {"TUTOR_DATABASE_URL": url, "TUTOR_REDIS_URL": args.redis_url}
    finally:
        client.flushdb()
        client.close()
        with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# ---------------------------------------------------------------------------------- counting
class Counts:
    """Round trips (PostgreSQL, Redis) and statements/commits (any database), while ``on``."""

    def __init__(self, engine: sa.Engine, tmp: Path) -> None:
        self.on = False
        self.counter: Counter[str] = Counter()
        self._traces: list[Path] = []
        self._tmp = tmp
        counter = self.counter

        @event.listens_for(engine, "before_cursor_execute")
        def _statement(*_: Any) -> None:
            if self.on:
                counter["statements"] += 1

        @event.listens_for(engine, "commit")
        def _commit(*_: Any) -> None:
            if self.on:
                counter["commits"] += 1

        if engine.dialect.name == "postgresql":
            engine.pool.dispose()  # connections opened from now on are traced

            @event.listens_for(engine, "connect")
            def _trace(dbapi_conn: Any, _record: Any) -> None:
                self._trace(dbapi_conn.pgconn)

            # the one-statement answers run on asyncpg connections, which have no trace
            import asyncpg.connection

            execute = asyncpg.connection.Connection._do_execute

            async def counted_execute(conn: Any, *args: Any, **kwargs: Any) -> Any:
                if self.on:
                    counter["asyncpg"] += 1
                return await execute(conn, *args, **kwargs)

            asyncpg.connection.Connection._do_execute = counted_execute  # type: ignore[method-assign]

        from redis.asyncio.connection import AbstractConnection as AsyncConnection
        from redis.connection import AbstractConnection

        sent = AbstractConnection.send_packed_command
        async_sent = AsyncConnection.send_packed_command

        def send_packed_command(conn: Any, command: Any, check_health: bool = True) -> None:
            if self.on:
                counter["redis"] += 1
            sent(conn, command, check_health)

        async def async_send_packed_command(conn: Any, command: Any,
                                            check_health: bool = True) -> None:
            if self.on:
                counter["redis"] += 1
            await async_sent(conn, command, check_health)

        AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]
        AsyncConnection.send_packed_command = async_send_packed_command  # type: ignore[method-assign]

    def _trace(self, pgconn: Any) -> None:
        """Write libpq's protocol trace of a new connection to a file of its own."""
        from psycopg import pq

        path = self._tmp / f"pq-{len(self._traces)}.trace"
        self._traces.append(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        pgconn.trace(fd)
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def mark(self) -> list[int]:
        """The current size of each trace file (to count only what comes after)."""
        return [p.stat().st_size for p in self._traces]

    def pg_round_trips(self, since: list[int]) -> int:
        """Frontend-to-backend turns in the traces after ``since`` (one per round trip)."""
        trips = 0
        for i, path in enumerate(self._traces):
            with path.open("rb") as f:
                f.seek(since[i] if i < len(since) else 0)
                last = b""
                for line in f:
                    side = line[:1]
                    if side == b"F" and last != b"F":
                        trips += 1
                    if side in (b"F", b"B"):
                        last = side
        return trips


# ---------------------------------------------------------------------------------- ASGI driving
async def post(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
               ) -> tuple[int, bytes]:
    """One request through the ASGI app, as a server would make it."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": "POST", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": headers, "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000)}
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Answerer:
    """Answers like ``bench/load.py``: random learner, the item recommended to it last."""

    def __init__(self, app: Any, key: str, items: list[str], learners: int, seed: int) -> None:
        self.app = app
        self.headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json"),
                        (b"authorization", f"Bearer {key}".encode())]
        self.items = items
        self.rng = random.Random(seed)
        self.learners = [f"cost-{i:05d}" for i in range(learners)]
        self.next_item: dict[str, str] = {}

    async def answer(self, n: int) -> None:
        for _ in range(n):
            learner = self.rng.choice(self.learners)
            item = self.next_item.get(learner) or self.rng.choice(self.items)
            body = orjson.dumps({"item_id": item, "correct": self.rng.random() < 0.7,
                                 "event_id": str(uuid4()), "response_ms": 4200})
            headers = [*self.headers, (b"content-length", str(len(body)).encode())]
            status, out = await post(self.app, f"/v1/learners/{learner}/answers", body, headers)
            if status != 200:
                raise SystemExit(f"error: answer got {status}: {out[:300]!r}")
            recommended = orjson.loads(out)["next"]
            if recommended:
                self.next_item[learner] = recommended["item"]


def measure(name: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with backend_env(name, args, tmp) as env:
        os.environ.update(env)
        from api.app import app_from_env

        engine = sa.create_engine(env["TUTOR_DATABASE_URL"], poolclass=sa.pool.NullPool)
        tenant, key = create_tenant(engine, "cost")
        import_pack(engine, tenant.id, json.loads(MATH_PACK.read_text()), str(MATH_PACK))
        engine.dispose()
        items = [item["id"] for item in json.loads(MATH_PACK.read_text())["items"]]

        began = time.process_time()
        app = app_from_env()
        startup_cpu = time.process_time() - began
        service = app.state.service
        counts = Counts(service.engine, tmp)
        answerer = Answerer(app, key, items, args.learners, args.seed)

        async def run() -> dict[str, Any]:
            async with app.router.lifespan_context(app):  # opens the one-statement pool
                return await answer_all()

        async def answer_all() -> dict[str, Any]:
            began = time.process_time()
            await answerer.answer(1)
            first_ms = (time.process_time() - began) * 1e3
            await answerer.answer(args.warmup)
            profiler = cProfile.Profile() if args.profile else None
            per_answer = []
            for _ in range(args.repeat):
                began = time.process_time()
                if profiler:
                    profiler.enable()
                await answerer.answer(args.answers)
                if profiler:
                    profiler.disable()
                per_answer.append((time.process_time() - began) * 1e3 / args.answers)
            since = counts.mark()
            counts.on = True
            await answerer.answer(args.count)
            counts.on = False
            if profiler:
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(args.profile).print_stats(30)
                print(out.getvalue(), file=sys.stderr)
            per = {k: v / args.count for k, v in counts.counter.items()}
            return {"first_answer_cpu_ms": round(first_ms, 1),
                    "cpu_ms": round(min(per_answer), 3),
                    "cpu_ms_median": round(statistics.median(per_answer), 3),
                    "pg_round_trips": round((counts.pg_round_trips(since)
                                             + counts.counter["asyncpg"]) / args.count, 2)
                    if name == "pg-redis" else None,
                    "redis_round_trips": round(per.get("redis", 0), 2) if name == "pg-redis"
                    else None,
                    "statements": round(per.get("statements", 0), 2),
                    "commits": round(per.get("commits", 0), 2)}

        import uvloop

        result = uvloop.run(run())
        result["startup_cpu_s"] = round(startup_cpu, 2)
        service.engine.dispose()
        for k in env:
            os.environ.pop(k)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=["sqlite", "pg-redis"],
                        default=["sqlite", "pg-redis"])
    parser.add_argument("--answers", type=int, default=1000,
                        help="answers per CPU measurement")
    parser.add_argument("--repeat", type=int, default=5,
                        help="CPU measurements; the table shows the lowest (the machine is "
                             "shared: a neighbour's load only ever adds) and the median")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured answers first")
    parser.add_argument("--count", type=int, default=300,
                        help="answers with round trips counted (after the CPU phase)")
    parser.add_argument("--learners", type=int, default=500, help="learner pool size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=["tottime", "cumulative"],
                        help="print a cProfile of the CPU phase, sorted so (slows it down)")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                            "dbname=postgres",
                        help="libpq DSN of a role that may CREATE DATABASE")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="Redis database for states; FLUSHDB before and after")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tutor-cost-") as tmp:
        rows = {name: measure(name, args, Path(tmp)) for name in args.backends}
    print("| backend | CPU ms/answer, min (median) | PG round trips | Redis round trips | "
          "statements | commits | first answer CPU ms | app start CPU s |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|")
    for name, r in rows.items():
        print(f"| {name} | {r['cpu_ms']:.3f} ({r['cpu_ms_median']:.3f}) | "
              f"{r['pg_round_trips'] or '-'} | {r['redis_round_trips'] or '-'} | "
              f"{r['statements']} | {r['commits']} | "
              f"{r['first_answer_cpu_ms']} | {r['startup_cpu_s']} |")


if __name__ == "__main__":
    main()
