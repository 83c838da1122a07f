"""Fault campaign (issue 12): answers from many simulated learners while faults are injected,
then the answer log and a from-scratch rebuild say whether anything went wrong.

Per backend (PostgreSQL + Redis with 2 workers; SQLite with in-process states, 1 worker) one
real ``tutor serve`` runs every scenario, each on a tenant of its own. Learners answer in a
closed loop (the item the previous response chose, a think time between answers) with a
client that retries as a real app would: the same ``event_id`` after a lost connection, a
timeout or a 5xx, until it gets an answer (or gives up after ``--give-up`` seconds). Meanwhile
a scenario injects its faults: kill -9 of a worker and of the whole server (restarted); Redis
FLUSHALL, Redis killed and restarted, cache entries damaged in every way issue 12 names; a
database restore emulated (a learner's last answers deleted while the cache keeps its
entry, then the learner catches up); the service's PostgreSQL connections terminated again
and again. Redis is a server of the campaign's own (``redis-server`` on a free port, no
persistence), so FLUSHALL and kills touch nobody else's data.

Then, per scenario: every acknowledged answer must be in the log (else **lost**), once, and the
log must hold nothing else and no gap in any learner's ``seq`` (else **doubled**); every request
must end in a 2xx after retries (else an **error**); and every mastery the client was served,
every response the log stored for replay, and every learner's ``/state`` must equal a fold of
the log with the tenant's own tracer (else a **wrong state**), as must every Redis entry that
claims to be current (``rebuild_all``'s "wrong"). Target: all zeros.

Run from the repository root: ``.venv/bin/python bench/faults.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson
import redis
import sqlalchemy as sa
from load import (
    MATH_PACK,
    ROOT,
    VENV_BIN,
    RawSender,
    free_port,
    log,
    machine,
    postgres_database,
    source_digest,
    stop,
    wait_ready,
)

from api.db import state_cache_key, upgrade
from api.service import TutorService
from api.store import RedisStore
from api.tenants import Tenant, create_tenant, import_pack, tenant_by_name
from content.packs import catalog_from_packs, parse_pack
from engine.events import AnswerEvent

BACKENDS = ("pg-redis-2w", "sqlite-1w")
SCENARIOS = ("kill-9", "redis-flushall", "redis-kill", "corruption", "restore", "pg-terminate",
             "combined")
COMBINED = "combined"
#: not run unless named: violations planted to show the checks find them (see control())
CONTROL = "control"
#: scenarios that need Redis or PostgreSQL: not run on SQLite with in-process states
NEEDS_REDIS = {"redis-flushall", "redis-kill", "corruption"}
NEEDS_POSTGRES = {"pg-terminate"}
#: faults that go on for a while (--fault-seconds), not one blow at a time
LASTING = {"corruption", "pg-terminate"}
#: application_name of the campaign's own database connections (never terminated)
BENCH_CONNECTIONS = "tutor-faults-bench"
MASTERY_TOLERANCE = 2e-6  # responses round mastery to 6 decimals
REQUEST_TIMEOUT_S = 10.0


# ---------------------------------------------------------------------------------- services
class OwnRedis:
    """A ``redis-server`` of the campaign's own on a free port, without persistence: it can be
    flushed and killed without touching anyone else's data."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("error: redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        """SIGKILL: whatever it held is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class Service:
    """``tutor serve`` on one backend, in its own process group, restartable."""

    def __init__(self, backend: str, url: str, redis_url: str | None, tmp: Path) -> None:
        self.backend = backend
        self.url = url
        self.workers = 2 if backend == "pg-redis-2w" else 1
        self.tmp = tmp
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
        if redis_url:
            self.env["TUTOR_REDIS_URL"] = redis_url
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.failed_starts: list[str] = []  # how each start that exited ended

    @property
    def log_path(self) -> Path:
        return self.tmp / f"{self.backend}-{self.starts}.log"

    def start(self) -> float:
        """Start and wait until ready (both workers serving); the seconds it took. A start
        that exits is started again, as a supervisor would (at most 3 times), and recorded in
        :attr:`failed_starts`: ``tutor serve`` exits when its first database statements fail
        (the database closing connections, in the combined scenario)."""
        began = time.perf_counter()
        for attempt in range(3):
            self.starts += 1
            metrics = self.tmp / f"metrics-{self.backend}-{self.starts}"
            metrics.mkdir()
            with self.log_path.open("wb") as out:
                self.process = subprocess.Popen(
                    [str(VENV_BIN / "tutor"), "serve", "--database-url", self.url, "--host",
                     "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)],
                    cwd=ROOT, env={**self.env, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_ready(self.port, self.process, self.log_path, timeout=120)
                break
            except SystemExit as exc:
                if self.process.poll() is None or attempt == 2:
                    raise
                self.failed_starts.append(str(exc)[-300:])
                log(f"    the server exited while starting: {str(exc)[-200:]!r}")
        deadline = time.monotonic() + 60
        while self.workers > 1 and len(self.worker_pids()) < self.workers:
            if time.monotonic() > deadline:
                raise SystemExit(f"error: {self.workers} workers never ran")
            time.sleep(0.1)
        return time.perf_counter() - began

    def worker_pids(self) -> list[int]:
        """The uvicorn supervisor's worker processes (none with one worker: it serves)."""
        assert self.process is not None
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{pid}/stat").read_text()
                ppid = int(stat[stat.rfind(")") + 2:].split()[1])
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                if ppid == self.process.pid and b"spawn_main" in cmdline:
                    found.append(int(pid))
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL the whole process group: the server and its workers, mid-request."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


# ---------------------------------------------------------------------------------- learners
@dataclass
class Sent:
    """One answer as the client sent it, and what became of it."""

    learner: str
    event_id: str
    response: dict[str, Any] | None = None
    error: str | None = None  # why the client gave up (after its retries)


@dataclass
class Client:
    """Simulated learners of one tenant answering in a closed loop, with an app's retries."""

    port: int
    key: str
    learners: list[str]
    items: list[str]
    think_s: float
    give_up_s: float
    rng: random.Random
    sent: list[Sent] = field(default_factory=list)
    retried: Counter[str] = field(default_factory=Counter)  # what a retry followed, by kind
    running: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: pause
    stopping: bool = False
    in_flight: int = 0

    async def learner(self, learner: str) -> None:
        headers = (f"Host: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {self.key}\r\n"
                   "Content-Type: application/json\r\n").encode()
        sender = RawSender("127.0.0.1", self.port, headers)
        path = f"/v1/learners/{learner}/answers".encode()
        item: str | None = None
        try:
            while not self.stopping:
                await self.running.wait()
                if self.stopping:
                    break
                sent = Sent(learner, str(uuid4()))
                self.sent.append(sent)
                body = orjson.dumps({"item_id": item or self.rng.choice(self.items),
                                     "correct": self.rng.random() < 0.65,
                                     "event_id": sent.event_id})
                self.in_flight += 1
                try:
                    await self._send(sender, path, body, sent)
                finally:
                    self.in_flight -= 1
                chosen = sent.response.get("next") if sent.response else None
                item = chosen["item"] if chosen else None
                await asyncio.sleep(self.rng.uniform(0.5, 1.5) * self.think_s)
        finally:
            await sender.close()

    async def _send(self, sender: RawSender, path: bytes, body: bytes, sent: Sent) -> None:
        """Send until a 2xx (or a 4xx, which no retry would change), retrying the same body
        (so the same event id) after a lost connection, a timeout or a 5xx."""
        deadline = time.monotonic() + self.give_up_s
        pause = 0.05
        while True:
            kind = ""
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status, payload = await sender.post(path, body)
            except TimeoutError:
                kind = "timeout"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError):
                kind = "connection"
            else:
                if 200 <= status < 300:
                    sent.response = orjson.loads(payload)
                    return
                if status < 500:
                    sent.error = f"http_{status}: {payload[:200]!r}"
                    return
                kind = f"http_{status}"
            self.retried[kind] += 1
            if time.monotonic() > deadline:
                sent.error = f"gave up after {self.give_up_s:g} s ({kind})"
                return
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 2)

    async def pause(self) -> None:
        """Stop sending new answers, and wait until none is in flight."""
        self.running.clear()
        while self.in_flight:
            await asyncio.sleep(0.01)

    def resume(self) -> None:
        self.running.set()


@contextlib.asynccontextmanager
async def answering(client: Client) -> AsyncIterator[Client]:
    """The client's learners answering for as long as the block runs."""
    client.resume()
    tasks = [asyncio.create_task(client.learner(learner)) for learner in client.learners]
    try:
        yield client
    finally:
        client.stopping = True
        client.running.set()
        await asyncio.gather(*tasks)


# ---------------------------------------------------------------------------------- faults
@dataclass
class Campaign:
    """What a scenario can reach: the service, Redis, the database, the tenant."""

    args: argparse.Namespace
    service: Service
    redis: OwnRedis | None
    engine: sa.Engine
    tenant: Tenant
    client: Client
    notes: list[str] = field(default_factory=list)
    #: event ids a restore removed from the log on purpose: acknowledged, yet not in the log
    restored_away: set[str] = field(default_factory=set)
    #: set when the other faults of a combined scenario are over: the lasting faults
    #: (corruption, pg-terminate) then last as long as they do, not ``--fault-seconds``
    others_done: asyncio.Event | None = None

    def lasting(self) -> Callable[[], bool]:
        """For a lasting fault: whether its time is over."""
        ends = time.monotonic() + self.args.fault_seconds
        others = self.others_done
        return (others.is_set if others is not None
                else lambda: time.monotonic() >= ends)

    def note(self, text: str) -> None:
        log(f"    {text}")
        self.notes.append(text)


async def kill_9(c: Campaign) -> None:
    """kill -9 of one worker (uvicorn's supervisor starts another), then of the whole server,
    which is started again; the learners' retries carry on through both."""
    if c.service.workers > 1:
        pid = c.service.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        c.note(f"killed worker {pid} (-9)")
        await asyncio.sleep(c.args.fault_gap)
    for _ in range(2):
        c.service.kill()
        c.note("killed the server's process group (-9)")
        took = await asyncio.to_thread(c.service.start)
        c.note(f"restarted, ready after {took:.1f} s")
        await asyncio.sleep(c.args.fault_gap)


async def redis_flushall(c: Campaign) -> None:
    assert c.redis is not None
    flusher = redis.Redis.from_url(c.redis.url)
    for _ in range(3):
        with _unless_redis_is_down(c, "FLUSHALL"):
            await asyncio.to_thread(flusher.flushall)
            c.note("FLUSHALL")
        await asyncio.sleep(c.args.fault_gap)
    flusher.close()


@contextlib.contextmanager
def _unless_redis_is_down(c: Campaign, what: str) -> Iterator[None]:
    """Skip ``what`` while Redis is down (another fault of a combined scenario killed it)."""
    try:
        yield
    except redis.ConnectionError:
        c.note(f"{what} skipped: Redis is down")


async def redis_kill(c: Campaign) -> None:
    assert c.redis is not None
    for _ in range(2):
        c.redis.kill()
        c.note("killed redis-server (-9)")
        await asyncio.sleep(c.args.fault_gap)
        await asyncio.to_thread(c.redis.start)
        c.note("redis-server restarted, empty")
        await asyncio.sleep(c.args.fault_gap)


def _floats(value: float) -> Callable[[bytes], bytes]:
    return lambda s: struct.pack(f"<{len(s) // 8}d", *[value] * (len(s) // 8))


#: issue 12 B1's damaged entries: name -> how to damage the learner's Redis hash (or key)
DAMAGE: dict[str, Callable[[redis.Redis, str], Any]] = {
    "state-too-short": lambda r, k: r.hset(k, "s", (r.hget(k, "s") or b"")[:-3]),
    "state-too-long": lambda r, k: r.hset(k, "s", (r.hget(k, "s") or b"") + bytes(8)),
    "epoch-not-a-number": lambda r, k: r.hset(k, "e", b"1.7e15"),
    "version-not-a-number": lambda r, k: r.hset(k, "v", b"twelve"),
    "content-version-not-a-number": lambda r, k: r.hset(k, "c", b"x"),
    "recent-not-utf8": lambda r, k: r.hset(k, "r", b"m\x1f\xff\xfe"),
    "state-nan": lambda r, k: r.hset(k, "s", _floats(float("nan"))(r.hget(k, "s") or b"")),
    "state-above-one": lambda r, k: r.hset(k, "s", _floats(1.5)(r.hget(k, "s") or b"")),
    "state-below-zero": lambda r, k: r.hset(k, "s", _floats(-0.25)(r.hget(k, "s") or b"")),
    "a-string": lambda r, k: r.delete(k) + r.set(k, b"junk"),
    "a-list": lambda r, k: r.delete(k) + r.rpush(k, b"junk"),
    "a-set": lambda r, k: r.delete(k) + r.sadd(k, b"junk"),
}


async def corruption(c: Campaign) -> None:
    """Damage learners' entries, each kind of :data:`DAMAGE` in turn, for the fault phase."""
    assert c.redis is not None
    r = redis.Redis.from_url(c.redis.url)
    done: Counter[str] = Counter()
    over = c.lasting()
    kinds = list(DAMAGE)
    while not over():
        kind = kinds[sum(done.values()) % len(kinds)]
        key = RedisStore._key(c.tenant.id, c.client.rng.choice(c.client.learners))
        with contextlib.suppress(redis.ConnectionError):  # (killed by a combined scenario)
            if await asyncio.to_thread(r.type, key) == b"hash":
                await asyncio.to_thread(DAMAGE[kind], r, key)
                done[kind] += 1
        await asyncio.sleep(0.1)
    r.close()
    c.note(f"damaged {sum(done.values())} entries: "
           + ", ".join(f"{k} {n}" for k, n in sorted(done.items())))


async def restore(c: Campaign) -> None:
    """Emulate restoring the database to an earlier point for half the learners, while the
    cache keeps their newer entries: the first quarter get their learner row back as it was at
    a snapshot taken earlier (and lose the answers since), the second quarter lose their last
    half of answers with only ``last_seq`` set back (a partial restore). Then all catch up."""
    half = c.client.learners[: len(c.client.learners) // 2]
    whole, partial = half[: len(half) // 2], half[len(half) // 2:]
    await c.client.pause()
    snapshot = await asyncio.to_thread(_rows, c.engine, c.tenant.id, whole)
    c.client.resume()
    c.note(f"snapshot of {len(snapshot)} learner rows")
    await asyncio.sleep(c.args.fault_gap * 2)
    await c.client.pause()
    removed = await asyncio.to_thread(_restore, c.engine, c.tenant.id, snapshot, partial)
    c.restored_away |= removed
    c.client.resume()
    c.note(f"restored {len(whole)} learners to the snapshot and set {len(partial)} back by "
           f"half their answers: {len(removed)} answers removed")
    await asyncio.sleep(c.args.fault_gap * 2)


def _rows(engine: sa.Engine, tenant_id: int, learners: list[str]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(
            "SELECT * FROM learners WHERE tenant_id = :t AND learner_id IN :ls")
            .bindparams(sa.bindparam("ls", expanding=True)),
            {"t": tenant_id, "ls": learners}).mappings()]


def _restore(engine: sa.Engine, tenant_id: int, snapshot: list[dict[str, Any]],
             partial: list[str]) -> set[str]:
    """Delete the answers after the snapshot (and put the snapshot's rows back), and the last
    half of ``partial``'s answers (setting only their ``last_seq`` back); the event ids
    removed."""
    removed: set[str] = set()
    keep = {row["learner_id"]: int(row["last_seq"]) for row in snapshot}
    with engine.begin() as conn:
        for learner in partial:
            last = conn.execute(sa.text("SELECT last_seq FROM learners WHERE tenant_id = :t "
                                        "AND learner_id = :l"),
                                {"t": tenant_id, "l": learner}).scalar_one_or_none()
            if last is not None:  # (a learner that has not answered yet has nothing to lose)
                keep[learner] = last - last // 2
        for learner, seq in keep.items():
            removed |= set(conn.execute(sa.text(
                "DELETE FROM events WHERE tenant_id = :t AND learner_id = :l AND seq > :s "
                "RETURNING event_id"), {"t": tenant_id, "l": learner, "s": seq}).scalars())
        for row in snapshot:
            columns = [k for k in row if k not in ("tenant_id", "learner_id")]
            conn.execute(sa.text("UPDATE learners SET " + ", ".join(f"{k} = :{k}"
                                                                    for k in columns)
                                 + " WHERE tenant_id = :tenant_id AND learner_id = :learner_id"),
                         row)
        for learner in (learner for learner in partial if learner in keep):
            conn.execute(sa.text("UPDATE learners SET last_seq = :s WHERE tenant_id = :t AND "
                                 "learner_id = :l"), {"s": keep[learner], "t": tenant_id,
                                                      "l": learner})
    return removed


async def pg_terminate(c: Campaign) -> None:
    """``pg_terminate_backend`` of every connection of the service, every ``--terminate-every``
    seconds for the fault phase (as an operator or a failover does)."""
    killer = sa.create_engine(c.service.url, poolclass=sa.pool.NullPool)
    stopping = threading.Event()
    kills: list[int] = []

    def terminate() -> None:
        with killer.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            while not stopping.wait(c.args.terminate_every):
                kills.append(conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                    "datname = current_database() AND pid <> pg_backend_pid() AND "
                    "backend_type = 'client backend' AND application_name <> %s",
                    (BENCH_CONNECTIONS,)).scalar_one())

    thread = threading.Thread(target=terminate, daemon=True)
    thread.start()
    over = c.lasting()
    while not over():
        await asyncio.sleep(0.05)
    stopping.set()
    await asyncio.to_thread(thread.join)
    killer.dispose()
    c.note(f"terminated {sum(kills)} backends in {len(kills)} rounds")


async def combined(c: Campaign) -> None:
    """Every fault of the backend at once: each scenario's faults run concurrently."""
    names = [n for n in SCENARIOS if n != COMBINED and _applies(n, c.service.backend)]
    c.note(f"at once: {', '.join(names)}")
    c.others_done = asyncio.Event()
    lasting = [n for n in names if n in LASTING]

    async def others() -> None:
        await asyncio.gather(*(FAULTS[n](c) for n in names if n not in lasting))
        assert c.others_done is not None
        c.others_done.set()

    await asyncio.gather(others(), *(FAULTS[n](c) for n in lasting))


async def control(c: Campaign) -> None:
    """Not a fault the service should survive: violations planted on purpose, to show that the
    checks see them (``--scenarios control``; expected: lost and wrong states above zero).
    One acknowledged answer is deleted from the log; one stored response gets another mastery;
    on Redis, one learner's entry gets a plausible state that is not its own (every
    probability 0.5, version and digest untouched: no reader can tell, only a rebuild can)."""
    await c.client.pause()
    planted = await asyncio.to_thread(_plant, c)
    c.client.resume()
    c.note(f"planted: {planted}")
    await asyncio.sleep(c.args.fault_gap)


def _plant(c: Campaign) -> str:
    lose, alter, swap = c.client.learners[:3]
    with c.engine.begin() as conn:
        seq = conn.execute(sa.text("UPDATE learners SET last_seq = last_seq - 1 WHERE "
                                   "tenant_id = :t AND learner_id = :l RETURNING last_seq + 1"),
                           {"t": c.tenant.id, "l": lose}).scalar_one()
        conn.execute(sa.text("DELETE FROM events WHERE tenant_id = :t AND learner_id = :l AND "
                             "seq = :s"), {"t": c.tenant.id, "l": lose, "s": seq})
        row = conn.execute(sa.text("SELECT id, response FROM events WHERE tenant_id = :t AND "
                                   "learner_id = :l ORDER BY seq DESC LIMIT 1"),
                           {"t": c.tenant.id, "l": alter}).one()
        response = json.loads(row.response)
        response["mastery"] = {k: round(1 - v, 6) for k, v in response["mastery"].items()}
        conn.execute(sa.text("UPDATE events SET response = :r WHERE id = :i"),
                     {"r": json.dumps(response), "i": row.id})
    planted = f"{lose}'s answer {seq} deleted, {alter}'s last stored response altered"
    if c.redis is not None:
        r = redis.Redis.from_url(c.redis.url)
        key = RedisStore._key(c.tenant.id, swap)
        r.hset(key, "s", _floats(0.5)(r.hget(key, "s") or b""))
        r.close()
        planted += f", {swap}'s cached state replaced"
    return planted


FAULTS: dict[str, Callable[[Campaign], Awaitable[None]]] = {
    "kill-9": kill_9, "redis-flushall": redis_flushall, "redis-kill": redis_kill,
    "corruption": corruption, "restore": restore, "pg-terminate": pg_terminate,
    "combined": combined, "control": control,
}


# ---------------------------------------------------------------------------------- checks
def check(c: Campaign) -> dict[str, Any]:
    """The scenario's outcome, from the log (each learner's export) and a fold of it."""
    catalog = catalog_from_packs([parse_pack(json.loads(MATH_PACK.read_text()))])
    tracer = catalog.tracer()  # the tenant's tracer: its content's BKT (no model registered)
    sent_ids = {s.event_id for s in c.client.sent}
    acked = [s for s in c.client.sent if s.response is not None]
    found: Counter[str] = Counter()
    wrong: list[str] = []
    logged: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{c.service.port}", timeout=30,
                      headers={"Authorization": f"Bearer {c.client.key}"}) as http:
        for learner in c.client.learners:
            r = http.get(f"/v1/learners/{learner}/export")
            if r.status_code == 404:
                continue
            r.raise_for_status()
            export = r.json()
            events = export["events"]
            found["gaps"] += sum(1 for i, e in enumerate(events, 1) if e["seq"] != i)
            state = tracer.new_state()
            prefix: list[dict[str, float]] = []  # mastery of every skill after each answer
            for e in events:
                if e["event_id"] in logged:
                    found["doubled"] += 1
                logged[e["event_id"]] = e
                state = tracer.update(state, AnswerEvent(
                    learner, e["item_id"], tuple(e["skills"]), e["correct"],
                    timestamp=datetime.fromisoformat(e["answered_at"]),
                    response_ms=e["response_ms"], event_id=e["event_id"]))
                prefix.append(tracer.mastery(state, e["skills"]))
                if not _same(e["response"]["mastery"], prefix[-1]):
                    wrong.append(f"stored response {learner} seq {e['seq']}")
            final = tracer.mastery(state)
            if not _same({s["skill_id"]: s["mastery"] for s in export["state"]}, final):
                wrong.append(f"state of {learner} after seq {len(events)}")
            for s in (s for s in acked if s.learner == learner):
                assert s.response is not None
                seq = s.response["seq"]
                if s.event_id in c.restored_away:
                    continue
                if seq > len(events) or events[seq - 1]["event_id"] != s.event_id:
                    wrong.append(f"served {learner} seq {seq}: not that answer's place in "
                                 "the log")
                elif not _same(s.response["mastery"], prefix[seq - 1]):
                    wrong.append(f"served {learner} seq {seq}")
    found["doubled"] += sum(1 for e in logged if e not in sent_ids)  # answers nobody sent
    lost = [s.event_id for s in acked
            if s.event_id not in logged and s.event_id not in c.restored_away]
    errors = [s.error for s in c.client.sent if s.error is not None]
    result = {
        "sent": len(c.client.sent), "acknowledged": len(acked),
        "duplicates_served": sum(1 for s in acked if s.response and s.response["duplicate"]),
        "lost": len(lost), "doubled": found["doubled"], "seq_gaps": found["gaps"],
        "errors": len(errors), "error_examples": errors[:5],
        "wrong_states": len(wrong), "wrong_examples": wrong[:5],
        "retried": dict(c.client.retried),
        "server_errors_retried": sum(n for k, n in c.client.retried.items()
                                     if k.startswith("http_5")),
        "logged_unacknowledged": sum(1 for s in c.client.sent
                                     if s.response is None and s.event_id in logged),
        "removed_by_restore": len(c.restored_away), "faults": c.notes,
    }
    if c.redis is not None:  # the cache entries, against a rebuild (repairs what it finds)
        service = TutorService(c.engine, RedisStore(c.redis.url,
                                                    partial(state_cache_key, c.engine)))
        cache = service.rebuild_all(tenant_by_name(c.engine, c.tenant.name))
        result["cache_entries"] = dict(cache)
        result["wrong_cache_entries"] = cache["wrong"]
        result["wrong_states"] += cache["wrong"]
    return result


def _same(got: dict[str, float], want: dict[str, float]) -> bool:
    return set(got) <= set(want) and all(abs(got[s] - want[s]) <= MASTERY_TOLERANCE
                                          for s in got)


# ---------------------------------------------------------------------------------- runs
def new_tenant(engine: sa.Engine, name: str) -> tuple[Tenant, str]:
    tenant, key = create_tenant(engine, name)
    import_pack(engine, tenant.id, json.loads(MATH_PACK.read_text()), str(MATH_PACK))
    return tenant_by_name(engine, name), key


async def scenario(name: str, args: argparse.Namespace, service: Service,
                   own_redis: OwnRedis | None, engine: sa.Engine,
                   items: list[str]) -> dict[str, Any]:
    """Load, the scenario's faults, load again until the server has settled, then the checks."""
    tenant, key = await asyncio.to_thread(new_tenant, engine,
                                          f"faults-{name}-{uuid4().hex[:6]}")
    client = Client(service.port, key, [f"{name}-{i:03d}" for i in range(args.learners)], items,
                    args.think, args.give_up, random.Random(f"{args.seed}-{name}"))
    c = Campaign(args, service, own_redis, engine, tenant, client)
    failed_starts = len(service.failed_starts)
    began = time.perf_counter()
    async with answering(client):
        await asyncio.sleep(args.warm_seconds)
        await FAULTS[name](c)
        await asyncio.sleep(args.settle_seconds)
    seconds = time.perf_counter() - began
    result = await asyncio.to_thread(check, c)
    result["server_starts_failed"] = service.failed_starts[failed_starts:]
    result["seconds"] = round(seconds, 1)
    result["answers_per_s"] = round(result["acknowledged"] / seconds, 1)
    # (5xx responses the client retried past are reported, not counted: the target is the
    # errors left after retries)
    result["all_zero"] = not any(result[k] for k in ("lost", "doubled", "seq_gaps", "errors",
                                                      "wrong_states"))
    if name == CONTROL:  # the planted violations must all be seen
        result["detected"] = bool(result["lost"] and result["wrong_states"])
    log(f"  {name}: {result['sent']} sent, {result['lost']} lost, {result['doubled']} doubled, "
        f"{result['errors']} errors, {result['server_errors_retried']} 5xx retried, "
        f"{result['wrong_states']} wrong states; retried {result['retried']}")
    return result


def _applies(scenario: str, backend: str) -> bool:
    """Whether ``scenario`` can run on ``backend`` (SQLite has neither Redis nor PostgreSQL)."""
    return not (backend == "sqlite-1w" and scenario in NEEDS_REDIS | NEEDS_POSTGRES)


@contextlib.contextmanager
def backend_database(backend: str, args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    if backend == "pg-redis-2w":
        with postgres_database(args.pg_dsn, prefix="tutor_faults") as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'faults.db'}"


async def run_backend(backend: str, args: argparse.Namespace, tmp: Path,
                      items: list[str]) -> dict[str, Any]:
    names = [n for n in args.scenarios if _applies(n, backend)]
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(backend_database(backend, args, tmp))
        own_redis = None
        if backend == "pg-redis-2w":
            own_redis = OwnRedis(tmp)
            own_redis.start()
            stack.callback(own_redis.kill)
        await asyncio.to_thread(upgrade, url)
        # no pool, and a name that pg-terminate spares: it closes the service's connections
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=(
            {"application_name": BENCH_CONNECTIONS} if backend == "pg-redis-2w" else {}))
        stack.callback(engine.dispose)
        service = Service(backend, url, own_redis.url if own_redis else None, tmp)
        stack.callback(service.stop)
        took = await asyncio.to_thread(service.start)
        log(f"{backend}: ready after {took:.1f} s on port {service.port}")
        for name in names:
            log(f"{backend}: {name}")
            results[name] = await scenario(name, args, service, own_redis, engine, items)
        # every start's output: warnings and tracebacks explain a 5xx the client only counts
        results["server_log_tail"] = "".join(
            (service.tmp / f"{backend}-{n}.log").read_text(errors="replace")[-6000:]
            for n in range(1, service.starts + 1))[-20000:]
    return results


# ---------------------------------------------------------------------------------- report
COLUMNS = [("sent", "answers sent"), ("lost", "lost"), ("doubled", "doubled"),
           ("errors", "errors after retries"), ("server_errors_retried", "5xx (retried)"),
           ("wrong_states", "wrong states")]


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| backend | scenario | " + " | ".join(title for _, title in COLUMNS)
             + " | connection losses retried | target (all zero) |",
             "|---|---|" + "--:|" * len(COLUMNS) + "--:|:-:|"]
    for backend, scenarios in results.items():
        for name, r in scenarios.items():
            if name == "server_log_tail":
                continue
            lines.append(f"| {backend} | {name} | "
                         + " | ".join(str(r[k]) for k, _ in COLUMNS)
                         + f" | {r['retried'].get('connection', 0)} | {_verdict(name, r)} |")
    return "\n".join(lines)


def _verdict(name: str, r: dict[str, Any]) -> str:
    if name == CONTROL:
        return "control: planted violations seen" if r["detected"] else "**control: MISSED**"
    return "met" if r["all_zero"] else "**not met**"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fault campaign against real `tutor serve` processes: answers with client "
                    "retries while faults are injected, then lost / doubled / errors / wrong "
                    "states from the log and a rebuild (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--scenarios", nargs="+", choices=[*SCENARIOS, CONTROL],
                        default=list(SCENARIOS),
                        help="(the Redis and PostgreSQL ones are skipped on sqlite-1w; "
                             f"`{CONTROL}` plants violations to show the checks see them)")
    parser.add_argument("--learners", type=int, default=30,
                        help="simulated learners per scenario, each answering in a loop")
    parser.add_argument("--think", type=float, default=0.25,
                        help="mean seconds a learner waits between answers")
    parser.add_argument("--warm-seconds", type=float, default=3.0,
                        help="seconds of answers before the first fault")
    parser.add_argument("--fault-seconds", type=float, default=8.0,
                        help="how long corruption and pg-terminate go on")
    parser.add_argument("--fault-gap", type=float, default=2.0,
                        help="seconds between two faults of a scenario")
    parser.add_argument("--settle-seconds", type=float, default=3.0,
                        help="seconds of answers after the last fault")
    parser.add_argument("--terminate-every", type=float, default=0.1,
                        help="seconds between two rounds of pg_terminate_backend")
    parser.add_argument("--give-up", type=float, default=90.0,
                        help="seconds after which the client stops retrying an answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                            "dbname=postgres",
                        help="libpq DSN of a role that may CREATE DATABASE (a database "
                             "tutor_faults_<random> is created, and dropped after)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "faults.json")
    args = parser.parse_args()
    if "pg-redis-2w" in args.backends and not any(
            os.access(Path(d) / "redis-server", os.X_OK)
            for d in os.environ.get("PATH", "").split(os.pathsep)):
        parser.error("pg-redis-2w needs `redis-server` on the PATH (the campaign runs its own)")
    return args


def main() -> None:
    args = parse_args()
    items = [item["id"] for item in json.loads(MATH_PACK.read_text())["items"]]
    code_before = source_digest()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tutor-faults-") as tmp:
        for backend in args.backends:
            results[backend] = asyncio.run(run_backend(backend, args, Path(tmp), items))
    report = {
        "benchmark": "faults", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(), "options": {k: str(v) if isinstance(v, Path) else v
                                          for k, v in vars(args).items()},
        "code": {"source_digest": code_before,
                 "changed_during_run": source_digest() != code_before},
        "results": results,
        "all_zero": all(r["all_zero"] for s in results.values()
                        for n, r in s.items() if n not in ("server_log_tail", CONTROL)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    print("\n## Fault campaign: answers with client retries under faults\n")
    print(table(results))
    print(f"\nTarget: every count zero. {'Met' if report['all_zero'] else '**Not met**'}.")


if __name__ == "__main__":
    main()
