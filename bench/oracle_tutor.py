"""How far could any policy go? A tutor that reads the simulated learners' true state.

Issue 14 asks the ``spaced`` policy for >= 25% fewer exercises to course mastery than the fixed
curriculum and >= 15% fewer than lowest-mastery-first. Every real policy sees the learner only
through a tracer; this script runs, on the same learners (same seed, same answer draws), the
engine's oracle tutor (:class:`engine.simulation.oracle.OracleTutor`, also a row of ``tutor
simulate``), which sees the ground truth instead: the first course skill in prerequisite order
not truly mastered, its item with true P(correct) closest to 0.75, nothing once the course is
mastered. Its exercises to course mastery, next to the real policies', say how much room a
better policy has on each learner model.

``--fitted``: the policies also run with tracers fitted (``Tracer.fit``, as ``tutor fit``
does) on the answer log of a warm-up cohort (other learners of the family, seed 99, under the
fixed curriculum), instead of the content's own BKT parameters: is the gap the tracer's
parameters?

    OMP_NUM_THREADS=1 .venv/bin/python bench/oracle_tutor.py [--learners 1000] [--fitted] [--json]
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

import numpy as np
from benchinfo import log, machine

import engine.simulation  # noqa: F401  (registers the families)
from engine.catalog import Catalog
from engine.events import AnswerEvent, AnswerLog
from engine.selection.registry import make_policy
from engine.simulation.base import FAMILIES, NO_ITEM, make_population
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.metrics import paired_ci
from engine.simulation.oracle import OracleTutor
from engine.simulation.run import (
    EngineTutor,
    Schedule,
    learner_ids,
    run_policy,
    run_tutor,
)
from engine.tracing.base import Tracer
from engine.tracing.registry import make_tracer

POLICIES = ("fixed-curriculum", "lowest-mastery", "target-success", "spaced")


class LoggingTutor(EngineTutor):
    """The engine, keeping every answer as an event (the log a tenant would fit on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[AnswerEvent] = []

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        index = self.prepared.index
        for i in np.flatnonzero(items != NO_ITEM).tolist():
            j = int(items[i])
            self.events.append(AnswerEvent(self.learners[i], index.item_ids[j],
                                           index.item_skills[j], bool(correct[i]),
                                           timestamp=at))
        super().record(items, correct, at)


def fitted_tracers(family: str, catalog: Catalog, n: int,
                   schedule: Schedule) -> dict[str, Tracer[Any]]:
    """BKT and bkt-memory fitted on a warm-up cohort's log (seed 99, fixed curriculum)."""
    warm = LoggingTutor(catalog, GENERATED_COURSE, make_policy("fixed-curriculum"),
                        catalog.tracer(), learner_ids("warm", family, n))
    run_tutor(family, catalog, GENERATED_COURSE, warm, n=n, seed=99, schedule=schedule,
              label="warm-up")
    log = AnswerLog.from_events(warm.events)
    tracers: dict[str, Tracer[Any]] = {}
    for model in ("bkt", "bkt-memory"):
        tracers[model] = make_tracer(model)
        tracers[model].fit(log)
    return tracers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fitted", action="store_true",
                        help="also run the policies with tracers fitted on a warm-up cohort")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    catalog = generated_catalog(args.skills, seed=1)
    schedule = Schedule(days=args.days, per_session=10)
    rows: list[dict[str, Any]] = []
    for family in sorted(FAMILIES):
        runs = {}
        fitted = fitted_tracers(family, catalog, args.learners, schedule) if args.fitted \
            else {}
        for name in POLICIES:
            policy = make_policy(name)
            model = getattr(policy, "tracer_model", None) or "bkt"  # as `tutor simulate` does
            tracers = {name: catalog.tracer(model)}
            if fitted and name != "fixed-curriculum":  # (the curriculum reads no tracer)
                tracers[f"{name} (fitted tracer)"] = fitted[model]
            for label, tracer in tracers.items():
                log(f"{family}: {label}")
                runs[label] = run_policy(family, catalog, GENERATED_COURSE, policy,
                                         n=args.learners, seed=args.seed, schedule=schedule,
                                         tracer=tracer)
        log(f"{family}: oracle")
        population = make_population(family, catalog, args.learners, args.seed)
        runs["oracle"] = run_tutor(family, catalog, GENERATED_COURSE,
                                   OracleTutor(population, catalog, GENERATED_COURSE),
                                   n=args.learners, seed=args.seed, schedule=schedule,
                                   label="oracle", population=population)
        fixed = runs["fixed-curriculum"].outcomes["exercises_to_mastery"]
        for name, run in runs.items():
            exercises = run.outcomes["exercises_to_mastery"]
            rows.append({"family": family, "tutor": name, "exercises": float(exercises.mean()),
                         "vs_fixed": paired_ci(exercises, fixed)["mean"] / fixed.mean(),
                         "reached": float(run.mastered.mean()),
                         "post_test": float(run.outcomes["post_test"].mean()),
                         "retention_30d": float(run.outcomes["retention_30d"].mean())})
    if args.json:
        print(json.dumps({"machine": machine(), "learners": args.learners, "rows": rows}))
        return
    print("| family | tutor | exercises to mastery | vs fixed curriculum | reached mastery | "
          "post-test | retention 30 d |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['tutor']} | {r['exercises']:.1f} | {r['vs_fixed']:+.1%} | "
              f"{r['reached']:.2f} | {r['post_test']:.3f} | {r['retention_30d']:.3f} |")


if __name__ == "__main__":
    main()
