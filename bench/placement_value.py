"""The value of placement (issue 15, item 5): exercises to course mastery for learners who
already know half of a course, starting from a placement test against starting from the prior.

Per learner-model family, the same learners (same seed) run three times with the same policy
and schedule: from the prior (the reference), after a CAT placement (at most 12 items, SE stop
0.3; its items counted as exercises), and from their true starting state (the oracle: the
ceiling any placement could reach). Target: placement cuts exercises to course mastery by
>= 25% against the prior, with equal post-test (the paired difference's 95% interval holds 0,
or lies within --post-margin).

    OMP_NUM_THREADS=1 .venv/bin/python bench/placement_value.py [--level 0.8] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchinfo import log, machine

import engine.simulation  # noqa: F401  (registers the families)
from engine.selection.registry import make_policy, parse_policy
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.placement_value import PRIOR_KNOWLEDGE, placement_study
from engine.simulation.run import Schedule

TARGET_CUT = 0.25  #: the issue's target: at least this share fewer exercises with placement


def _verdict(arm: dict[str, Any], margin: float) -> bool:
    """Whether an arm meets the target: the cut, and a post-test difference whose interval
    holds 0 or lies within ``margin``."""
    low, high = arm["post_test_difference"]["ci95"]
    equal = (low <= 0.0 <= high) or (-margin <= low and high <= margin)
    return bool(arm["cut"] is not None and arm["cut"] >= TARGET_CUT and equal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--skills", type=int, default=12, help="skills of the generated course")
    parser.add_argument("--days", type=int, default=30, help="daily sessions of 10 exercises")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policy", default="target-success")
    parser.add_argument("--known-share", type=float, default=0.5,
                        help="share of the course the learners know at the start")
    parser.add_argument("--level", type=float, default=0.5,
                        help="latent P(correct) that the placement's mastery mapping calls "
                             "mastered")
    parser.add_argument("--post-margin", type=float, default=0.01,
                        help="post-test difference (share correct) still counted as equal")
    parser.add_argument("--families", nargs="+", default=sorted(PRIOR_KNOWLEDGE),
                        choices=sorted(PRIOR_KNOWLEDGE))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    catalog = generated_catalog(args.skills, seed=args.seed)
    name, options = parse_policy(args.policy)
    schedule = Schedule(days=args.days, per_session=10)
    rows = []
    for family in args.families:
        log(f"{family}: {args.learners} learners, 3 arms")
        started = time.perf_counter()
        study = placement_study(family, catalog, GENERATED_COURSE, make_policy(name, **options),
                                n=args.learners, seed=args.seed, schedule=schedule,
                                tracer=catalog.tracer, known_share=args.known_share,
                                level=args.level, oracle=True)
        summary = study.summary()
        summary["seconds"] = round(time.perf_counter() - started, 1)
        summary["target_met"] = _verdict(summary["placement"], args.post_margin)
        rows.append(summary)
    if args.json:
        print(json.dumps({"settings": vars(args), "target_cut": TARGET_CUT, "rows": rows}))
        return
    print(f"{args.learners} learners per family know {args.known_share:.0%} of a "
          f"{args.skills}-skill course; {args.days} days x 10 exercises, policy {args.policy}; "
          f"placement items counted as exercises")
    print(f"{'family':14} {'arm':10} {'items':>6} {'exercises':>10} {'cut vs prior [95% CI]':>24} "
          f"{'post-test':>9} {'post diff [95% CI]':>26} {'mastered':>8} {'target':>7}")
    for r in rows:
        prior = r["prior"]
        print(f"{r['family']:14} {'prior':10} {0:>6} "
              f"{prior['exercises_to_mastery']['mean']:>10.1f} {'(reference)':>24} "
              f"{prior['post_test']['mean']:>9.3f} {'':>26} "
              f"{prior['mastered_share']['mean']:>8.2f} {'':>7}")
        for arm in ("placement", "oracle"):
            a = r[arm]
            low, high = a["cut_ci95"]
            plow, phigh = a["post_test_difference"]["ci95"]
            items = r["placement_items"]["mean"] if arm == "placement" else 0
            target = ("met" if r["target_met"] else "NOT met") if arm == "placement" else ""
            print(f"{'':14} {arm:10} {items:>6.1f} {a['exercises_to_mastery']['mean']:>10.1f} "
                  f"{a['cut']:>+7.1%} [{low:+.1%}, {high:+.1%}] "
                  f"{a['post_test']['mean']:>9.3f} "
                  f"{a['post_test_difference']['mean']:>+8.4f} [{plow:+.4f}, {phigh:+.4f}] "
                  f"{a['mastered_share']['mean']:>8.2f} {target:>7}")
    log(f"machine: {machine()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
