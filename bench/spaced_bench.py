"""Serving costs of time in the learner model and of selection v2 (issue 14, serving targets).

* one online update of the ``bkt-memory`` tracer (target <= 20 µs), next to BKT's;
* choosing the next item with the ``spaced`` policy among 10,000 items, with reviews due
  (target p99 <= 300 µs), next to the target-success policy with BKT on the same catalog and
  on 200 items (the reference: 157 µs p99 measured before this issue);
* the same choice with ``teach``, the default policy since issue 21 (the spaced ranking, weakest
  skill first), on ``bkt-memory``: its cost against target-success on BKT, the default before;
* the state's size in bytes.

Catalogs are generated (``generated:N`` with 5 items per skill); the learner has practised a
third of the skills over the previous 60 days, so some reviews are due at the moment of the
choice. Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/spaced_bench.py [--calls N] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from benchinfo import latencies, log, machine

from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.selection import SelectionContext, make_policy
from engine.simulation.courses import GENERATED_COURSE, generated_catalog

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
UPDATE_TARGET_US = 20.0
CHOOSE_TARGET_US = 300.0


def _history(catalog: Catalog, model: str, seed: int = 0) -> tuple[Any, Any, list[str]]:
    """(tracer, state, recent items) of a learner who practised a third of the skills over 60
    days, a few answers a day."""
    tracer = catalog.tracer(model)
    rng = np.random.default_rng(seed)
    items = list(catalog.items.values())
    practised = [it for it in items if rng.random() < 1 / 3]
    state = tracer.new_state()
    recent: list[str] = []
    for day in range(60):
        for k in range(10):
            item = practised[int(rng.integers(len(practised)))]
            state = tracer.update(state, AnswerEvent(
                "u", item.id, item.skills, bool(rng.random() < 0.8),
                timestamp=T0 + timedelta(days=day, minutes=k)))
            recent = ([*recent, item.id])[-10:]
    return tracer, state, recent


def bench_update(catalog: Catalog, model: str, calls: int) -> dict[str, Any]:
    tracer, state, _ = _history(catalog, model)
    items = list(catalog.items.values())
    rng = np.random.default_rng(1)
    events = [AnswerEvent("u", it.id, it.skills, bool(rng.random() < 0.7),
                          timestamp=T0 + timedelta(days=61, seconds=i))
              for i, it in enumerate(items[int(j)] for j in rng.integers(len(items), size=calls))]
    tracer.update(state, events[0])  # compiled kernels warm
    result = latencies(events, lambda e: tracer.update(state, e))
    result["state_bytes"] = len(tracer.state_to_bytes(state))
    return result


def bench_choose(catalog: Catalog, model: str, policy_name: str, calls: int) -> dict[str, Any]:
    tracer, state, recent = _history(catalog, model)
    policy = make_policy(policy_name)
    at = T0 + timedelta(days=61)
    contexts = [SelectionContext(recent_items=tuple(recent), course=GENERATED_COURSE, seed=i,
                                 learner="u", at=at + timedelta(seconds=i))
                for i in range(calls)]
    first = policy.choose(tracer, state, catalog, contexts[0])  # prepared catalog cached
    result = latencies(contexts, lambda c: policy.choose(tracer, state, catalog, c))
    result["first_reason"] = first[0].reason if first else ""
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per line")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    big, small = generated_catalog(2000, seed=1), generated_catalog(40, seed=1)
    log(f"catalogs: {len(big.items)} and {len(small.items)} items")
    rows: dict[str, dict[str, Any]] = {}
    for model in ("bkt", "bkt-memory"):
        for name, catalog in (("200 items", small), ("10,000 items", big)):
            log(f"update {model}, {name}")
            rows[f"update {model} ({name})"] = bench_update(catalog, model, args.calls)
    for policy, model in (("target-success", "bkt"), ("spaced", "bkt-memory"),
                          ("teach", "bkt-memory")):
        for name, catalog in (("200 items", small), ("10,000 items", big)):
            log(f"choose {policy}, {name}")
            rows[f"choose {policy} + {model} ({name})"] = bench_choose(catalog, model, policy,
                                                                       args.calls)
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}))
        return
    print(f"machine: {machine()}")
    print("| call | mean µs | p50 µs | p99 µs | target | state bytes |")
    print("|---|---|---|---|---|---|")
    for key, r in rows.items():
        target = ""
        if key.startswith("update bkt-memory"):
            met = r["p50_us"] <= UPDATE_TARGET_US
            target = f"<= {UPDATE_TARGET_US:.0f} µs: {'reached' if met else 'NOT reached'}"
        elif key == "choose spaced + bkt-memory (10,000 items)":
            met = r["p99_us"] <= CHOOSE_TARGET_US
            target = f"p99 <= {CHOOSE_TARGET_US:.0f} µs: {'reached' if met else 'NOT reached'}"
        print(f"| {key} | {r['mean_us']:.1f} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {target} "
              f"| {r.get('state_bytes', '')} |")
    reason = rows["choose spaced + bkt-memory (10,000 items)"]["first_reason"]
    print(f"\nfirst spaced choice among 10,000 items: {reason}")


if __name__ == "__main__":
    main()
