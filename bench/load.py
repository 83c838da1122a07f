"""Load benchmark of the answer endpoint (issue 3): open-loop arrivals, several server setups.

Each setup is started fresh as subprocesses, loaded at a series of fixed arrival rates, and
stopped: (a) SQLite with in-process learner states, 1 worker; (b) PostgreSQL with Redis states,
2 workers; (c) ``bench/reference_app.py``, the same endpoint with the engine taken out, on the
same server stack with 2 workers (and 1, beside (a)). All setups are measured in the same
invocation with the same client: the machine is small and shared, so a ratio between setups
means something only when both numbers come from one run.

The load is open loop: request ``i`` of a run at rate ``R`` is *scheduled* at ``t0 + i / R``
whatever the server does, and its latency is measured from that scheduled time. A closed-loop
client (send, wait, send) slows down with the server and so hides the queueing a real
population of learners would see (coordinated omission); here a server that falls behind shows
it as latency, then as timeouts and a lower achieved rate.

Run from the repository root: ``.venv/bin/python bench/load.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

import numpy as np
import orjson
from benchinfo import cpu_model

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MATH_PACK = ROOT / "content" / "packs" / "math.json"
DEFAULT_RATES = [100, 250, 500, 750, 1000, 1500, 2000, 3000]
HELD_FRACTION = 0.95  # achieved / offered for a rate to count as held
HELD_P99_MS = 100.0
# uvicorn closes a keep-alive connection idle for 5 s; reconnect before reusing one idle this
# long, or the first request after a pause would race the server's close and read as an error
IDLE_REUSE_S = 4.0
_START = time.perf_counter()


def log(msg: str) -> None:
    """A progress line on stderr, with the seconds since start: stdout is kept for the tables."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- setups
@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    kind: str  # "sqlite" | "postgres" | "reference"
    workers: int
    target_rate: float | None = None  # the target is checked at this rate


SETUPS = {s.name: s for s in [
    Setup("sqlite-1w", "SQLite + in-process states, 1 worker", "sqlite", 1, 250),
    Setup("reference-1w", "reference app, 1 worker", "reference", 1),
    Setup("pg-redis-2w", "PostgreSQL + Redis, 2 workers", "postgres", 2, 500),
    Setup("reference-2w", "reference app, 2 workers", "reference", 2),
]}


@dataclass
class Server:
    """A running setup: where to send answers, with which key, and its process group."""

    setup: Setup
    port: int
    api_key: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_s: float
    details: dict[str, Any] = field(default_factory=dict)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tutor(args: list[str], env: dict[str, str]) -> str:
    """Run a ``tutor`` admin command (the documented way to provision), returning its stdout."""
    done = subprocess.run([str(VENV_BIN / "tutor"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"error: `tutor {' '.join(args)}` failed:\n{done.stderr}")
    return done.stdout


def wait_ready(port: int, process: subprocess.Popen[bytes], log_path: Path,
               timeout: float = 90.0) -> None:
    """Poll ``/readyz`` until 200; fail with the server's log if it exits or never gets ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"error: the server exited ({process.returncode}):\n"
                             f"{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"error: the server was not ready after {timeout:.0f} s:\n"
                     f"{log_path.read_text()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group (it was started in a new session), then KILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def postgres_database(dsn: str, prefix: str = "tutor_load") -> Iterator[str]:
    """A fresh database ``<prefix>_<random>`` (its SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    auth = info.get("user", "postgres") + (f":{info['password']}" if info.get("password") else "")
    url = (f"postgresql+psycopg://{auth}@{info.get('host', '127.0.0.1')}:"
           f"{info.get('port', 5432)}/{name}")
    try:
        yield url
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


@contextlib.contextmanager
def start(setup: Setup, args: argparse.Namespace, tmp: Path) -> Iterator[Server]:
    """Start ``setup`` from nothing (database, tenant, content, server); tear it all down after."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / f"metrics-{setup.name}")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    log_path = tmp / f"{setup.name}.log"
    with contextlib.ExitStack() as stack:
        details: dict[str, Any] = {}
        api_key = "tk_reference"
        if setup.kind == "reference":
            command = [sys.executable, str(ROOT / "bench" / "reference_app.py")]
        else:
            if setup.kind == "sqlite":
                url = f"sqlite:///{tmp / f'{setup.name}.db'}"
            else:
                url = stack.enter_context(postgres_database(args.pg_dsn))
                flush_redis(args.redis_url)
                stack.callback(flush_redis, args.redis_url)
                env["TUTOR_REDIS_URL"] = args.redis_url
            env.update(setting.split("=", 1) for setting in args.server_env)
            details = {"database_url": url, "state_store": env.get("TUTOR_REDIS_URL",
                                                                   "in-process")}
            began = time.perf_counter()
            created = json.loads(tutor(["tenant", "create", "load", "--json",
                                        "--database-url", url], env))
            api_key = created["api_key"]
            tutor(["content", "import", str(MATH_PACK), "--tenant", "load", "--database-url",
                   url], env)
            details["provision_s"] = round(time.perf_counter() - began, 2)
            command = [str(VENV_BIN / "tutor"), "serve", "--database-url", url]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(setup.workers)]
        began = time.perf_counter()
        with log_path.open("wb") as out:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(stop, process)
        wait_ready(port, process, log_path)
        yield Server(setup, port, api_key, process, log_path,
                     round(time.perf_counter() - began, 2), details)


# ---------------------------------------------------------------------------------- CPU
# The machine is small and shared (other users' test runs land on the same cores), so every
# rate records who used the CPU meanwhile: the client, the server under test, its database and
# Redis, and everything else. A run with a busy "other" column measured the neighbours too.
SERVICES = ("postgres", "redis-server")  # process names (comm) of the setups' back ends


@dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU seconds at one moment (differences of two give the use in between)."""

    wall: float
    client: float
    server: float
    services: float
    machine_busy: float
    server_pids: frozenset[int]  # a pid new in a later sample is a worker (re)started meanwhile


def cpu_sample(server_pgid: int) -> CpuSample:
    """Read /proc once: the server's process group (it and its workers), the back-end services
    by name, and the machine's busy time (all cores, idle and iowait excluded). Linux only; the
    columns read 0 elsewhere."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    server = services = busy = 0
    pids: set[int] = set()
    with contextlib.suppress(OSError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        busy = sum(values) - values[3] - values[4]
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            comm = stat[stat.find("(") + 1:stat.rfind(")")]
            fields = stat[stat.rfind(")") + 2:].split()  # from "state" on
            ticks = int(fields[11]) + int(fields[12])  # utime + stime
            if int(fields[2]) == server_pgid:
                server += ticks
                pids.add(int(pid))
            elif comm.startswith(SERVICES):
                services += ticks
    return CpuSample(time.perf_counter(), time.process_time(), server / hz, services / hz,
                     busy / hz, frozenset(pids))


def cpu_use(before: CpuSample, after: CpuSample, requests: int) -> dict[str, float]:
    """Each party's CPU between two samples, in % of one core (a 2-core machine tops at 200)."""
    wall = after.wall - before.wall
    # a process that exits meanwhile (a PostgreSQL backend, a restarted worker) takes its
    # ticks with it, so a difference can come out below zero: clamp
    parts = {name: max(0.0, getattr(after, name) - getattr(before, name))
             for name in ("client", "server", "services", "machine_busy")}
    other = parts["machine_busy"] - parts["client"] - parts["server"] - parts["services"]
    return {
        "client_cpu_pct": round(100 * parts["client"] / wall, 1),
        "client_cpu_us_per_req": round(1e6 * parts["client"] / requests, 1),
        "server_cpu_pct": round(100 * parts["server"] / wall, 1),
        "server_cpu_us_per_req": round(1e6 * parts["server"] / requests, 1),
        "services_cpu_pct": round(100 * parts["services"] / wall, 1),
        "other_cpu_pct": round(100 * max(other, 0.0) / wall, 1),
        "machine_cpu_pct": round(100 * parts["machine_busy"] / wall, 1),
        # uvicorn's supervisor kills and restarts a worker that misses its 5 s health check:
        # the requests in flight on it fail, and the new one starts cold
        "server_processes_started": len(after.server_pids - before.server_pids),
    }


async def wait_quiet(pgid: int, limit_pct: float, max_wait: float) -> tuple[float, float]:
    """Wait (at most ``max_wait`` s) until the machine, our idle server included, is busy under
    ``limit_pct`` of one core over half a second: a neighbour's test run in full swing would
    otherwise be measured as our server's latency. Returns (seconds waited, last busy %)."""
    began = time.perf_counter()
    while True:
        before = cpu_sample(pgid)
        await asyncio.sleep(0.5)
        after = cpu_sample(pgid)
        busy = 100 * (after.machine_busy - before.machine_busy) / (after.wall - before.wall)
        waited = time.perf_counter() - began
        if busy < limit_pct or waited >= max_wait:
            return round(waited, 1), round(busy, 1)


# ---------------------------------------------------------------------------------- client
class Sender(Protocol):
    """One in-flight request at a time: a worker coroutine of the load generator owns one."""

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]: ...

    async def close(self) -> None: ...


class RawSender:
    """HTTP/1.1 over one keep-alive asyncio stream, request bytes built by hand.

    The client shares the machine's cores with the server, so every microsecond it spends is
    taken from the server under test; this costs a fraction of httpx's CPU per request (see
    bench/README.md). It speaks only what the benchmark needs: requests with a body, responses
    with ``content-length``.
    """

    def __init__(self, host: str, port: int, headers: bytes) -> None:
        self._host, self._port, self._headers = host, port, headers
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0

    async def post(self, path: bytes, body: bytes,
                   headers: bytes | None = None) -> tuple[int, bytes]:
        """``POST path`` with ``body``; ``headers`` (each ``Name: value\\r\\n``) replace the
        sender's own for this request (bench/key_flood.py sends a random key each time)."""
        now = time.monotonic()
        if self._writer is None or now - self._used > IDLE_REUSE_S:
            await self.close()
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._used = now
        assert self._reader is not None
        try:
            self._writer.write(b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
                               % (path, self._headers if headers is None else headers,
                                  len(body), body))
            head = (await self._reader.readuntil(b"\r\n\r\n")).lower()
            status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                raise ConnectionError("response without content-length")
            length = int(head[at + 17:head.index(b"\r\n", at + 2)])
            payload = await self._reader.readexactly(length)
        except BaseException:
            await self.close()  # a half-read response leaves the stream unusable
            raise
        if b"\r\nconnection: close" in head:
            await self.close()
        return status, payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


class HttpxSender:
    """The same request through a shared ``httpx.AsyncClient`` (``--client httpx``), kept to
    compare the raw client with the usual one."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self._client, self._headers = client, headers

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        response = await self._client.post(path.decode(), content=body, headers=self._headers)
        return response.status_code, response.content

    async def close(self) -> None:
        return None


# outcome codes besides an HTTP status
TIMEOUT, DROPPED, CONN_ERROR, NOT_RUN = -1, -2, -3, 0


@dataclass
class Run:
    """One rate's scheduled requests and what became of each (index = schedule order)."""

    rate: float
    t0: float  # time.perf_counter() of request 0's scheduled send
    count: int
    latency: np.ndarray  # seconds from the scheduled time to the end (response or giving up)
    outcome: np.ndarray  # HTTP status, or TIMEOUT / DROPPED / CONN_ERROR
    end: np.ndarray  # perf_counter time the request ended
    done: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class LoadGenerator:
    """Open-loop answers from a pool of learners through ``connections`` worker coroutines.

    The scheduler enqueues request indices as their scheduled times pass; a free worker takes
    the oldest. A request still queued ``timeout`` seconds after its scheduled time is dropped
    unsent (a real client would have given up), and one in flight that long is cancelled: both
    are timeouts. So the connection pool, not an unbounded number of sockets, caps concurrency,
    and a run that falls behind ends at most ``timeout`` seconds late.
    """

    def __init__(self, args: argparse.Namespace, port: int, api_key: str,
                 items: list[str]) -> None:
        self.rng = random.Random(args.seed)
        self.items = items
        self.p_correct = args.p_correct
        self.timeout = args.timeout
        self.paths = [f"/v1/learners/load-{i:05d}/answers".encode() for i in range(args.learners)]
        self.next_item: list[str | None] = [None] * args.learners
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.run: Run | None = None
        self._httpx: Any = None
        headers = {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {api_key}",
                   "Content-Type": "application/json"}
        if args.client == "httpx":
            import httpx

            self._httpx = httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=None,
                limits=httpx.Limits(max_connections=args.connections,
                                    max_keepalive_connections=args.connections))
            self.senders: list[Sender] = [HttpxSender(self._httpx, headers)
                                          for _ in range(args.connections)]
        else:
            raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
            self.senders = [RawSender("127.0.0.1", port, raw) for _ in range(args.connections)]
        self.workers = [asyncio.create_task(self._work(s)) for s in self.senders]

    async def close(self) -> None:
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        for sender in self.senders:
            await sender.close()
        if self._httpx is not None:
            await self._httpx.aclose()

    def _finish(self, run: Run, index: int, outcome: int, now: float) -> None:
        run.latency[index] = now - (run.t0 + index / run.rate)
        run.outcome[index] = outcome
        run.end[index] = now
        run.done += 1
        if run.done == run.count:
            run.finished.set()

    async def _work(self, sender: Sender) -> None:
        clock, rng = time.perf_counter, self.rng
        while True:
            index = await self.queue.get()
            run = self.run
            assert run is not None
            left = run.t0 + index / run.rate + self.timeout - clock()
            if left <= 0:
                self._finish(run, index, DROPPED, clock())
                continue
            learner = rng.randrange(len(self.paths))
            item = self.next_item[learner] or rng.choice(self.items)
            body = orjson.dumps({"item_id": item, "correct": rng.random() < self.p_correct,
                                 "event_id": str(uuid4())})
            try:
                async with asyncio.timeout(left):
                    status, payload = await sender.post(self.paths[learner], body)
            except TimeoutError:
                self._finish(run, index, TIMEOUT, clock())
                continue
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                    ValueError):
                self._finish(run, index, CONN_ERROR, clock())
                continue
            self._finish(run, index, status, clock())
            if status == 200:
                # answer the exercise the engine chose, as a learner would; the reference app's
                # constant names one too, so both setups pay the same parsing
                chosen = orjson.loads(payload).get("next")
                self.next_item[learner] = chosen["item"] if chosen else None

    async def load(self, rate: float, duration: float) -> Run:
        """Schedule ``rate * duration`` requests at ``t0 + i / rate``; return when all ended.

        Times come from ``time.perf_counter``: uvloop's ``loop.time()`` has a resolution of
        one millisecond, too coarse for latencies of a few.
        """
        clock = time.perf_counter
        count = max(1, round(rate * duration))
        run = Run(rate, clock() + 0.05, count, np.full(count, np.nan),
                  np.full(count, NOT_RUN, dtype=np.int32), np.full(count, np.nan))
        self.run = run
        sent = 0
        while sent < count:
            due = min(count, int((clock() - run.t0) * rate) + 1)
            for index in range(sent, due):
                self.queue.put_nowait(index)
            sent = max(sent, due)
            # libuv timers tick in whole milliseconds, and a shorter sleep spins the loop (it
            # cost the client ~0.6 ms of CPU per request at 250/s): sleep at least 1 ms. A late
            # wake-up only batches the next sends; their latency still counts from their own
            # scheduled times
            await asyncio.sleep(max(0.001, run.t0 + sent / rate - clock()))
        await asyncio.wait_for(run.finished.wait(), self.timeout + 30)
        return run


# ---------------------------------------------------------------------------------- stats
def summarize(run: Run, duration: float, cpu: dict[str, float]) -> dict[str, Any]:
    """Throughput, latency percentiles (over every scheduled request: timeouts count at the
    time they were given up, so an overloaded run cannot look fast) and errors by kind."""
    ok = (run.outcome >= 200) & (run.outcome < 300)
    n_ok = int(ok.sum())
    # achieved: successful answers over the time from the first scheduled send to the last
    # success; a run that keeps up ends ~one latency after its schedule, one that falls behind
    # keeps completing at the server's own pace
    span = float(np.nanmax(run.end[ok]) - run.t0) if n_ok else duration
    achieved = n_ok / max(span, duration)
    ms = run.latency * 1000.0
    errors: Counter[str] = Counter()
    for code, n in zip(*np.unique(run.outcome[~ok], return_counts=True), strict=True):
        kind = {TIMEOUT: "timeout", DROPPED: "timeout_unsent", CONN_ERROR: "connection",
                NOT_RUN: "not_run"}.get(int(code), f"http_{int(code)}")
        errors[kind] += int(n)
    p50, p95, p99 = (float(np.percentile(ms, q, method="higher")) for q in (50, 95, 99))
    held = achieved >= HELD_FRACTION * run.rate and p99 <= HELD_P99_MS
    return {
        "offered_per_s": run.rate, "scheduled": run.count, "ok": n_ok,
        "achieved_per_s": round(achieved, 1),
        "p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "p99_ms": round(p99, 2),
        "max_ms": round(float(np.max(ms)), 2), "mean_ms": round(float(np.mean(ms)), 2),
        "errors": sum(errors.values()), "errors_by_kind": dict(errors), "held": bool(held),
        **cpu,
    }


async def measure(gen: LoadGenerator, server: Server, rate: float,
                  args: argparse.Namespace) -> dict[str, Any]:
    """One rate, after waiting for a quiet machine, with who used the CPU meanwhile."""
    pgid = server.process.pid
    waited, busy = await wait_quiet(pgid, args.quiet_below, args.quiet_wait)
    before = cpu_sample(pgid)
    run = await gen.load(rate, args.duration)
    cpu = cpu_use(before, cpu_sample(pgid), run.count)
    return {**summarize(run, args.duration, cpu), "quiet_wait_s": waited,
            "machine_cpu_pct_before": busy}


async def sweep(server: Server, args: argparse.Namespace, items: list[str]) -> dict[str, Any]:
    """Warm up, then every rate in order, stopping after the first one not held (beyond
    saturation the rest only queue, and they cost minutes) but not before the setup's target
    rate, so that its target is always checked; ``--all-rates`` runs them all."""
    gen = LoadGenerator(args, server.port, server.api_key, items)
    results: list[dict[str, Any]] = []
    try:
        if args.warmup > 0:
            warm = await gen.load(min(args.rates), args.warmup)
            bad = int(((warm.outcome < 200) | (warm.outcome >= 300)).sum())
            log(f"  warm-up {args.warmup:g} s at {min(args.rates):g}/s: {bad} errors")
            await asyncio.sleep(args.pause)
        for rate in args.rates:
            result = await measure(gen, server, rate, args)
            results.append(result)
            restarted = result["server_processes_started"]
            log(f"  {rate:>5g}/s: achieved {result['achieved_per_s']:.0f}/s, p50 "
                f"{result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} max {result['max_ms']:.0f}"
                f" ms, {result['errors']} errors; CPU client {result['client_cpu_pct']:.0f}%"
                f" server {result['server_cpu_pct']:.0f}% db {result['services_cpu_pct']:.0f}%"
                f" other {result['other_cpu_pct']:.0f}% (waited {result['quiet_wait_s']:g} s)"
                f"{f'; {restarted} server process(es) started' if restarted else ''}"
                f"{'' if result['held'] else '  (not held)'}")
            await asyncio.sleep(args.pause)
            target = server.setup.target_rate
            if not result["held"] and not args.all_rates and (
                    target is None or rate >= target or target not in args.rates):
                break
    finally:
        await gen.close()
    held = [r["offered_per_s"] for r in results if r["held"]]
    ceiling = bool(results) and results[-1]["held"] and results[-1]["offered_per_s"] == max(
        args.rates)
    # the server's own output (warnings, tracebacks) explains errors the client only counts
    server_log = server.log_path.read_text(errors="replace")[-3000:]
    return {"label": server.setup.label, "kind": server.setup.kind,
            "workers": server.setup.workers, "startup_s": server.startup_s, **server.details,
            "rates": results, "saturation_per_s": max(held) if held else None,
            # every rate tried was held: the true saturation lies above the highest one
            "saturation_is_lower_bound": ceiling, "server_log_tail": server_log}


# ---------------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    """What the numbers were measured on: they mean little without it."""
    cpu = cpu_model()
    versions = {}
    for package in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "pydantic",
                    "SQLAlchemy", "psycopg", "redis", "httpx"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "packages": versions}


def source_digest() -> str:
    """SHA-256 over the server's Python sources: other people edit them while benchmarks run,
    and a run is only comparable with another of the same code (checked at start and end)."""
    digest = hashlib.sha256()
    for path in sorted(p for d in ("api", "engine", "content") for p in (ROOT / d).rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def service_versions(args: argparse.Namespace, setups: list[str]) -> dict[str, str]:
    """PostgreSQL's and Redis's versions and durability settings, when used."""
    found: dict[str, str] = {}
    if "pg-redis-2w" not in setups:
        return found
    import psycopg
    import redis

    with psycopg.connect(args.pg_dsn) as conn:
        for setting in ("server_version", "synchronous_commit", "fsync"):
            row = conn.execute(f"SHOW {setting}").fetchone()
            found[f"postgres_{setting}"] = str(row[0]) if row else "?"
    client = redis.Redis.from_url(args.redis_url)
    found["redis_version"] = str(client.info("server")["redis_version"])
    client.close()
    return found


def table(results: dict[str, Any]) -> str:
    lines = ["| setup | offered/s | achieved/s | p50 ms | p95 ms | p99 ms | max ms | errors "
             "| held | CPU client | CPU server | CPU db+redis | CPU other |",
             "|---|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|"]
    for name, res in results.items():
        for r in res["rates"]:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(r["errors_by_kind"].items()))
            if r["server_processes_started"]:
                kinds += f"{'; ' if kinds else ''}{r['server_processes_started']} worker restart"
            lines.append(
                f"| {name} | {r['offered_per_s']:g} | {r['achieved_per_s']:.0f} "
                f"| {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
                f"| {r['max_ms']:.0f} | {r['errors']}{f' ({kinds})' if kinds else ''} "
                f"| {'yes' if r['held'] else 'no'} | {r['client_cpu_pct']:.0f}% "
                f"| {r['server_cpu_pct']:.0f}% | {r['services_cpu_pct']:.0f}% "
                f"| {r['other_cpu_pct']:.0f}% |")
    return "\n".join(lines)


def saturation_text(res: dict[str, Any]) -> str:
    sat = res["saturation_per_s"]
    if sat is None:
        return "none (no rate held)"
    return f"{'>= ' if res['saturation_is_lower_bound'] else ''}{sat:g}/s"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what this run measured and whether it is met."""

    def at(name: str, rate: float) -> dict[str, Any] | None:
        res = results.get(name)
        return next((r for r in res["rates"] if r["offered_per_s"] == rate), None) \
            if res else None

    out = []
    pg = at("pg-redis-2w", 500)
    out.append({"target": "PostgreSQL+Redis, 2 workers: p99 <= 20 ms at 500/s, zero errors",
                "measured": None if pg is None else f"p99 {pg['p99_ms']:.1f} ms, "
                                                    f"{pg['errors']} errors",
                "met": None if pg is None else pg["p99_ms"] <= 20 and pg["errors"] == 0})
    lite = at("sqlite-1w", 250)
    out.append({"target": "SQLite, 1 worker: p99 <= 20 ms at 250/s",
                "measured": None if lite is None else f"p99 {lite['p99_ms']:.1f} ms, "
                                                      f"{lite['errors']} errors",
                "met": None if lite is None else lite["p99_ms"] <= 20})
    if "pg-redis-2w" in results and "reference-2w" in results:
        mine = results["pg-redis-2w"]["saturation_per_s"] or 0
        ref = results["reference-2w"]["saturation_per_s"]
        ratio = mine / ref if ref else None
        bound = results["reference-2w"]["saturation_is_lower_bound"]
        out.append({"target": "saturation(PostgreSQL+Redis 2w) >= 50% of reference 2w's",
                    "measured": None if ratio is None else
                    f"{mine:g} / {'>= ' if bound else ''}{ref:g} = "
                    f"{'<= ' if bound else ''}{100 * ratio:.0f}%",
                    "ratio": ratio, "ratio_is_upper_bound": bound,
                    "met": None if ratio is None else ratio >= 0.5})
    return out


# ---------------------------------------------------------------------------------- main
def add_server_options(parser: argparse.ArgumentParser, redis_url: str) -> None:
    """The options of a benchmark that starts its servers with :func:`start` (this one and
    bench/noisy_neighbour.py): the wait for a quiet machine, the back ends, the settings."""
    parser.add_argument("--quiet-below", type=float, default=30.0,
                        help="before each measurement, wait until the machine is busy under "
                             "this %% of one core (other users' jobs share it) ...")
    parser.add_argument("--quiet-wait", type=float, default=10.0,
                        help="... but at most this many seconds")
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                            "dbname=postgres",
                        help="libpq DSN of a role that may CREATE DATABASE")
    parser.add_argument("--redis-url", default=redis_url,
                        help="Redis database for states; FLUSHDB before and after")
    parser.add_argument("--server-env", nargs="+", default=[], metavar="TUTOR_NAME=VALUE",
                        help="settings for the engine servers (e.g. TUTOR_THREADS=8); the "
                             "servers otherwise inherit no TUTOR_* variable")


def check_server_env(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for setting in args.server_env:
        name, sep, _ = setting.partition("=")
        if not sep or not name.startswith("TUTOR_"):
            parser.error(f"--server-env takes TUTOR_NAME=VALUE, got {setting!r}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Open-loop load benchmark of POST /v1/learners/{id}/answers over several "
                    "server setups (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=DEFAULT_RATES,
                        help="offered answers/s, in increasing order")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured per rate")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of load at the lowest rate before measuring each setup")
    parser.add_argument("--pause", type=float, default=1.0, help="idle seconds between rates")
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=list(SETUPS),
                        help="which setups, in this order")
    parser.add_argument("--all-rates", action="store_true",
                        help="keep going after the first rate not held")
    parser.add_argument("--learners", type=int, default=2000, help="learner pool size")
    parser.add_argument("--p-correct", type=float, default=0.7,
                        help="probability that an answer is correct")
    parser.add_argument("--connections", type=int, default=256,
                        help="keep-alive connections (= most requests in flight)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds from a request's scheduled time until it counts as a "
                             "timeout")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="HTTP client: hand-written asyncio streams, or httpx.AsyncClient")
    parser.add_argument("--seed", type=int, default=0)
    add_server_options(parser, "redis://127.0.0.1:6379/14")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "load.json")
    args = parser.parse_args()
    check_server_env(parser, args)
    if sorted(args.rates) != args.rates:
        parser.error("--rates must be increasing")
    return args


async def run_all(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    items = [item["id"] for item in json.loads(MATH_PACK.read_text())["items"]]
    results: dict[str, Any] = {}
    for name in args.setups:
        setup = SETUPS[name]
        log(f"{name}: {setup.label}: starting")
        with start(setup, args, tmp) as server:
            log(f"{name}: ready on port {server.port} after {server.startup_s:.1f} s")
            results[name] = await sweep(server, args, items)
    return results


def main() -> None:
    args = parse_args()
    try:
        import uvloop

        run_loop: Any = uvloop.run  # the client's own overhead matters: it shares the cores
        loop_name = "uvloop"
    except ImportError:
        run_loop, loop_name = asyncio.run, "asyncio"
    info = machine()
    info.update(service_versions(args, args.setups))
    code_before = source_digest()
    tmp = Path(tempfile.mkdtemp(prefix="tutor-load-"))
    try:
        results = run_loop(run_all(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    goals = targets(results)
    code = {"source_digest": code_before, "changed_during_run": source_digest() != code_before}
    if code["changed_during_run"]:
        log("warning: api/, engine/ or content/ changed during the run; setups started at "
            "different times may have run different code")

    changed = " (CHANGED during the run)" if code["changed_during_run"] else ""
    print("\n## Load benchmark: POST /v1/learners/{id}/answers, open loop\n")
    print(f"{info['nproc']} CPUs ({info['cpu']}), shared by the client and the server; "
          f"{args.duration:g} s per rate, {args.learners} learners, {args.connections} "
          f"connections, {args.client} client on {loop_name}; latency from the scheduled "
          f"send time. CPU columns: % of one core (the machine has {info['nproc'] * 100}%); "
          f"'other' is everything else on the machine, e.g. other users' jobs. Sources "
          f"{code['source_digest']}{changed}.\n")
    print(table(results))
    print("\n| setup | saturation (highest rate held: >= 95% achieved, p99 <= 100 ms) |")
    print("|---|---|")
    for name, res in results.items():
        print(f"| {name} ({res['label']}) | {saturation_text(res)} |")
    print("\n| target | measured | met |")
    print("|---|---|:-:|")
    for goal in goals:
        met = {True: "yes", False: "**no**", None: "not measured"}[goal["met"]]
        print(f"| {goal['target']} | {goal['measured'] or '-'} | {met} |")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    args.out.write_text(json.dumps({
        "benchmark": "load", "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info, "client_loop": loop_name, "options": options, "code": code,
        "held_rule": {"achieved_fraction": HELD_FRACTION, "p99_ms": HELD_P99_MS},
        "setups": results, "targets": goals,
    }, indent=2) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
