"""Learners who already know every skill (issue 21, "Known skills"): how many exercises until
the tutor releases them (the course `complete`, as the API says it), per skill of the course,
with and without a placement test first, and how many of them go to skills known at the start.

Per learner-model family and policy, the same learners (same seed; each knows every skill of
the course: :func:`engine.simulation.placement_value.placement_study` with a known share of
1.0) run three times on the policy's own tracer: from the prior (what a learner who skips
placement gets), after the per-skill placement test (at most ``--items`` items, stopping once every
skill is classified at ``--confidence``), and from the true state at no cost (the oracle start:
every skill at 0.99, the best any placement could do, so what it still spends is the policy's
and the completion rule's, not the test's). A placement item is an exercise the learner spends,
and with every skill known it is spent on a known skill: the placement arm counts its items
in both exercises to complete and exercises on known skills.

Targets: at most 0.4 exercises to complete per skill on generated:60 with the default policy
(placement included), and exercises on initially known skills at least 60% fewer than with
today's default (``target-success``, without placement).

    OMP_NUM_THREADS=1 .venv/bin/python bench/known_learners.py [--learners 400] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from benchinfo import log, machine

import engine.simulation  # noqa: F401  (registers the families)
from engine.catalog import Catalog
from engine.placement import SkillStop
from engine.selection.registry import DEFAULT_POLICY, make_policy, parse_policy
from engine.simulation.metrics import mean_ci
from engine.simulation.placement_value import (
    CONFIDENCE,
    MAX_LENGTH,
    PRIOR_KNOWLEDGE,
    placement_study,
)
from engine.simulation.run import Schedule
from training.simulate_cli import load_course

TARGET_PER_SKILL = 0.4  #: exercises to complete per skill, placement included
TARGET_KNOWN_CUT = 0.6  #: cut in exercises on known skills against today's default
TODAY = "target-success"  #: today's default policy (before issue 21)
ARMS = ("prior", "placement", "oracle")  #: how the tracer starts (module doc)


def arms(family: str, policy_spec: str, catalog: Catalog, course: str,
         args: argparse.Namespace) -> dict[str, Any]:
    """One family and policy: each arm's exercises to complete (total and per course skill)
    and exercises on known skills, means with 95% intervals, placement items counted."""
    name, options = parse_policy(policy_spec)
    policy = make_policy(name, **options)
    model = args.tracer or getattr(policy, "tracer_model", "bkt")
    skills = len(catalog.courses[course].skills)
    study = placement_study(family, catalog, course, policy, n=args.learners, seed=args.seed,
                            schedule=Schedule(days=args.days, per_session=10),
                            tracer=lambda: catalog.tracer(model), known_share=1.0,
                            stop=SkillStop(max_length=args.items, confidence=args.confidence),
                            oracle=True)
    assert study.oracle is not None
    assert study.known[:, [list(catalog.skills).index(s)
                           for s in catalog.courses[course].skills]].all()
    budget = study.budget
    row: dict[str, Any] = {"family": family, "policy": policy_spec, "tracer": model,
                           "skills": skills,
                           "placement_items": mean_ci(study.placement.length.astype(float))}
    for arm, run, extra in (("prior", study.prior, 0.0),
                            ("placement", study.placed, study.placement.length),
                            ("oracle", study.oracle, 0.0)):
        complete = run.outcomes["exercises_to_complete"]
        total = (complete + extra).clip(max=budget)
        row[arm] = {"exercises_to_complete": mean_ci(total),
                    "per_skill": mean_ci(total / skills),
                    "exercises_on_known": mean_ci(
                        (run.outcomes["exercises_on_known"] + extra).clip(max=budget)),
                    "never_released": float((complete >= budget).mean())}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", default="generated:60")
    parser.add_argument("--learners", type=int, default=400)
    parser.add_argument("--days", type=int, default=30, help="daily sessions of 10 exercises")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--policies", nargs="+", default=[DEFAULT_POLICY, TODAY])
    parser.add_argument("--items", type=int, default=MAX_LENGTH,
                        help="most items of the placement test")
    parser.add_argument("--confidence", type=float, default=CONFIDENCE,
                        help="the test stops once every skill's P(known) is at least this or "
                             "at most 1 minus it")
    parser.add_argument("--tracer", default=None,
                        help="every policy's tracer (default: each policy's own, as served)")
    parser.add_argument("--families", nargs="+", default=sorted(PRIOR_KNOWLEDGE),
                        choices=sorted(PRIOR_KNOWLEDGE))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    catalog, course = load_course(args.course)
    rows = []
    for family in args.families:
        for policy in args.policies:
            log(f"{family}: {args.learners} learners who know every skill, {policy}")
            started = time.perf_counter()
            rows.append(arms(family, policy, catalog, course, args) | {
                "seconds": round(time.perf_counter() - started, 1)})
    if args.json:
        print(json.dumps({"settings": vars(args), "rows": rows, "machine": machine()}))
        return
    print(f"{args.learners} learners per family know every skill of {args.course}; "
          f"{args.days} days x 10 exercises; placement: at most {args.items} items, "
          f"confidence {args.confidence} (its items counted as exercises on known skills)")
    width = max(16, *(len(p) for p in args.policies))
    print(f"{'family':14} {'policy':{width}} {'arm':10} {'to complete':>11} {'per skill':>9} "
          f"{'on known':>8} {'cut vs ' + TODAY + ' prior':>24} {'not released':>12}")
    for family in args.families:
        today = next((r["prior"]["exercises_on_known"]["mean"] for r in rows
                      if r["family"] == family and r["policy"] == TODAY), None)
        for r in (r for r in rows if r["family"] == family):
            for arm in ARMS:
                a = r[arm]
                on_known = a["exercises_on_known"]["mean"]
                cut = f"{1 - on_known / today:+.0%}" if today else "-"
                print(f"{family:14} {r['policy']:{width}} {arm:10} "
                      f"{a['exercises_to_complete']['mean']:>11.1f} "
                      f"{a['per_skill']['mean']:>9.3f} {on_known:>8.1f} {cut:>24} "
                      f"{a['never_released']:>12.2f}")
    print(f"targets: per skill <= {TARGET_PER_SKILL} ({DEFAULT_POLICY} with placement), "
          f"exercises on known skills cut >= {TARGET_KNOWN_CUT:.0%} against {TODAY} without")
    log(f"machine: {machine()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
