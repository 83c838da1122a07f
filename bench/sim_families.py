"""Microseconds per population step of every simulated learner family, 1,000 learners.

A policy comparison advances a population once per exercise: the runner asks the true
P(correct) of every learner's item, lets the population practise, and reads true mastery. The
issue's speed target (1,000 learners x 5 policies x 30 days in under 60 s) leaves each family a
small share of that budget next to the policies and tracers; this measures the share: one step
(``p_correct`` + ``practise`` + ``mastery``) and one test (``test_score`` on every course item)
on a generated 20-skill course, best of several repeats.

Run from the repository root: ``.venv/bin/python bench/sim_families.py [--help]``.
"""

from __future__ import annotations

import argparse
import os
import timeit

import numpy as np
from benchinfo import log, machine

from engine.catalog import Catalog
from engine.simulation.base import DAY, FAMILIES, make_population
from engine.simulation.courses import generated_catalog


def time_family(family: str, catalog: Catalog, n: int, steps: int) -> tuple[float, float]:
    """Seconds per population step and per test on every item, best of several repeats."""
    pop = make_population(family, catalog, n, 1)
    rng = np.random.default_rng(0)
    items = rng.integers(0, len(catalog.items), (steps, n))
    every_item = np.arange(len(catalog.items))
    done = [0]

    def step() -> None:
        at = DAY + 60.0 * done[0]
        chosen = items[done[0] % steps]
        pop.practise(chosen, rng.random(n) < pop.p_correct(chosen, at), at)
        pop.mastery(at)
        done[0] += 1

    per_step = min(timeit.repeat(step, number=steps, repeat=5)) / steps
    per_test = min(timeit.repeat(lambda: pop.test_score(every_item, DAY * 30), number=5,
                                 repeat=3)) / 5
    return per_step, per_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=1_000)
    parser.add_argument("--skills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=200, help="steps per timing repeat")
    args = parser.parse_args()
    catalog = generated_catalog(args.skills, seed=0)
    print(f"| family | µs per step ({args.learners:,} learners) | ms per test "
          f"({len(catalog.items)} items) |")
    print("|---|---|---|")
    for family in sorted(FAMILIES):
        log(f"timing {family}")
        per_step, per_test = time_family(family, catalog, args.learners, args.steps)
        print(f"| {family} | {per_step * 1e6:,.0f} | {per_test * 1e3:.1f} |")
    log(f"machine: {machine()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})")


if __name__ == "__main__":
    main()
