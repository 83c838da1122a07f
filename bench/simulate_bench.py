"""Speed of ``tutor simulate``'s runner: 1,000 learners x 5 policies x a 20-skill generated
course, 30 simulated days of 10 exercises, per learner-model family (target: under 60 s each on
the 2 cores), and the cost of the one-learner path it replaces, measured on a slice.

    OMP_NUM_THREADS=1 .venv/bin/python bench/simulate_bench.py [--learners 1000] [--json]

Prints a table: seconds per family for the lockstep run, learner-steps per second, and the
one-learner path's seconds on 50 learners scaled to the same work (the reference).
"""

from __future__ import annotations

import argparse
import json
import time

import engine.simulation  # noqa: F401  (registers the families)
from engine.selection.registry import make_policy, parse_policy
from engine.simulation.base import FAMILIES
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.run import Schedule, compare, run_policy

POLICIES = ("fixed-curriculum", "random", "lowest-mastery", "target-success",
            "target-success:target_success=0.6")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--reference-learners", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    catalog = generated_catalog(args.skills, seed=1)
    schedule = Schedule(days=args.days, per_session=10)
    policies = {spec: make_policy(name, **options)
                for spec, (name, options) in ((s, parse_policy(s)) for s in POLICIES)}
    rows = []
    for family in sorted(FAMILIES):
        started = time.perf_counter()
        compare([family], catalog, GENERATED_COURSE, policies, n=args.learners, seed=1,
                schedule=schedule, tracer=catalog.tracer)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        for policy in policies.values():
            run_policy(family, catalog, GENERATED_COURSE, policy, n=args.reference_learners,
                       seed=1, schedule=Schedule(days=2, per_session=10),
                       tracer=catalog.tracer(), lockstep=False)
        per_step = (time.perf_counter() - started) / (len(policies) * args.reference_learners
                                                      * 20)
        steps = args.learners * len(policies) * schedule.budget
        rows.append({"family": family, "seconds": round(seconds, 2),
                     "learner_steps_per_s": round(steps / seconds),
                     "one_learner_us_per_step": round(per_step * 1e6, 1),
                     "one_learner_seconds_scaled": round(per_step * steps, 1),
                     "target_met": seconds < 60.0})
    if args.json:
        print(json.dumps({"learners": args.learners, "policies": list(POLICIES),
                          "skills": args.skills, "days": args.days, "rows": rows}))
        return
    print(f"{args.learners} learners x {len(POLICIES)} policies x {args.skills}-skill course, "
          f"{args.days} days x 10 exercises (target: < 60 s per family)")
    print(f"{'family':16} {'lockstep s':>11} {'steps/s':>10} {'1-learner us/step':>18} "
          f"{'1-learner s (scaled)':>21} {'target':>7}")
    for r in rows:
        print(f"{r['family']:16} {r['seconds']:>11.1f} {r['learner_steps_per_s']:>10,} "
              f"{r['one_learner_us_per_step']:>18.1f} {r['one_learner_seconds_scaled']:>21.1f} "
              f"{'met' if r['target_met'] else 'NOT met':>7}")


if __name__ == "__main__":
    main()
