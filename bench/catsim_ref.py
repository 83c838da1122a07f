"""catsim 0.21 side of ``bench/placement_bench.py``; runs inside ``bench/.catsim-venv``.

It imports only numpy and catsim (never the project), so the entry point runs it as a
subprocess and reads the one JSON object it prints as the last line of stdout; progress goes to
stderr.

The reference is catsim's textbook maximum-information CAT: every examinee starts at θ = 0
(``FixedPointInitializer``), items by ``MaxInfoSelector`` (no exposure control), ability by
``NumericalSearchEstimator`` (ML by bounded search, with Dodd's heuristic while all answers
agree), stopping by ``TestLengthStopper`` or ``MinErrorStopper`` (SE from the test information
at θ̂). Each step (selection + estimation) is timed, wall and CPU, by wrapping the two calls.

Input: a bank file (tab-separated a b c d, with a header), a file of true abilities (one a
line), the stop rule and a seed for catsim's answer draws.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from catsim.estimation import NumericalSearchEstimator
from catsim.initialization import FixedPointInitializer
from catsim.item_bank import ItemBank
from catsim.selection import MaxInfoSelector
from catsim.simulation import Simulator
from catsim.stopping import MinErrorStopper, TestLengthStopper


def _bank(path: str) -> np.ndarray:
    with open(path, encoding="utf-8") as file:
        lines = file.read().splitlines()
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:] if line.strip()]
    return np.array([[float(r[header.index(k)]) for k in ("a", "b", "c", "d")] for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bank", required=True)
    parser.add_argument("--thetas", required=True)
    parser.add_argument("--length", type=int)
    parser.add_argument("--stop-se", type=float)
    parser.add_argument("--max-length", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    params = _bank(args.bank)
    thetas = np.loadtxt(args.thetas)
    steps: list[float] = []
    cpu: list[float] = []
    selector = MaxInfoSelector()
    estimator = NumericalSearchEstimator()
    started: list[tuple[int, int]] = []
    select, estimate = selector.select, estimator.estimate

    def timed_select(*a: Any, **k: Any) -> Any:
        started.append((time.perf_counter_ns(), time.thread_time_ns()))
        return select(*a, **k)

    def timed_estimate(*a: Any, **k: Any) -> Any:
        value = estimate(*a, **k)
        wall, own = started.pop()
        steps.append((time.perf_counter_ns() - wall) / 1e6)
        cpu.append((time.thread_time_ns() - own) / 1e6)
        return value

    selector.select = timed_select  # type: ignore[method-assign]
    estimator.estimate = timed_estimate  # type: ignore[method-assign]
    stopper = (TestLengthStopper(min_items=args.length, max_items=args.length)
               if args.length else MinErrorStopper(args.stop_se, max_items=args.max_length))
    simulator = Simulator(ItemBank(params), thetas, FixedPointInitializer(0.0), selector,
                          estimator, stopper, seed=args.seed)
    began = time.perf_counter()
    simulator.simulate()
    print(f"  [catsim] {len(thetas)} examinees in {time.perf_counter() - began:.1f} s",
          file=sys.stderr)
    estimates = np.array(simulator.latest_estimations)
    error = estimates - thetas
    counts = np.zeros(len(params))
    for items in simulator.administered_items:
        counts[items] += 1
    exposure = counts / len(thetas)
    print(json.dumps({
        "theta_rmse": float(np.sqrt(np.mean(error ** 2))), "bias": float(np.mean(error)),
        "corr": float(np.corrcoef(estimates, thetas)[0, 1]),
        "mean_length": float(np.mean([len(i) for i in simulator.administered_items])),
        "max_exposure": float(exposure.max()), "unused_share": float(np.mean(exposure == 0)),
        "step_ms_p50": float(np.percentile(steps, 50)),
        "step_ms_p99": float(np.percentile(steps, 99)),
        "step_cpu_ms_p50": float(np.percentile(cpu, 50)),
        "step_cpu_ms_p99": float(np.percentile(cpu, 99)),
    }))


if __name__ == "__main__":
    main()
