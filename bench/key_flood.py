"""Key flood (issue 12 B3): a legitimate client's latency with and without a flood of random
API keys, paired in one run.

One ``pg-redis-2w`` server (PostgreSQL + Redis, 2 workers, as ``bench/load.py`` starts it) takes
the legitimate open-loop answers of ``bench/load.py``'s client at ``--rate`` for ``--duration``
seconds, alone and then beside a flood of answers each carrying a fresh random key at
``--flood-rate`` (open loop over ``--flood-connections`` connections, from a process of its
own; a flood request that finds no free connection within a second is dropped and counted).
The two phases alternate, ``--repeat`` pairs, the order swapped every pair, so both sides of
a ratio see the same machine. Target: the legitimate p99 with the flood within 2x of the p99
without.

Besides latency, each phase records the database's transactions (``pg_stat_database``) per
flood request: before issue 12 every unknown key cost one.

Run from the repository root: ``.venv/bin/python bench/key_flood.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from load import (
    MATH_PACK,
    ROOT,
    SETUPS,
    LoadGenerator,
    RawSender,
    Server,
    cpu_sample,
    cpu_use,
    log,
    machine,
    source_digest,
    start,
    summarize,
    wait_quiet,
)

TARGET_RATIO = 2.0
DROP_AFTER_S = 1.0  # a flood request waiting longer than this for a connection is dropped


class Flood:
    """Answers with random API keys at ``rate`` per second, open loop, until stopped."""

    def __init__(self, port: int, rate: float, connections: int) -> None:
        self.rate = rate
        self.path = b"/v1/learners/flood/answers"
        self.body = (b'{"item_id": "math.counting.01", "correct": true, '
                     b'"event_id": "00000000-0000-4000-8000-000000000000"}')
        self.host = f"Host: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n".encode()
        self.free: asyncio.Queue[RawSender] = asyncio.Queue()
        for _ in range(connections):
            self.free.put_nowait(RawSender("127.0.0.1", port, self.host))
        self.outcomes: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _one(self) -> None:
        try:
            sender = await asyncio.wait_for(self.free.get(), DROP_AFTER_S)
        except TimeoutError:
            self.outcomes["dropped"] += 1
            return
        headers = self.host + b"Authorization: Bearer tk_%s\r\n" % secrets.token_urlsafe(
            32).encode()
        try:
            status, _ = await sender.post(self.path, self.body, headers)
            self.outcomes[f"http_{status}"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.outcomes["connection"] += 1
        finally:
            self.free.put_nowait(sender)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Flood]:
        stopping = asyncio.Event()

        async def schedule() -> None:
            t0, sent = time.perf_counter(), 0
            while not stopping.is_set():
                due = int((time.perf_counter() - t0) * self.rate) + 1
                for _ in range(sent, due):
                    task = asyncio.create_task(self._one())
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                sent = max(sent, due)
                await asyncio.sleep(max(0.001, t0 + sent / self.rate - time.perf_counter()))

        scheduler = asyncio.create_task(schedule())
        try:
            yield self
        finally:
            stopping.set()
            await scheduler
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        while not self.free.empty():
            await self.free.get_nowait().close()


async def flood_for(args: argparse.Namespace) -> dict[str, Any]:
    """The flood alone, for ``--flood-seconds`` (run as a process of its own: its CPU must not
    delay the legitimate client's event loop, whose latency is what is measured)."""
    flood = Flood(args.flood_port, args.flood_rate, args.flood_connections)
    began = time.perf_counter()
    async with flood.running():
        await asyncio.sleep(args.flood_seconds)
    seconds = time.perf_counter() - began
    await flood.close()
    return {"seconds": seconds, "outcomes": dict(flood.outcomes)}


def start_flood(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """This script as a flood process on ``port``, for as long as a phase lasts."""
    return subprocess.Popen(
        [sys.executable, __file__, "--flood-port", str(port), "--flood-seconds",
         str(args.duration + args.timeout), "--flood-rate", str(args.flood_rate),
         "--flood-connections", str(args.flood_connections)], stdout=subprocess.PIPE)


def transactions(dsn: str, database: str) -> int:
    """Transactions committed and rolled back in ``database`` so far (the statistics are
    flushed by backends at most about once a second: phases are long enough to see them)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                           "WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


async def phase(gen: LoadGenerator, server: Server, args: argparse.Namespace,
                flooded: bool) -> dict[str, Any]:
    """One measured phase: the legitimate load, with the flood beside it or not."""
    database = server.details["database_url"].rsplit("/", 1)[1]
    waited, busy = await wait_quiet(server.process.pid, args.quiet_below, args.quiet_wait)
    xacts = await asyncio.to_thread(transactions, args.pg_dsn, database)
    flood = start_flood(server.port, args) if flooded else None
    if flood is not None:
        await asyncio.sleep(0.5)  # its start-up (imports) before the measured load
    before = cpu_sample(server.process.pid)
    began = time.perf_counter()
    run = await gen.load(args.rate, args.duration)
    seconds = time.perf_counter() - began
    cpu = cpu_use(before, cpu_sample(server.process.pid), run.count)
    outcomes: Counter[str] = Counter()
    if flood is not None:
        out, _ = await asyncio.to_thread(flood.communicate)
        flooded_for = json.loads(out)
        outcomes.update(flooded_for["outcomes"])
        seconds = flooded_for["seconds"]
    await asyncio.sleep(1.2)  # the backends' statistics reach pg_stat_database
    xacts = await asyncio.to_thread(transactions, args.pg_dsn, database) - xacts
    sent = sum(outcomes.values()) - outcomes["dropped"]
    result = {**summarize(run, args.duration, cpu), "flooded": flooded,
              "flood_sent_per_s": round(sent / seconds, 1),
              "flood_outcomes": dict(outcomes),
              "db_transactions": xacts, "db_transactions_per_s": round(xacts / seconds, 1),
              "quiet_wait_s": waited, "machine_cpu_pct_before": busy}
    log(f"  {'with' if flooded else 'without'} flood: p50 {result['p50_ms']:.1f} p99 "
        f"{result['p99_ms']:.1f} ms, {result['errors']} errors; flood {sent / seconds:.0f}/s "
        f"{dict(outcomes)}; {xacts / seconds:.0f} db transactions/s; CPU server "
        f"{result['server_cpu_pct']:.0f}% other {result['other_cpu_pct']:.0f}%")
    return result


async def run(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    items = [item["id"] for item in json.loads(MATH_PACK.read_text())["items"]]
    pairs = []
    with start(SETUPS["pg-redis-2w"], args, tmp) as server:
        log(f"pg-redis-2w ready on port {server.port}")
        gen = LoadGenerator(args, server.port, server.api_key, items)
        try:
            await gen.load(args.rate, args.warmup)  # caches, learner rows, JIT
            for i in range(args.repeat):
                order = (False, True) if i % 2 == 0 else (True, False)
                log(f"pair {i + 1} of {args.repeat}")
                done = {flooded: await phase(gen, server, args, flooded) for flooded in order}
                ratio = done[True]["p99_ms"] / done[False]["p99_ms"]
                pairs.append({"without": done[False], "with": done[True],
                              "p99_ratio": round(ratio, 2), "met": ratio <= TARGET_RATIO})
        finally:
            await gen.close()
    return pairs


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A legitimate client's answer latency with and without a flood of random "
                    "API keys, paired phases on one PostgreSQL + Redis server (see "
                    "bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="legitimate answers per second (open loop)")
    parser.add_argument("--flood-rate", type=float, default=1000.0,
                        help="requests with random keys per second")
    parser.add_argument("--flood-connections", type=int, default=256,
                        help="connections of the flood (each refused key waits up to 0.1 s "
                             "for its worker's next look-up: 1,000/s needs over 100)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--repeat", type=int, default=2, help="pairs of phases")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--quiet-below", type=float, default=30.0,
                        help="before each phase, wait until the machine is busy under this %% "
                             "of one core ...")
    parser.add_argument("--quiet-wait", type=float, default=10.0,
                        help="... but at most this many seconds")
    parser.add_argument("--learners", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=64,
                        help="the legitimate client's connections")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                            "dbname=postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9",
                        help="Redis database for states; FLUSHDB before and after")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the table")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "key_flood.json")
    # (the flood process's own options: start_flood)
    parser.add_argument("--flood-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--flood-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # what bench/load.py's client and start() read
    args.p_correct, args.client, args.server_env = 0.7, "raw", []
    return args


def main() -> None:
    args = parse_args()
    if args.flood_port is not None:  # the flood process (start_flood)
        sys.stdout.write(json.dumps(asyncio.run(flood_for(args))) + "\n")
        return
    code_before = source_digest()
    with tempfile.TemporaryDirectory(prefix="tutor-flood-") as tmp:
        pairs = asyncio.run(run(args, Path(tmp)))
    report = {"benchmark": "key_flood", "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": machine(), "options": {k: str(v) if isinstance(v, Path) else v
                                                for k, v in vars(args).items()},
              "code": {"source_digest": code_before,
                       "changed_during_run": source_digest() != code_before},
              "pairs": pairs, "met": all(p["met"] for p in pairs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")
    if args.json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    print(f"\n## Key flood: legitimate answers at {args.rate:g}/s, random keys at "
          f"{args.flood_rate:g}/s (PostgreSQL + Redis, 2 workers)\n")
    print("| pair | p50 / p99 ms without | p50 / p99 ms with flood | p99 ratio | flood sent/s "
          "| flood 401 | db transactions/s without / with | CPU other % | met (<= 2x) |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|:-:|")
    for i, p in enumerate(pairs, 1):
        a, b = p["without"], p["with"]
        print(f"| {i} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} | {b['p50_ms']:.1f} / "
              f"{b['p99_ms']:.1f} | {p['p99_ratio']:.2f} | {b['flood_sent_per_s']:.0f} | "
              f"{b['flood_outcomes'].get('http_401', 0)} | {a['db_transactions_per_s']:.0f} / "
              f"{b['db_transactions_per_s']:.0f} | {a['other_cpu_pct']:.0f} / "
              f"{b['other_cpu_pct']:.0f} | {'yes' if p['met'] else '**no**'} |")


if __name__ == "__main__":
    main()
