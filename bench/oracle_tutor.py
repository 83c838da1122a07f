"""How far could any policy go? A tutor that reads the simulated learners' true state.

Issue 14 asks the ``spaced`` policy for >= 25% fewer exercises to course mastery than the fixed
curriculum and >= 15% fewer than lowest-mastery-first. Every real policy sees the learner only
through a tracer; this script runs, on the same learners (same seed, same answer draws), a
tutor that sees the ground truth instead (:meth:`Population.mastery` and
:meth:`Population.p_correct`, at the moment of each choice):

* the first course skill in prerequisite order that the learner has not truly mastered (so a
  skill forgotten is taken up again at once, a skill mastered is never practised again);
* among that skill's items, the one whose true P(correct) is closest to 0.75 (as the
  target-success policy would with a perfect tracer);
* nothing once every course skill is mastered (the count has stopped).

It is greedy, not optimal, but it wastes nothing a tracer could save: no exercise on a skill
already mastered, none missing on one forgotten. Its exercises to course mastery, next to the
real policies', say how much room a better policy has on each learner model.

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
from engine.selection.batch import scope
from engine.selection.prepared import prepare
from engine.selection.registry import make_policy
from engine.simulation.base import FAMILIES, NO_ITEM, Population, make_population
from engine.simulation.courses import GENERATED_COURSE, generated_catalog
from engine.simulation.metrics import paired_ci
from engine.simulation.run import (
    EPOCH,
    EngineTutor,
    Schedule,
    learner_ids,
    run_policy,
    run_tutor,
)
from engine.tracing.base import Tracer
from engine.tracing.registry import make_tracer

POLICIES = ("fixed-curriculum", "lowest-mastery", "target-success", "spaced")
TARGET = 0.75


class OracleTutor:
    """Chooses from the population's true state (module docstring); learns nothing."""

    def __init__(self, population: Population, catalog: Catalog, course: str) -> None:
        self.population = population
        prepared = prepare(catalog)
        items, skills, _ = scope(prepared, course)
        position = {s: p for p, s in enumerate(catalog.order)}
        self.order = np.array(sorted(np.flatnonzero(skills),
                                     key=lambda k: position[prepared.skill_ids[k]]))
        # an item belongs to the one of its skills that comes last in the order
        rank = np.full(len(prepared.skill_ids), -1)
        rank[self.order] = np.arange(len(self.order))
        owner = [max(prepared.pair_skill[prepared.pair_ptr[j]:prepared.pair_ptr[j + 1]],
                     key=lambda k: rank[k]) for j in range(len(prepared.item_ids))]
        by_skill: dict[int, list[int]] = {int(k): [] for k in self.order}
        for j in np.flatnonzero(items):
            by_skill[int(owner[j])].append(int(j))
        width = max(len(v) for v in by_skill.values())
        self.items = np.full((len(prepared.skill_ids), width), NO_ITEM, dtype=np.int64)
        for k, js in by_skill.items():
            self.items[k, :len(js)] = js
        self.course_skills = skills

    def choose(self, at: datetime) -> np.ndarray:
        t = (at - EPOCH).total_seconds()
        mastered = self.population.mastery(t)[:, self.order]
        pending = ~mastered
        first = np.argmax(pending, axis=1)
        skill = self.order[first]
        best = np.full(len(skill), NO_ITEM, dtype=np.int64)
        gap = np.full(len(skill), np.inf)
        for r in range(self.items.shape[1]):
            candidate = self.items[skill, r]
            p = self.population.p_correct(np.where(candidate == NO_ITEM, 0, candidate), t)
            closer = (candidate != NO_ITEM) & (np.abs(p - TARGET) < gap)
            best = np.where(closer, candidate, best)
            gap = np.where(closer, np.abs(p - TARGET), gap)
        return np.where(pending.any(axis=1), best, NO_ITEM)

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        """Nothing to trace: the truth is read at every choice."""

    def mastery(self, at: datetime) -> np.ndarray:
        t = (at - EPOCH).total_seconds()
        return self.population.mastery(t)[:, self.course_skills].astype(float)


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
