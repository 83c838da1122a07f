"""Item calibration: 2PL parameter recovery in the issue's design (issue 15's calibration target).

500 simulated learners x 50 items, every learner answering every item; a ~ logN(0, 0.25),
b ~ N(0, 1), θ ~ N(0, 1); one replication per seed. Each replication is fitted twice on the
same answers: ``prior="none"`` (marginal maximum likelihood, what BILOG/mirt/girth do without
priors) and ``prior="empirical"`` (the default: empirical-Bayes priors on log a and b). The
table gives RMSE of a and b per seed, and per seed the mean and SD of the sampled abilities:
the calibration fixes the scale at N(0, 1), so a sample whose abilities are off that shifts
every difficulty, whatever the method.

Run: ``.venv/bin/python bench/calibration_bench.py [--seeds 10] [--learners 500] [--items 50]``
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from benchinfo import log, machine

from engine.placement import PRIORS, ItemBank, calibrate, probability

TARGET = 0.15


def replication(learners: int, items: int, seed: int) -> dict[str, float]:
    g = np.random.default_rng(seed)
    true = ItemBank.build(g.lognormal(0, 0.25, items), g.normal(0, 1, items))
    theta = g.normal(size=learners)
    correct = (g.random((learners, items)) < probability(true, theta)).ravel()
    learner, item = (x.ravel() for x in np.meshgrid(np.arange(learners), np.arange(items),
                                                     indexing="ij"))
    row: dict[str, float] = {"seed": seed, "theta_mean": float(theta.mean()),
                             "theta_sd": float(theta.std())}
    for prior in PRIORS:
        fit = calibrate(learner, item, correct, true.ids, prior=prior)
        for name in ("a", "b"):
            error = getattr(fit.bank, name) - getattr(true, name)
            row[f"{prior}_{name}"] = float(np.sqrt(np.mean(error ** 2)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="replications (seeds 0..N-1)")
    parser.add_argument("--learners", type=int, default=500)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    rows = []
    for seed in range(args.seeds):
        log(f"seed {seed}")
        rows.append(replication(args.learners, args.items, seed))
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}))
        return
    print("| seed | θ sample mean / SD | a RMSE: none | a RMSE: empirical | b RMSE: none | "
          "b RMSE: empirical |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['theta_mean']:+.3f} / {r['theta_sd']:.3f} | "
              f"{r['none_a']:.3f} | {r['empirical_a']:.3f} | {r['none_b']:.3f} | "
              f"{r['empirical_b']:.3f} |")
    for prior in PRIORS:
        a = np.array([r[f"{prior}_a"] for r in rows])
        b = np.array([r[f"{prior}_b"] for r in rows])
        both = int(((a <= TARGET) & (b <= TARGET)).sum())
        print(f"{prior:>9}: mean RMSE a {a.mean():.3f}, b {b.mean():.3f}; a and b both <= "
              f"{TARGET} on {both} of {len(rows)} seeds")


if __name__ == "__main__":
    main()
