"""Issue 21's teaching targets, checked: the default policy against every baseline, per course
and learner model, with paired 95% intervals.

For each course and learner-model family, the baselines (fixed curriculum, lowest mastery
first, target success), the default policy (``DEFAULT_POLICY``, on its ``tracer_model``) and
the oracle tutor run on the same learners (:func:`engine.simulation.run.compare`, the runs of
``tutor simulate``, the API's journey included). Printed per row:

* post-test and 30-day retention: the default minus each baseline, paired per learner; the
  target is met where no interval lies below 0 (``worst low`` is the lowest lower bound), and
  strictly above the fixed curriculum on the families that forget with time;
* exercises to course mastery against lowest-mastery-first (target: not above), and the share
  of the oracle's gain over the fixed curriculum (target: at least 30%).

    OMP_NUM_THREADS=1 .venv/bin/python bench/teach_targets.py [--learners 1000] [--json]
"""

from __future__ import annotations

import argparse
import functools
import json
from typing import Any

from benchinfo import log, machine

import engine.simulation  # noqa: F401  (registers the families)
from engine.selection.registry import DEFAULT_POLICY, make_policy
from engine.simulation.base import FAMILIES
from engine.simulation.metrics import gain_share_ci, paired_ci
from engine.simulation.oracle import OracleTutor
from engine.simulation.run import Schedule, compare
from training.simulate_cli import load_course

BASELINES = ("fixed-curriculum", "lowest-mastery", "target-success")
COURSES = ("generated:20", "generated:60", "math.course.whole-numbers")
#: families whose learners forget with time (retention must beat the fixed curriculum there)
FORGETTING = ("irt-memory", "prereq-forget")


def check(course: str, families: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    """One row per family: the default policy's differences and shares (module docstring)."""
    catalog, course_id = load_course(course)
    policies = {name: make_policy(name) for name in (*BASELINES, DEFAULT_POLICY)}
    tracers = {label: functools.partial(catalog.tracer, p.tracer_model)
               for label, p in policies.items() if getattr(p, "tracer_model", None)}
    result = compare(families, catalog, course_id, policies, n=n, seed=seed,
                     schedule=Schedule(), tracer=catalog.tracer, tracers=tracers,
                     tutors={"oracle": OracleTutor})
    rows = []
    for family, runs in result.runs.items():
        teach = runs[DEFAULT_POLICY].outcomes
        diffs = {f"{metric} vs {base}": paired_ci(teach[metric], runs[base].outcomes[metric])
                 for base in BASELINES for metric in ("post_test", "retention_30d")}
        worst = min(d["ci95"][0] for d in diffs.values())
        fixed = runs["fixed-curriculum"].outcomes
        above_fixed = all(diffs[f"{m} vs fixed-curriculum"]["ci95"][0] > 0
                          for m in ("post_test", "retention_30d"))
        exercises = paired_ci(teach["exercises_to_mastery"],
                              runs["lowest-mastery"].outcomes["exercises_to_mastery"])
        share = gain_share_ci(fixed["exercises_to_mastery"], teach["exercises_to_mastery"],
                              runs["oracle"].outcomes["exercises_to_mastery"])
        rows.append({
            "course": course, "family": family, "differences": diffs, "worst_low": worst,
            "met_quality": worst >= 0 and (family not in FORGETTING or above_fixed),
            "exercises_vs_lowest_mastery": exercises,
            "met_exercises": exercises["ci95"][0] <= 0,
            "oracle_share": share,
            "met_oracle_share": share["mean"] is not None and share["mean"] >= 0.3,
            "post_test": float(teach["post_test"].mean()),
            "retention_30d": float(teach["retention_30d"].mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--course", action="append", help=f"(repeat; default: {COURSES})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    families = sorted(FAMILIES)
    rows = []
    for course in args.course or COURSES:
        log(f"{course}: {', '.join(families)}")
        rows += check(course, families, args.learners, args.seed)
    if args.json:
        print(json.dumps({"machine": machine(), "learners": args.learners, "seed": args.seed,
                          "default_policy": DEFAULT_POLICY, "rows": rows}, indent=1))
        return
    print(f"| course | family | post-test | retention 30 d | worst low (vs {', '.join(BASELINES)})"
          " | met | exercises vs lowest-mastery | met | share of oracle gain | met |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ex, share = r["exercises_vs_lowest_mastery"], r["oracle_share"]
        shown = "n/a" if share["mean"] is None else f"{share['mean']:.0%}"
        print(f"| {r['course']} | {r['family']} | {r['post_test']:.3f} | "
              f"{r['retention_30d']:.3f} | {r['worst_low']:+.4f} | "
              f"{'yes' if r['met_quality'] else 'no'} | {ex['mean']:+.1f} "
              f"[{ex['ci95'][0]:+.1f}, {ex['ci95'][1]:+.1f}] | "
              f"{'yes' if r['met_exercises'] else 'no'} | {shown} | "
              f"{'yes' if r['met_oracle_share'] else 'no'} |")


if __name__ == "__main__":
    main()
