"""The cost of a placement step, today's θ test against the per-skill test, side by side in one
run (issue 21's speed target: a placement step stays within today's cost).

Both tests are configured as the API gives them (:mod:`api.placement_tests`): randomesque 3,
at most ``--length`` items without another stop, on the course's calibrated items; the θ test
with KL selection and EAP on the 81-point grid, the per-skill test on the course's knowledge
model (4,096 states) with θ kept alongside on the same grid. A step is what an answer costs
the engine: recording the answer (the new estimates) and selecting the next item. The same
simulated learners (each knowing a random prerequisite-closed half of the course and answering
as its guess and slip say) take both tests, alternately learner by learner, so that a busy
machine's noise falls on both alike. Wall and CPU time (the thread's) per step, p50 and p99.

    OMP_NUM_THREADS=1 .venv/bin/python bench/placement_step.py [--course generated:60] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
from benchinfo import log, machine

from engine.placement import (
    KnowledgeModel,
    Placement,
    SkillPlacement,
    SkillStop,
    StopRule,
)
from engine.placement.knowledge import sample_states
from engine.placement.select import Tables
from engine.simulation.placement_value import course_bank
from training.simulate_cli import load_course

RANDOMESQUE = 3  #: as the API (api.placement_tests.RANDOMESQUE)


def steps(test: Any, seed: int, truth: np.ndarray, model: KnowledgeModel,
          rng: np.random.Generator) -> tuple[list[float], list[float]]:
    """One learner's test: the wall and CPU ms of each step (answer + next selection)."""
    position = {s: k for k, s in enumerate(model.skills)}
    session = test.start(seed)
    item = session.next_item()
    wall, cpu = [], []
    while item is not None:
        j = model.index[item]
        knows = all(truth[position[s]] for s in model.items[j].skills)
        right = bool(rng.random() < (1.0 - model.slip[j] if knows else model.guess[0, j]))
        start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
        session.answer(item, right)
        item = session.next_item()
        wall.append((time.perf_counter_ns() - start) / 1e6)
        cpu.append((time.thread_time_ns() - start_cpu) / 1e6)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--course", default="generated:60")
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    catalog, course = load_course(args.course)
    bank = course_bank(catalog, course)[0]
    tables = Tables.build(bank, Placement(bank).grid)
    started = time.perf_counter()
    model = KnowledgeModel.from_catalog(catalog, catalog.courses[course].skills, bank.ids)
    build_s = time.perf_counter() - started
    tests = {
        "theta": Placement(bank, randomesque=RANDOMESQUE, grid=tables.grid,
                           stop=StopRule(args.length, args.length), shared_tables=tables),
        "skills": SkillPlacement(model, SkillStop(args.length, args.length, None),
                                 randomesque=RANDOMESQUE, tables=tables),
    }
    position = {s: k for k, s in enumerate(model.skills)}
    requires = [[position[r] for r in catalog.skills[s].requires if r in position]
                for s in model.skills]
    truths = sample_states(requires, args.learners, np.random.default_rng([args.seed, 1]),
                           size=len(model.skills) // 2)
    timed: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in tests}
    log(f"{args.course}: {len(bank)} items, {len(model.skills)} skills, {args.learners} "
        f"learners x {args.length} items, both tests alternately")
    for k, truth in enumerate(truths):
        for name, test in (tests.items() if k % 2 else reversed(tests.items())):
            wall, cpu = steps(test, args.seed * 1_000_003 + k, truth, model,
                              np.random.default_rng([args.seed, k]))
            timed[name][0].extend(wall)
            timed[name][1].extend(cpu)
    rows = {name: {"steps": len(wall),
                   "wall_ms_p50": float(np.percentile(wall, 50)),
                   "wall_ms_p99": float(np.percentile(wall, 99)),
                   "cpu_ms_p50": float(np.percentile(cpu, 50)),
                   "cpu_ms_p99": float(np.percentile(cpu, 99))}
            for name, (wall, cpu) in timed.items()}
    summary = {"course": args.course, "items": len(bank), "skills": len(model.skills),
               "learners": args.learners, "length": args.length,
               "model_build_s": round(build_s, 3), "tests": rows,
               "p99_ratio_cpu": rows["skills"]["cpu_ms_p99"] / rows["theta"]["cpu_ms_p99"],
               "p99_ratio_wall": rows["skills"]["wall_ms_p99"] / rows["theta"]["wall_ms_p99"],
               "machine": machine()}
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{args.course}: {len(bank)} items, {len(model.skills)} skills; knowledge model "
          f"built in {build_s:.2f} s; {args.learners} learners x {args.length} items")
    print(f"{'test':8} {'steps':>7} {'wall p50':>9} {'wall p99':>9} {'cpu p50':>8} "
          f"{'cpu p99':>8}  (ms)")
    for name, r in rows.items():
        print(f"{name:8} {r['steps']:>7} {r['wall_ms_p50']:>9.3f} {r['wall_ms_p99']:>9.3f} "
              f"{r['cpu_ms_p50']:>8.3f} {r['cpu_ms_p99']:>8.3f}")
    print(f"per-skill / θ at p99: CPU {summary['p99_ratio_cpu']:.2f}x, wall "
          f"{summary['p99_ratio_wall']:.2f}x")
    log(f"machine: {machine()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
