"""Noisy-neighbour benchmark (issue 20): does one tenant's most expensive use of the API slow
another tenant's answers, and does it grow the workers' memory without bound?

One real server (PostgreSQL + Redis, 2 workers: bench/load.py's ``pg-redis-2w`` setup) holds
three tenants. The **quiet** tenant (``load``, the math pack) answers at a fixed open-loop rate
through bench/load.py's load generator (latency from each request's scheduled time). Phases
alternate, quiet then noisy, ``--rounds`` times in one run (the machine is small and shared, so
only a ratio of numbers from the same run means something). In a noisy phase, from a process
of its own (its client work must not delay the quiet generator's event loop), the noisy
tenants meanwhile do, each in a closed loop:

- ``noisy``: (1) re-import the largest pack the server allows (``TUTOR_MAX_CONTENT_ITEMS``
  calibrated items, courses of up to ``TUTOR_MAX_PLACEMENT_ITEMS`` items; every import bumps
  the content version, so every worker reloads the catalog); (2) ``--placers`` clients each
  start placement tests for new learners, in random courses with random ``max_length`` and
  ``se_target`` (each a new stop rule), and poll ``GET /placement`` and ``GET /next`` before
  every answer; (4) create an experiment, then stop it, again and again (one running at a time).
- ``noisy-timed``: (3) one learner answering distinct items of the same pack with the
  time-aware tracer ``timed`` (fitted by ``tutor fit`` on a generated log, then ``tutor model
  register``), whose state keeps entries per item practised; before the phases it is filled
  with ``--distinct-items`` distinct items by xAPI batches.

Reported: the quiet tenant's p50/p99 in quiet and in noisy phases (each phase, and pooled by
kind) and the ratio noisy p99 / quiet p99 (target: at most 2), every 5xx of any tenant (target:
0), the noisy clients' own request counts and latencies, and each worker's resident memory
(``VmRSS``, sampled every ``--rss-every`` s from the server's process group) against the bound
checked here: the worker's resident memory once both noisy tenants' content and the distinct
learner's state are loaded in it (the baseline, before the phases) plus
``TUTOR_PLACEMENT_CACHE_BYTES`` (the cache the noisy tenant fills by its choice of placement
courses) plus ``--headroom-mb``.

Run from the repository root: ``.venv/bin/python bench/noisy_neighbour.py [--help]``; about
3.5 minutes with the defaults. Writes bench/results/noisy_neighbour.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import pairwise
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
from load import (
    MATH_PACK,
    ROOT,
    SETUPS,
    LoadGenerator,
    Server,
    add_server_options,
    check_server_env,
    cpu_sample,
    cpu_use,
    log,
    machine,
    service_versions,
    source_digest,
    start,
    summarize,
    tutor,
    wait_quiet,
)

from api.settings import Settings

SETUP = SETUPS["pg-redis-2w"]
NOISY, TIMED = "noisy", "noisy-timed"
#: the noisy clients' activities: (1) the largest pack re-imported, (2) placement tests polled,
#: (3) the learner of distinct items, (4) experiment churn
ACTIVITIES = ("import", "placement", "distinct", "experiments")
XAPI_ANSWERED = "http://adlnet.gov/expapi/verbs/answered"


# ---------------------------------------------------------------------------------- content
@dataclass(frozen=True)
class Limits:
    """The server's per-tenant limits this run pushes against (its settings' defaults, or the
    ``--server-env`` values given)."""

    content_items: int
    placement_items: int
    placement_cache_bytes: int
    max_pack_bytes: int
    max_body_bytes: int

    @classmethod
    def of(cls, server_env: list[str]) -> Limits:
        """Read the limits as the server will (``Settings.from_env`` over the TUTOR_* given)."""
        given = dict(setting.split("=", 1) for setting in server_env)
        saved = {name: os.environ.pop(name) for name in list(os.environ)
                 if name.startswith("TUTOR_")}
        try:
            os.environ.update(given)
            settings = Settings.from_env()
        finally:
            for name in given:
                os.environ.pop(name, None)
            os.environ.update(saved)
        return cls(settings.max_content_items, settings.max_placement_items,
                   settings.placement_cache_bytes, settings.max_pack_bytes,
                   settings.max_body_bytes)


def largest_pack(limits: Limits, n_skills: int, seed: int) -> dict[str, Any]:
    """A valid pack of exactly ``limits.content_items`` calibrated items (2PL ``difficulty``
    and ``discrimination``) over ``n_skills`` skills, and three courses: the largest bank a
    placement may draw from, half of it, and a tenth."""
    g = np.random.default_rng(seed)
    skills = [f"nz.s{k:03d}" for k in range(n_skills)]
    n = limits.content_items
    difficulty = np.round(g.normal(0.0, 1.0, n), 3)
    discrimination = np.round(np.clip(g.normal(1.2, 0.25, n), 0.3, None), 3)
    items = [{"id": f"nz.i{i:06d}", "skill": skills[i % n_skills],
              "difficulty": float(difficulty[i]), "discrimination": float(discrimination[i]),
              "prompt": f"exercise {i}", "answer": str(i)} for i in range(n)]
    per_skill = [len(range(k, n, n_skills)) for k in range(n_skills)]
    # the most skills whose items all fit in one placement bank
    widest = max(1, max(k for k in range(n_skills + 1)
                        if sum(per_skill[:k]) <= limits.placement_items))
    courses = [{"id": f"nz.course.{size}", "name": f"{size} skills",
                "skills": skills[offset:offset + size]}
               for size, offset in ((widest, 0), (max(1, widest // 2), n_skills // 3),
                                    (max(1, widest // 10), n_skills // 2))]
    return {"format": "tutor-content-pack", "version": 1, "name": "noisy-largest",
            "title": "the largest pack allowed", "language": "en",
            "skills": [{"id": s, "name": s} for s in skills], "items": items,
            "courses": courses}


def training_log(pack: dict[str, Any], path: Path, learners: int, answers: int,
                 seed: int) -> None:
    """A generic CSV answer log over the pack (every skill present), for ``tutor fit``."""
    rng = random.Random(seed)
    items = pack["items"]
    began = datetime(2026, 1, 1, tzinfo=UTC)
    with path.open("w") as out:
        out.write("learner,item,skills,correct,timestamp\n")
        for learner in range(learners):
            at = began + timedelta(hours=learner)
            for k in range(answers):
                item = items[(learner * answers + k) % len(items)] if k % 2 else \
                    rng.choice(items)
                at += timedelta(seconds=rng.randint(20, 600))
                correct = int(rng.random() < 0.4 + 0.1 * (1 - item["difficulty"]))
                out.write(f"fit-{learner},{item['id']},{item['skill']},{correct},"
                          f"{at.isoformat()}\n")


def provision(server: Server, pack_path: Path, pack: dict[str, Any],
              args: argparse.Namespace, tmp: Path) -> dict[str, str]:
    """The two noisy tenants, with the admin commands the operators use (against the server's
    database while it runs): ``noisy`` on the pack's own BKT, ``noisy-timed`` on a ``timed``
    model fitted on a generated log. Returns their keys."""
    url = server.details["database_url"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    keys = {}
    for name in (NOISY, TIMED):
        keys[name] = json.loads(tutor(["tenant", "create", name, "--json", "--database-url",
                                       url], env))["api_key"]
        tutor(["content", "import", str(pack_path), "--tenant", name, "--database-url", url],
              env)
    if args.distinct_tracer != "timed":
        return keys  # the pack's own BKT
    csv, model = tmp / "timed-train.csv", tmp / "timed-model"
    training_log(pack, csv, args.fit_learners, args.fit_answers, args.seed)
    began = time.perf_counter()
    tutor(["fit", "--model", "timed", "--format", "csv", "--train", str(csv), "--out",
           str(model)], env)
    log(f"  timed model fitted on {args.fit_learners * args.fit_answers} answers in "
        f"{time.perf_counter() - began:.1f} s")
    tutor(["model", "register", str(model), "--tenant", TIMED, "--database-url", url], env)
    return keys


# ---------------------------------------------------------------------------------- noise
@dataclass
class Activity:
    """What one kind of noisy client did: requests by outcome, latencies, counters."""

    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ms = np.array(self.latencies) * 1000.0 if self.latencies else np.zeros(1)
        return {"requests": len(self.latencies), "statuses": dict(self.statuses),
                "p50_ms": round(float(np.percentile(ms, 50)), 1),
                "p99_ms": round(float(np.percentile(ms, 99, method="higher")), 1),
                "max_ms": round(float(ms.max()), 1), **self.counts}


class NoisyClient:
    """One thread's requests for one noisy tenant, timed and counted into an Activity."""

    def __init__(self, port: int, key: str, activity: Activity, lock: threading.Lock) -> None:
        import httpx

        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0,
                                 headers={"Authorization": f"Bearer {key}",
                                          "Content-Type": "application/json"})
        self.activity, self.lock = activity, lock

    def call(self, method: str, path: str, body: Any = None,
             content: bytes | None = None) -> tuple[int, Any]:
        import httpx

        began = time.perf_counter()
        try:
            response = self.http.request(method, path, json=body, content=content)
            status, payload = response.status_code, response.json() if response.content \
                else None
            outcome = str(status)
        except (httpx.HTTPError, ValueError) as exc:
            status, payload, outcome = 0, None, type(exc).__name__
        with self.lock:
            self.activity.latencies.append(time.perf_counter() - began)
            self.activity.statuses[outcome] += 1
        return status, payload


@dataclass(frozen=True)
class NoiseConfig:
    """What the noisy process needs (picklable: it runs in a process of its own)."""

    port: int
    keys: dict[str, str]
    pack_path: str
    courses: list[str]
    placers: int
    activities: tuple[str, ...]  # which of ACTIVITIES run
    first_item: int  # the timed learner's next distinct item
    items: int
    seed: int


def importer(client: NoisyClient, pack: bytes, stop: Event) -> None:
    """(1) The largest allowed pack, imported again and again."""
    while not stop.is_set():
        status, _ = client.call("POST", "/v1/content/packs", content=pack)
        client.activity.counts["imports_ok"] += status == 200


def placer(client: NoisyClient, config: NoiseConfig, index: int, stop: Event) -> None:
    """(2) Placement tests for new learners, each with a new stop rule, polled before every
    answer (``GET /placement`` and ``GET /next``), answered at random until they end."""
    rng = random.Random(config.seed * 1000 + index)
    while not stop.is_set():
        learner = f"placed-{index}-{uuid4().hex[:10]}"
        rule = {"course": rng.choice(config.courses), "max_length": rng.randint(3, 100),
                "se_target": rng.choice([None, round(rng.uniform(0.05, 2.0), 3)])}
        status, test = client.call("POST", f"/v1/learners/{learner}/placement", rule)
        if status != 201:
            continue
        client.activity.counts["tests_started"] += 1
        while not stop.is_set():
            status, test = client.call("GET", f"/v1/learners/{learner}/placement")
            if status != 200 or test["status"] != "running" or test["next"] is None:
                client.activity.counts["tests_ended"] += status == 200
                break
            client.call("GET", f"/v1/learners/{learner}/next")
            client.call("POST", f"/v1/learners/{learner}/answers", {
                "item_id": test["next"]["item"], "correct": rng.random() < 0.5,
                "event_id": str(uuid4())})


def churner(client: NoisyClient, stop: Event) -> None:
    """(4) An experiment created, then stopped, again and again."""
    n = 0
    while not stop.is_set():
        name = f"churn-{uuid4().hex[:12]}"
        status, _ = client.call("POST", "/v1/experiments", {"name": name, "arms": [
            {"name": "control"}, {"name": "low", "weight": 2.0,
                                  "options": {"target_success": 0.6 + 0.01 * (n % 30)}}]})
        if status == 201:
            client.activity.counts["created"] += 1
            stopped, _ = client.call("POST", f"/v1/experiments/{name}/stop")
            client.activity.counts["stopped"] += stopped == 200
        n += 1


def distinct_learner(client: NoisyClient, config: NoiseConfig, stop: Event,
                     reached: list[int]) -> None:
    """(3) One learner of the ``timed`` tenant answering an item it never answered before
    (until the pack runs out, then from the first again), one answer after another."""
    rng, item = random.Random(config.seed), config.first_item
    while not stop.is_set():
        status, _ = client.call("POST", "/v1/learners/distinct/answers", {
            "item_id": f"nz.i{item % config.items:06d}", "correct": rng.random() < 0.6,
            "event_id": str(uuid4())})
        item += status == 200
        reached[0] = item


def noise(config: NoiseConfig, stop: Event, started: Event, out: Any) -> None:
    """The noisy process: every activity in threads of its own until ``stop``; then what each
    did goes to ``out`` (a queue)."""
    pack = Path(config.pack_path).read_bytes()
    lock = threading.Lock()
    acts = {name: Activity() for name in ACTIVITIES}
    reached = [config.first_item]

    def client(tenant: str, kind: str) -> NoisyClient:
        return NoisyClient(config.port, config.keys[tenant], acts[kind], lock)

    jobs: dict[str, list[Callable[[], None]]] = {
        "import": [lambda: importer(client(NOISY, "import"), pack, stop)],
        "experiments": [lambda: churner(client(NOISY, "experiments"), stop)],
        "distinct": [lambda: distinct_learner(client(TIMED, "distinct"), config, stop, reached)],
        "placement": [partial(placer, client(NOISY, "placement"), config, i, stop)
                      for i in range(config.placers)]}
    threads = [threading.Thread(target=job, daemon=True)
               for name in config.activities for job in jobs[name]]
    for thread in threads:
        thread.start()
    started.set()
    for thread in threads:
        thread.join()
    summary: dict[str, Any] = {name: act.summary() for name, act in acts.items()}
    summary["distinct"]["distinct_items_reached"] = reached[0]
    # its CPU is the machine's "other" column's (the measured client's is its own column)
    summary["client_cpu_s"] = round(time.process_time(), 2)
    out.put(summary)


# ---------------------------------------------------------------------------------- memory
def worker_rss(pgid: int) -> dict[int, int]:
    """Resident bytes (VmRSS) of each worker: the processes of the server's group but its
    leader (the supervisor) and multiprocessing's resource tracker."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == pgid:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if os.getpgid(int(pid)) != pgid or \
                    b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    found[int(pid)] = int(line.split()[1]) * 1024
    return found


class RssSampler:
    """Samples every worker's RSS in a thread; ``mark`` records a named moment's values."""

    def __init__(self, pgid: int, every: float) -> None:
        self.pgid, self.every = pgid, every
        self.peak: dict[int, int] = {}
        self.marks: dict[str, dict[int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> dict[int, int]:
        now = worker_rss(self.pgid)
        for pid, rss in now.items():
            self.peak[pid] = max(rss, self.peak.get(pid, 0))
        return now

    def mark(self, name: str) -> None:
        self.marks[name] = self.sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------------- phases
@contextlib.contextmanager
def noisy_process(config: NoiseConfig, result: dict[str, Any]) -> Iterator[None]:
    """The noisy clients, running from its start until the block ends; what they did lands in
    ``result``."""
    ctx = multiprocessing.get_context("spawn")
    stop, started, out = ctx.Event(), ctx.Event(), ctx.Queue()
    process = ctx.Process(target=noise, args=(config, stop, started, out), daemon=True)
    process.start()
    try:
        if not started.wait(60):
            raise SystemExit("error: the noisy process did not start")
        yield
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            result.update(out.get(timeout=180))
        process.join(10)
        if process.is_alive():
            process.kill()


def prefill(server: Server, key: str, count: int, items: int, batch: int) -> float:
    """The distinct-items learner's first ``count`` items, by xAPI batches of ``batch``
    statements (before any phase: its state holds them when the noise begins). The first
    statement goes alone: on a ``timed`` tenant at 2f3326f, a batch holding a learner's first
    answer failed (500: the new state's bytes did not decode), and that is not what is measured
    here."""
    import httpx

    began = time.perf_counter()
    bounds = [0, *range(1, count, batch), count]
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=600.0,
                      headers={"Authorization": f"Bearer {key}"}) as http:
        for first, end in pairwise(bounds):
            statements = [{"id": str(uuid4()),
                           "actor": {"account": {"name": "distinct"}},
                           "verb": {"id": XAPI_ANSWERED},
                           "object": {"id": f"nz.i{i % items:06d}"},
                           "result": {"success": i % 3 != 0}}
                          for i in range(first, end)]
            response = http.post("/v1/xapi/statements", json=statements)
            if response.status_code != 200:
                raise SystemExit(f"error: prefill got {response.status_code}: "
                                 f"{response.text[:500]}\nthe server's log:\n"
                                 f"{server.log_path.read_text(errors='replace')[-4000:]}")
    return time.perf_counter() - began


async def phase(kind: str, gen: LoadGenerator, server: Server, args: argparse.Namespace,
                config: NoiseConfig, rss: RssSampler,
                index: int) -> tuple[dict[str, Any], np.ndarray]:
    """One quiet or noisy phase: the quiet tenant's load for ``--duration`` s, measured, with
    the noise running meanwhile in a noisy phase."""
    pgid = server.process.pid
    waited, busy = await wait_quiet(pgid, args.quiet_below, args.quiet_wait)
    noisy: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if kind == "noisy":
            stack.enter_context(noisy_process(config, noisy))
            await asyncio.sleep(args.warm_noise)
            if index == 1:
                rss.mark("loaded")  # both noisy tenants' content and models in every worker
        before = cpu_sample(pgid)
        run = await gen.load(args.rate, args.duration)
        cpu = cpu_use(before, cpu_sample(pgid), run.count)
    rss.mark(f"after {kind} {index}")
    result = {"kind": kind, "round": index, **summarize(run, args.duration, cpu),
              "quiet_wait_s": waited, "machine_cpu_pct_before": busy}
    if noisy:
        result["noise"] = noisy
    log(f"  {kind} {index}: p50 {result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} max "
        f"{result['max_ms']:.0f} ms, achieved {result['achieved_per_s']:.0f}/s, "
        f"{result['errors']} errors; CPU server {result['server_cpu_pct']:.0f}% other "
        f"{result['other_cpu_pct']:.0f}%" + (f"; noise: {noise_line(noisy)}" if noisy else ""))
    return result, run.latency * 1000.0


def noise_line(noisy: dict[str, Any]) -> str:
    """What the noisy clients did in one phase, in words."""
    place = noisy["placement"]
    return (f"{noisy['import'].get('imports_ok', 0)} imports, "
            f"{place.get('tests_started', 0)} placements started ({place['requests']} calls), "
            f"{noisy['distinct']['requests']} answers of the distinct-items learner (item "
            f"{noisy['distinct']['distinct_items_reached']}), "
            f"{noisy['experiments'].get('created', 0)} experiments created and stopped; the "
            f"noisy clients' process used {noisy['client_cpu_s']:g} s of CPU")


def warm_workers(server: Server, keys: dict[str, str], connections: int) -> None:
    """Each noisy tenant's content (and model) loaded in every worker before the baseline is
    read: the distinct-items learner's ``GET /next`` on a fresh connection each time, which
    either worker may accept."""
    import httpx

    for tenant, key in keys.items():
        for _ in range(connections):
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120.0,
                              headers={"Authorization": f"Bearer {key}"}) as http:
                response = http.get("/v1/learners/distinct/next")
                if response.status_code != 200:
                    raise SystemExit(f"error: warming {tenant} got {response.status_code}: "
                                     f"{response.text[:300]}")


def pooled_p99(latencies: list[np.ndarray]) -> float:
    """p99 over every request of the phases of one kind (the same rule as load.summarize)."""
    return round(float(np.percentile(np.concatenate(latencies), 99, method="higher")), 2)


def five_xx(statuses: dict[str, int]) -> int:
    return sum(n for code, n in statuses.items() if code.isdigit() and int(code) >= 500)


def quiet_five_xx(result: dict[str, Any]) -> int:
    return sum(n for kind, n in result["errors_by_kind"].items()
               if kind.startswith("http_5"))


async def run_all(args: argparse.Namespace, limits: Limits, tmp: Path) -> dict[str, Any]:
    """Start the server, provision, alternate the phases; everything measured."""
    pack = largest_pack(limits, args.skills, args.seed)
    pack_path = tmp / "largest.json"
    pack_path.write_bytes(json.dumps(pack, separators=(",", ":")).encode())
    quiet_items = [item["id"] for item in json.loads(MATH_PACK.read_text())["items"]]
    log(f"{SETUP.name}: {SETUP.label}: starting; the largest pack: {len(pack['items'])} items, "
        f"{pack_path.stat().st_size / 1e6:.2f} MB, courses of "
        f"{', '.join(str(len(c['skills'])) for c in pack['courses'])} of {args.skills} skills")
    with start(SETUP, args, tmp) as server:
        log(f"  ready on port {server.port} after {server.startup_s:.1f} s; provisioning the "
            "noisy tenants")
        keys = provision(server, pack_path, pack, args, tmp)
        took = prefill(server, keys[TIMED], args.distinct_items, len(pack["items"]),
                       args.xapi_batch)
        log(f"  the {args.distinct_tracer} learner answered {args.distinct_items} distinct "
            f"items (xAPI batches of {args.xapi_batch}) in {took:.1f} s")
        warm_workers(server, keys, 8)
        rss = RssSampler(server.process.pid, args.rss_every)
        config = NoiseConfig(server.port, keys, str(pack_path),
                             [c["id"] for c in pack["courses"]], args.placers,
                             tuple(args.noise),
                             args.distinct_items, len(pack["items"]), args.seed)
        gen = LoadGenerator(args, server.port, server.api_key, quiet_items)
        phases: list[dict[str, Any]] = []
        latencies: dict[str, list[np.ndarray]] = {"quiet": [], "noisy": []}
        try:
            if args.warmup > 0:
                await gen.load(args.rate, args.warmup)
            rss.mark("baseline")
            for index in range(1, args.rounds + 1):
                for kind in ("quiet", "noisy"):
                    result, ms = await phase(kind, gen, server, args, config, rss, index)
                    phases.append(result)
                    latencies[kind].append(ms)
                    if kind == "noisy":
                        config = NoiseConfig(**{
                            **vars(config),
                            "first_item": result["noise"]["distinct"]["distinct_items_reached"]})
        finally:
            await gen.close()
            rss.close()
        server_log = server.log_path.read_text(errors="replace")[-3000:]
    return {"phases": phases, "memory": memory(rss, limits, args),
            "latency": latency(phases, latencies), "startup_s": server.startup_s,
            "pack": {"items": len(pack["items"]), "bytes": pack_path.stat().st_size,
                     "courses": {c["id"]: len(c["skills"]) for c in pack["courses"]}},
            "server_log_tail": server_log}


def latency(phases: list[dict[str, Any]], latencies: dict[str, list[np.ndarray]]
            ) -> dict[str, Any]:
    """The target: the quiet tenant's p99 with noise within 2x of its p99 without."""
    quiet, noisy = pooled_p99(latencies["quiet"]), pooled_p99(latencies["noisy"])
    ratio = noisy / quiet if quiet else None
    quiet_errors = sum(p["errors"] for p in phases)
    five = sum(quiet_five_xx(p) for p in phases)
    noisy_five = sum(five_xx(p["noise"][name]["statuses"]) for p in phases if "noise" in p
                     for name in ACTIVITIES)
    return {"quiet_p99_ms": quiet, "noisy_p99_ms": noisy,
            "ratio": None if ratio is None else round(ratio, 2),
            "ratio_met": ratio is not None and ratio <= 2.0,
            "quiet_tenant_errors": quiet_errors, "quiet_tenant_5xx": five,
            "noisy_tenants_5xx": noisy_five, "no_5xx_met": five == 0 and noisy_five == 0}


def memory(rss: RssSampler, limits: Limits, args: argparse.Namespace) -> dict[str, Any]:
    """Each worker's peak RSS against its bound: baseline + placement cache + headroom."""
    baseline = rss.marks.get("baseline", {})
    allowance = limits.placement_cache_bytes + args.headroom_mb * 2**20
    workers = []
    for pid, peak in sorted(rss.peak.items()):
        base = baseline.get(pid)
        bound = None if base is None else base + allowance
        workers.append({
            "pid": pid, "baseline_mb": mb(base), "peak_mb": mb(peak), "bound_mb": mb(bound),
            **{f"{name}_mb": mb(values.get(pid)) for name, values in rss.marks.items()
               if name != "baseline"},
            # a worker started after the baseline (a restart) has no bound to check
            "within": None if bound is None else peak <= bound})
    return {"bound": "RSS at the baseline (after warming both noisy tenants in every worker) "
                     f"+ TUTOR_PLACEMENT_CACHE_BYTES ({mb(limits.placement_cache_bytes)} MB) "
                     f"+ {args.headroom_mb} MB headroom",
            "workers": workers,
            "met": bool(workers) and all(w["within"] is not False for w in workers)}


def mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


# ---------------------------------------------------------------------------------- report
def report(results: dict[str, Any], limits: Limits, args: argparse.Namespace) -> str:
    lat, mem = results["latency"], results["memory"]
    lines = [
        "\n## Noisy neighbour: the quiet tenant's answers while other tenants push the limits\n",
        f"{SETUP.label}; quiet tenant at {args.rate:g} answers/s open loop, {args.duration:g} s "
        f"per phase, {args.rounds} rounds of quiet then noisy. Limits: "
        f"{limits.content_items} items a tenant, {limits.placement_items} items a placement "
        f"bank, {mb(limits.placement_cache_bytes)} MB of placement tables a worker. Noise: "
        f"{', '.join(args.noise)} (re-imports of a {results['pack']['items']}-item pack, "
        f"{args.placers} placement clients, a `{args.distinct_tracer}` learner past "
        f"{args.distinct_items} distinct items, experiment churn).\n",
        "| phase | p50 ms | p99 ms | max ms | achieved/s | errors | CPU server | CPU other "
        "| noise |", "|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for p in results["phases"]:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(p["errors_by_kind"].items()))
        lines.append(
            f"| {p['kind']} {p['round']} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} "
            f"| {p['max_ms']:.0f} | {p['achieved_per_s']:.0f} "
            f"| {p['errors']}{f' ({kinds})' if kinds else ''} | {p['server_cpu_pct']:.0f}% "
            f"| {p['other_cpu_pct']:.0f}% | {noise_line(p['noise']) if 'noise' in p else '-'} |")
    lines += ["", "| noisy client | phase | requests | statuses | p50 ms | p99 ms | max ms |",
              "|---|---|--:|---|--:|--:|--:|"]
    for p in results["phases"]:
        for name in args.noise:
            if name not in p.get("noise", {}):
                continue
            act = p["noise"][name]
            statuses = ", ".join(f"{k}: {v}" for k, v in sorted(act["statuses"].items()))
            lines.append(f"| {name} | noisy {p['round']} | {act['requests']} | {statuses} "
                         f"| {act['p50_ms']:.0f} | {act['p99_ms']:.0f} | {act['max_ms']:.0f} |")
    marks = [k for k in mem["workers"][0] if k.endswith("_mb") and k not in
             ("baseline_mb", "peak_mb", "bound_mb")] if mem["workers"] else []
    lines += ["", f"Worker memory (VmRSS, MB; bound: {mem['bound']}):", "",
              "| worker | baseline | " + " | ".join(m[:-3] for m in marks)
              + " | peak | bound | within |",
              "|---|--:|" + "--:|" * len(marks) + "--:|--:|:-:|"]
    for w in mem["workers"]:
        lines.append(f"| pid {w['pid']} | {w['baseline_mb']} | "
                     + " | ".join(str(w[m]) for m in marks)
                     + f" | {w['peak_mb']} | {w['bound_mb']} | "
                     f"{ {True: 'yes', False: '**no**', None: '-'}[w['within']]} |")
    met = {True: "yes", False: "**no**"}
    peaks = ", ".join(f"{w['peak_mb']} / {w['bound_mb']} MB" for w in mem["workers"])
    lines += ["", "| target | measured | met |", "|---|---|:-:|",
              f"| quiet tenant's p99 with noise <= 2x without (pooled phases) | "
              f"{lat['noisy_p99_ms']:.1f} / {lat['quiet_p99_ms']:.1f} ms = {lat['ratio']}x "
              f"| {met[lat['ratio_met']]} |",
              f"| no 5xx, any tenant | quiet tenant {lat['quiet_tenant_5xx']} (all errors "
              f"{lat['quiet_tenant_errors']}), noisy tenants {lat['noisy_tenants_5xx']} "
              f"| {met[lat['no_5xx_met']]} |",
              f"| each worker's peak RSS under its bound | "
              f"{peaks} | {met[mem['met']]} |"]
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Noisy-neighbour benchmark: one tenant's answers (open loop) measured in "
                    "quiet phases and in phases where other tenants do the most expensive "
                    "things the API allows (largest pack re-imported, placement tests polled, "
                    "a learner of thousands of distinct items on the `timed` tracer, "
                    "experiment churn); the p99 ratio, every 5xx, and each worker's memory "
                    "against a bound (see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rate", type=float, default=100.0,
                        help="the quiet tenant's answers/s (open loop)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured a phase")
    parser.add_argument("--rounds", type=int, default=2, help="quiet-then-noisy rounds")
    parser.add_argument("--warmup", type=float, default=5.0,
                        help="seconds of the quiet tenant's load before the first phase")
    parser.add_argument("--warm-noise", type=float, default=2.0,
                        help="seconds the noise runs before a noisy phase's measurement")
    parser.add_argument("--noise", nargs="+", choices=ACTIVITIES, default=list(ACTIVITIES),
                        help="the noisy activities run in noisy phases (all: the benchmark; "
                             "one: which one costs the quiet tenant what)")
    parser.add_argument("--placers", type=int, default=4,
                        help="noisy clients running placement tests")
    parser.add_argument("--distinct-items", type=int, default=4500,
                        help="distinct items the timed learner has answered before the phases")
    parser.add_argument("--distinct-tracer", choices=["timed", "bkt"], default="timed",
                        help="the distinct-items learner's tenant's tracer: a registered "
                             "`timed` model (its state keeps entries per item), or the pack's "
                             "own BKT")
    parser.add_argument("--xapi-batch", type=int, default=250,
                        help="statements a prefill request (within TUTOR_MAX_BODY_BYTES)")
    parser.add_argument("--skills", type=int, default=50, help="skills of the largest pack")
    parser.add_argument("--fit-learners", type=int, default=100,
                        help="learners of the log the timed model is fitted on")
    parser.add_argument("--fit-answers", type=int, default=100, help="... answers each")
    parser.add_argument("--headroom-mb", type=int, default=128,
                        help="memory a worker may add beyond its baseline and the placement "
                             "cache (the bound checked)")
    parser.add_argument("--rss-every", type=float, default=0.25,
                        help="seconds between memory samples")
    parser.add_argument("--learners", type=int, default=2000,
                        help="the quiet tenant's learner pool")
    parser.add_argument("--p-correct", type=float, default=0.7,
                        help="probability that a quiet answer is correct")
    parser.add_argument("--connections", type=int, default=64,
                        help="the quiet tenant's keep-alive connections")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds from a quiet request's scheduled time until it counts as "
                             "a timeout")
    parser.add_argument("--seed", type=int, default=0)
    add_server_options(parser, "redis://127.0.0.1:6379/8")
    parser.add_argument("--json", action="store_true",
                        help="print the results as one JSON object instead of the tables")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "noisy_neighbour.json")
    args = parser.parse_args()
    args.client = "raw"  # the load generator's client (bench/load.py)
    check_server_env(parser, args)
    return args


def main() -> None:
    args = parse_args()
    limits = Limits.of(args.server_env)
    info = machine()
    info.update(service_versions(args, [SETUP.name]))
    code_before = source_digest()
    tmp = Path(tempfile.mkdtemp(prefix="tutor-noisy-"))
    try:
        results = asyncio.run(run_all(args, limits, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    code = {"source_digest": code_before, "changed_during_run": source_digest() != code_before}
    if code["changed_during_run"]:
        log("warning: api/, engine/ or content/ changed during the run")
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    document = {"benchmark": "noisy_neighbour",
                "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": info,
                "options": options, "limits": vars(limits), "code": code, **results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document))
    else:
        print(report(results, limits, args))
        if code["changed_during_run"]:
            print("\n(api/, engine/ or content/ CHANGED during the run)")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
