"""The value of placement (issue 21, "Placement value"): learners who know a random
prerequisite-closed half of a 60-skill course (generated:60), a placement test of at most 20
items and the default policy, against starting from the prior and from the true state.

Per learner-model family, the same learners (same seed) run three times with the default
policy (``make_policy(DEFAULT_POLICY)``) on its tracer (its ``tracer_model``, built from the
course's own parameters) for the same schedule (:func:`engine.simulation.placement_value.
placement_study`): from the prior, after the per-skill placement test (its items counted as
exercises, within the budget), and from the true starting state (the oracle start). Beside it,
the same learners' per-skill classification accuracy after the test, and after today's θ test
mapped to the skills (same number of items, fixed length).

Targets: placement saves at least 50% of what the oracle start saves in exercises to course
mastery (share of the oracle's saving, percentile-bootstrap interval), with a post-test no
lower than from the prior (the paired 95% interval of the difference does not lie below 0);
per-skill classification accuracy after 20 items at least 0.85.

    OMP_NUM_THREADS=1 .venv/bin/python bench/placement_value.py [--learners 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchinfo import log, machine

import engine.simulation  # noqa: F401  (registers the families)
from engine.placement import SkillStop, StopRule
from engine.selection.registry import DEFAULT_POLICY, make_policy, parse_policy
from engine.simulation.metrics import mean_ci
from engine.simulation.placement_value import (
    CONFIDENCE,
    METHODS,
    PRIOR_KNOWLEDGE,
    classification,
    placement_study,
)
from engine.simulation.run import Schedule
from training.simulate_cli import load_course

TARGET_SHARE = 0.5  #: of the oracle start's saving
TARGET_ACCURACY = 0.85  #: per-skill classification accuracy after the test's items


def verdict(row: dict[str, Any]) -> dict[str, bool]:
    """Which targets a family's row meets."""
    share = row["placement"]["oracle_share"]["mean"]
    post_high = row["placement"]["post_test_difference"]["ci95"][1]
    return {"share": share is not None and share >= TARGET_SHARE,
            "post_test": post_high >= 0.0,
            "accuracy": row["classification_accuracy"]["mean"] >= TARGET_ACCURACY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", default="generated:60")
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30, help="daily sessions of 10 exercises")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policy", default=DEFAULT_POLICY)
    parser.add_argument("--items", type=int, default=20, help="most items of the test")
    parser.add_argument("--method", default="skills", choices=METHODS,
                        help="the placement arm's test: per skill, or today's θ test (at most "
                             "--items, its standard-error stop off)")
    parser.add_argument("--known-share", type=float, default=0.5)
    parser.add_argument("--families", nargs="+", default=sorted(PRIOR_KNOWLEDGE),
                        choices=sorted(PRIOR_KNOWLEDGE))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    catalog, course = load_course(args.course)
    name, options = parse_policy(args.policy)
    policy = make_policy(name, **options)
    model = getattr(policy, "tracer_model", "bkt")
    schedule = Schedule(days=args.days, per_session=10)
    rows = []
    for family in args.families:
        log(f"{family}: {args.learners} learners, 3 arms, policy {args.policy} on {model}")
        started = time.perf_counter()
        study = placement_study(family, catalog, course, policy, n=args.learners,
                                seed=args.seed, schedule=schedule,
                                tracer=lambda: catalog.tracer(model),
                                known_share=args.known_share, method=args.method,
                                stop=SkillStop(max_length=args.items, confidence=CONFIDENCE)
                                if args.method == "skills" else StopRule(max_length=args.items),
                                oracle=True)
        row = study.summary()
        accuracy = classification(family, catalog, course, n=args.learners, seed=args.seed,
                                  length=args.items, known_share=args.known_share)
        row["fixed_length_accuracy"] = {arm: mean_ci(a) for arm, a in accuracy.items()}
        for arm, run in (("prior", study.prior), ("placement", study.placed),
                         ("oracle", study.oracle)):
            assert run is not None
            row[arm]["exercises_on_known"] = mean_ci(run.outcomes["exercises_on_known"])
        row["seconds"] = round(time.perf_counter() - started, 1)
        row["targets"] = verdict(row)
        rows.append(row)
    if args.json:
        print(json.dumps({"settings": vars(args), "tracer": model, "rows": rows,
                          "machine": machine()}))
        return
    print(f"{args.learners} learners per family know a random prerequisite-closed "
          f"{args.known_share:.0%} of {args.course}; {args.days} days x 10 exercises, policy "
          f"{args.policy} on {model}; placement: {args.method} test of at most {args.items} "
          f"items (counted as exercises)")
    for r in rows:
        prior, placed, oracle = r["prior"], r["placement"], r["oracle"]
        share = placed["oracle_share"]
        acc = r["fixed_length_accuracy"]
        print(f"\n{r['family']}: test items {r['placement_items']['mean']:.1f}, accuracy "
              f"{r['classification_accuracy']['mean']:.3f} (fixed {args.items} items: per-skill "
              f"{acc['skills']['mean']:.3f}, θ mapped {acc['theta']['mean']:.3f}, no test "
              f"{acc['prior']['mean']:.3f})")
        print(f"  {'arm':10} {'exercises':>9} {'cut':>7} {'post-test':>9} "
              f"{'post diff [95% CI]':>27} {'on known':>8} {'mastered':>8}")
        for arm, a in (("prior", prior), ("placement", placed), ("oracle", oracle)):
            diff = a.get("post_test_difference")
            print(f"  {arm:10} {a['exercises_to_mastery']['mean']:>9.1f} "
                  f"{a.get('cut') or 0.0:>+7.1%} {a['post_test']['mean']:>9.3f} "
                  + (f"{diff['mean']:>+9.4f} [{diff['ci95'][0]:+.4f}, {diff['ci95'][1]:+.4f}]"
                     if diff else f"{'(reference)':>27}")
                  + f" {a['exercises_on_known']['mean']:>8.1f} "
                    f"{a['mastered_share']['mean']:>8.2f}")
        low, high = share["ci95"]
        print("  share of the oracle start's saving: "
              + ("undefined (the oracle start saves nothing)" if share["mean"] is None else
                 f"{share['mean']:.2f} [{low if low is None else round(low, 2)}, "
                 f"{high if high is None else round(high, 2)}]")
              + f"; targets: {r['targets']}")
    log(f"machine: {machine()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
