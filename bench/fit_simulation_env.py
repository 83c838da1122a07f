"""Regenerate the fitted parameters of the ``fitted-bkt`` simulated learners.

The family (``engine/simulation/fitted.py``) plays learners whose true states follow the
project's ``bkt-forgets`` tracer fitted on ASSISTments 2009-10 (the DKT paper's training split,
``../shared/data/assist2009-dkt/builder_train.csv``). The fitted numbers are committed in
``engine/simulation/fitted_params/assist2009-bkt-forgets.json`` so that a clone without the data
can simulate; this script is where they come from. It fits, scores the fit on the test split
(evidence that the environment predicts real learners: pyBKT's BKT+forgets reaches AUC 0.826
there), writes the file with its provenance and prints a summary table.

Run from the repository root: ``.venv/bin/python bench/fit_simulation_env.py [--help]``
(a few seconds once numba has compiled the BKT kernels; half a minute when it must).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from benchinfo import log

from engine.simulation.fitted import MIN_ANSWERS, MODEL, PARAMS, fit_environment
from engine.tracing.registry import tracer_from_bytes
from training.metrics import scores
from training.readers import read_log

ROOT = Path(__file__).resolve().parents[1]
DATASET = "assist2009-dkt"
TRAIN, TEST = "builder_train.csv", "builder_test.csv"
PYBKT_FORGETS_AUC = 0.826  # ../shared/data/README.md: pyBKT 1.4.3, BKT+forgets, num_fits=5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                        help="the folder holding assist2009-dkt/ (default: ../shared/data)")
    parser.add_argument("--out", type=Path, default=PARAMS,
                        help="where to write the parameter file (default: the committed one)")
    parser.add_argument("--num-fits", type=int, default=5, help="EM restarts per skill")
    parser.add_argument("--seed", type=int, default=42, help="seed of the EM restarts")
    args = parser.parse_args()

    folder = args.data_dir / DATASET
    missing = [folder / f for f in (TRAIN, TEST) if not (folder / f).is_file()]
    if missing:
        raise SystemExit(f"error: data not found: {', '.join(map(str, missing))} (pass "
                         f"--data-dir: the folder that holds {DATASET}/)")
    log(f"reading {folder}")
    train, test = read_log(folder / TRAIN, "dkt3"), read_log(folder / TEST, "dkt3")
    log(f"fitting {MODEL} on {len(train):,} answers (num_fits={args.num_fits}, "
        f"seed={args.seed})")
    doc = fit_environment(train, num_fits=args.num_fits, seed=args.seed)
    tracer = tracer_from_bytes(MODEL, json.dumps(doc).encode())
    log("scoring the fit on the test split")
    auc = scores(test.correct, tracer.predict_log(test))["auc"]
    doc["source"] = {
        "dataset": f"{DATASET} (ASSISTments 2009-10 skill builder, DKT paper split)",
        "file": f"{DATASET}/{TRAIN}", "answers": len(train), "learners": train.n_learners,
        "test_auc": round(auc, 4), "test_file": f"{DATASET}/{TEST}",
        "regenerate": f"bench/fit_simulation_env.py --num-fits {args.num_fits} "
                      f"--seed {args.seed}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    log(f"wrote {args.out}")

    counts = doc["answers_per_skill"]
    eligible = [s for s, c in counts.items() if c >= MIN_ANSWERS]
    table = {key: np.array([np.ravel(doc["skills"][s][key])[-1] for s in eligible])
             for key in ("prior", "learns", "forgets", "guesses", "slips")}  # default class
    print(f"| {MODEL} on {DATASET} | ours | reference |")
    print("|---|---|---|")
    print(f"| test AUC | {auc:.3f} | {PYBKT_FORGETS_AUC} (pyBKT BKT+forgets) |")
    print(f"| skills fitted / with >= {MIN_ANSWERS:,} answers | {len(counts)} / "
          f"{len(eligible)} | - |")
    for key, values in table.items():
        q = np.quantile(values, [0.1, 0.5, 0.9])
        print(f"| {key} (eligible skills) 10% / median / 90% | {q[0]:.3f} / {q[1]:.3f} / "
              f"{q[2]:.3f} | - |")


if __name__ == "__main__":
    main()
