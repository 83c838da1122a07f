"""Schemathesis with every check against a real server, on a ``bkt`` and a ``bkt-memory`` tenant
(issue 20: "schemathesis with all checks, run against tenants on bkt and on bkt-memory, reports
0 failures").

The suite's own fuzz (tests/serving/test_bad_input.py) calls the app in process with five
response checks; this runner is the whole thing, as a client sees it: ``tutor serve`` started
from nothing (PostgreSQL + Redis with 2 workers, as ``bench/load.py``'s ``pg-redis-2w``; or
SQLite), two tenants provisioned with the ``tutor`` commands and the bundled math pack, one
served by the content's BKT and one by a ``bkt-memory`` model fitted (``tutor fit``) on a
simulated log covering every skill and registered (``tutor model register``), then ``schemathesis
run --checks all`` (every phase: examples, coverage, fuzzing, stateful) against each tenant with
its own key. The tenants share the server, as tenants do.

A failure of a check that assumes more than JSON Schema can say is dropped only by a narrow
rule of ``bench/schemathesis_hooks.py`` (one check, operation, status and error message), and
each one dropped is counted in the summary; bench/README.md says why each rule is a false
positive.

Run from the repository root: ``.venv/bin/python bench/schemathesis_all.py [--help]``. Progress
goes to stderr; the summary (``--json``: one JSON object) to stdout; schemathesis' own output
and reports (NDJSON, JSON) to ``--out``. Exit status 1 when any failure or error was reported.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from load import (
    MATH_PACK,
    ROOT,
    VENV_BIN,
    flush_redis,
    free_port,
    log,
    postgres_database,
    stop,
    tutor,
    wait_ready,
)

BENCH = Path(__file__).resolve().parent
TRACERS = ("bkt", "bkt-memory")


@dataclass(frozen=True)
class Tenant:
    name: str
    tracer: str
    api_key: str


# ------------------------------------------------------------------------------- set-up
def simulated_log(path: Path, learners: int, seed: int) -> int:
    """A generic CSV answer log over every item of the math pack (so every skill), twice each,
    with times that leave minutes and days between answers (bkt-memory fits forgetting from
    them); a learner knows a skill after a random number of answers to it. Returns the rows."""
    pack = json.loads(MATH_PACK.read_text())
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    rows = 0
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["learner", "item", "skills", "correct", "timestamp"])
        for learner in range(learners):
            at = start + timedelta(hours=rng.uniform(0, 48))
            known: set[str] = set()
            for item in pack["items"]:
                skill = item["skills"][0]
                for _ in range(2):
                    correct = rng.random() < (0.9 if skill in known else 0.3)
                    if rng.random() < 0.3:
                        known.add(skill)
                    writer.writerow([f"sim-{learner}", item["id"], ";".join(item["skills"]),
                                     int(correct), at.isoformat()])
                    rows += 1
                    gap = rng.uniform(0.5, 3) if rng.random() < 0.9 else rng.uniform(600, 4000)
                    at += timedelta(minutes=gap)
    return rows


def provision(url: str, env: dict[str, str], tracers: list[str], tmp: Path) -> list[Tenant]:
    """One tenant per tracer, each with the math pack; bkt-memory's fitted and registered."""
    tenants = []
    db = ["--database-url", url]
    for tracer in tracers:
        name = f"st-{tracer}"
        created = json.loads(tutor(["tenant", "create", name, "--json", *db], env))
        tutor(["content", "import", str(MATH_PACK), "--tenant", name, *db], env)
        if tracer != "bkt":
            log_path, model = tmp / f"{tracer}.csv", tmp / f"{tracer}.json"
            rows = simulated_log(log_path, learners=40, seed=0)
            tutor(["fit", "--train", str(log_path), "--format", "csv", "--model", tracer,
                   "--out", str(model)], env)
            tutor(["model", "register", str(model), "--tenant", name, *db], env)
            log(f"{name}: {tracer} fitted on {rows:,} simulated answers and registered")
        tenants.append(Tenant(name, tracer, created["api_key"]))
    return tenants


@contextlib.contextmanager
def serve(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[int, list[Tenant]]]:
    """A database, the tenants, and ``tutor serve`` on it; all torn down after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTOR_")}
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    with contextlib.ExitStack() as stack:
        if args.backend == "sqlite":
            url = f"sqlite:///{tmp / 'schemathesis.db'}"
        else:
            url = stack.enter_context(postgres_database(args.pg_dsn, prefix="tutor_st"))
            flush_redis(args.redis_url)
            stack.callback(flush_redis, args.redis_url)
            env["TUTOR_REDIS_URL"] = args.redis_url
        env.update(setting.split("=", 1) for setting in args.server_env)
        tenants = provision(url, env, args.tenants, tmp)
        port = free_port()
        log_path = args.out / "server.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                [str(VENV_BIN / "tutor"), "serve", "--database-url", url, "--host", "127.0.0.1",
                 "--port", str(port), "--workers", str(args.server_workers)],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(stop, process)
        wait_ready(port, process, log_path)
        log(f"serving on port {port} ({args.backend}, {args.server_workers} worker(s))")
        yield port, tenants


# ------------------------------------------------------------------------------- running
def schemathesis_command(args: argparse.Namespace, port: int, tenant: Tenant,
                         reports: Path) -> list[str]:
    command = [str(VENV_BIN / "schemathesis"), "run", f"http://127.0.0.1:{port}/openapi.json",
               "--checks", "all", "--header", f"Authorization: Bearer {tenant.api_key}",
               "--max-examples", str(args.max_examples), "--seed", str(args.seed),
               "--workers", str(args.workers), "--phases", args.phases,
               "--generation-database", "none", "--request-timeout", str(args.request_timeout),
               "--no-color", "--report", "json,ndjson", "--report-dir", str(reports),
               "--report-json-path", str(reports / "report.json"),
               "--report-ndjson-path", str(reports / "events.ndjson")]
    if args.deterministic:
        command.append("--generation-deterministic")
    return command


def run_tenant(args: argparse.Namespace, port: int, tenant: Tenant) -> dict[str, Any]:
    """``schemathesis run`` against one tenant; its summary (see :func:`summarize`)."""
    reports = args.out / tenant.name
    reports.mkdir(parents=True, exist_ok=True)
    dropped = reports / "dropped.jsonl"
    dropped.unlink(missing_ok=True)
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
               PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH),
                                                        os.environ.get("PYTHONPATH")])),
               TUTOR_ST_DROPPED=str(dropped))
    command = schemathesis_command(args, port, tenant, reports)
    began = time.perf_counter()
    with (reports / "output.txt").open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        for line in process.stdout:
            output.write(line)
            if line.startswith(" ✅") or line.startswith(" ❌") or "passed" in line \
                    or "Scenarios:" in line:
                log(f"{tenant.name}: {line.strip()}")
        code = process.wait()
    result = summarize(reports, dropped)
    result.update(tenant=tenant.name, tracer=tenant.tracer, exit_code=code,
                  seconds=round(time.perf_counter() - began, 1),
                  output=str(reports / "output.txt"))
    return result


def _body(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode("utf-8", "replace")
    return str(content) if content is not None else ""


def summarize(reports: Path, dropped: Path) -> dict[str, Any]:
    """Cases, checks run and failed (per check, per check and operation), and each distinct
    failure with one request and response that shows it, from schemathesis' NDJSON events;
    totals from its JSON report."""
    report = json.loads((reports / "report.json").read_text())
    checks_run: Counter[str] = Counter()
    failed: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str, str], dict[str, Any]] = {}
    cases: set[str] = set()
    with (reports / "events.ndjson").open() as events:
        for line in events:
            event = json.loads(line)
            scenario = event.get("ScenarioFinished")
            if not scenario:
                continue
            recorder = scenario["recorder"]
            recorded = recorder.get("cases") or {}
            interactions = recorder.get("interactions") or {}
            for case_id, results in (recorder.get("checks") or {}).items():
                cases.add(case_id)
                for check in results:
                    checks_run[check["name"]] += 1
                    if check["status"] != "failure":
                        continue
                    info = check["failure_info"]["failure"]
                    operation = info.get("operation") or recorder["label"]
                    failed[(check["name"], operation)] += 1
                    key = (check["name"], operation, info["title"])
                    if key in examples:
                        continue
                    case = recorded.get(case_id, {}).get("value", {})
                    exchange = interactions.get(case_id) or {}
                    response = exchange.get("response") or {}
                    examples[key] = {
                        "check": check["name"], "code": info.get("code"),
                        "operation": operation, "title": info["title"],
                        "message": info.get("message"),
                        "request": {k: case.get(k) for k in ("method", "path", "path_parameters",
                                                             "query", "body") if case.get(k)},
                        "response": {"status": response.get("status_code"),
                                     "body": _body(response.get("content"))[:600]}}
    drops = [json.loads(line) for line in dropped.read_text().splitlines()] \
        if dropped.exists() else []
    return {
        "cases": report["test_cases"]["generated"],
        "cases_checked": len(cases),
        "cases_with_failures": report["test_cases"]["with_failures"],
        "unique_failures": report["test_cases"]["unique_failures"],
        "errors": report["errors"],
        "checks_run": dict(sorted(checks_run.items())),
        "failures_by_check": dict(sorted(Counter(c for c, _ in failed.elements()).items())),
        "failures_by_check_and_operation": {f"{c} {o}": n for (c, o), n in sorted(failed.items())},
        "failures": list(examples.values()),
        "dropped_false_positives": dict(Counter(d["rule"] for d in drops)),
        "phases": {k: v["status"] for k, v in (report.get("phases") or {}).items()},
        "warnings": {k: v for k, v in report.get("warnings", {}).items() if v},
    }


# ------------------------------------------------------------------------------- output
def text(results: dict[str, Any]) -> str:
    lines = []
    for r in results["tenants"]:
        lines.append(f"{r['tenant']} ({r['tracer']}): {r['cases']:,} cases, "
                     f"{r['unique_failures']} unique failures in {r['cases_with_failures']} "
                     f"cases, {sum(e['count'] for e in r['errors'])} errors, "
                     f"{sum(r['dropped_false_positives'].values())} dropped as false "
                     f"positives {r['dropped_false_positives'] or ''} ({r['seconds']} s)")
        lines.append("  checks run: " + ", ".join(f"{c} {n:,}" for c, n in
                                                 r["checks_run"].items()))
        for key, n in r["failures_by_check_and_operation"].items():
            lines.append(f"  FAILED {key}: {n}")
        for f in r["failures"]:
            lines.append(f"    {f['check']} {f['operation']}: {f['title']}; "
                         f"{json.dumps(f['request'])[:300]} -> {f['response']['status']} "
                         f"{f['response']['body'][:300]}")
        for e in r["errors"]:
            lines.append(f"  ERROR {e['title']}: {e['count']}")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="schemathesis --checks all against a served bkt and bkt-memory tenant "
                    "(see bench/README.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres",
                        help="PostgreSQL + Redis (as load.py's pg-redis-2w), or SQLite with "
                             "in-process states")
    parser.add_argument("--tenants", nargs="+", choices=TRACERS, default=list(TRACERS),
                        help="one tenant per tracer, each run in turn")
    parser.add_argument("--max-examples", type=int, default=40,
                        help="most generated cases per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deterministic", action="store_true",
                        help="schemathesis' --generation-deterministic (same cases every run)")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis' workers")
    parser.add_argument("--server-workers", type=int, default=2)
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--pg-dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                            "dbname=postgres",
                        help="libpq DSN of a role that may CREATE DATABASE")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6",
                        help="Redis database for states; FLUSHDB before and after")
    parser.add_argument("--server-env", nargs="+", default=[], metavar="TUTOR_NAME=VALUE",
                        help="settings for the server (it inherits no TUTOR_* variable)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "schemathesis",
                        help="schemathesis' output and reports, per tenant, and the server log")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"backend": args.backend, "max_examples": args.max_examples,
                               "seed": args.seed, "phases": args.phases, "tenants": []}
    with tempfile.TemporaryDirectory(prefix="tutor-st-") as tmp, \
            serve(args, Path(tmp)) as (port, tenants):
        for tenant in tenants:
            log(f"{tenant.name}: schemathesis --checks all, {args.max_examples} examples")
            results["tenants"].append(run_tenant(args, port, tenant))
    results["total_failures"] = sum(r["unique_failures"] for r in results["tenants"])
    results["total_errors"] = sum(e["count"] for r in results["tenants"] for e in r["errors"])
    (args.out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else text(results))
    sys.exit(1 if results["total_failures"] or results["total_errors"] else 0)


if __name__ == "__main__":
    main()
