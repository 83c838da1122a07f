"""pyBKT 1.4.3 side of ``bench/bkt_vs_pybkt.py``; runs inside ``bench/.pybkt-venv``.

It imports only the standard library, pyBKT and its dependencies (never the project: the two
venvs pin incompatible numpy versions), so the entry point runs it as a subprocess and reads the
one JSON object it prints as the last line of stdout. Everything else (progress, anything pyBKT
prints) goes to stderr so that the JSON line stays parseable.

Measured, on pyBKT CSVs (order_id, user_id, skill_name, correct) written by the entry point:

* fit seconds per repeat (a fresh ``Model`` each time, so nothing is reused), BKT and BKT+forgets;
* ``evaluate`` on the test CSV: AUC, RMSE, accuracy;
* batch replay: ``predict`` on an in-memory DataFrame of each split (best of three), the
  counterpart of our ``predict_log``;
* ``Roster.update_state`` per answer over the first N test answers, the counterpart of our
  online ``update``.

Run it with ``OPENBLAS_NUM_THREADS=1`` (the entry point does): OpenBLAS's thread pool and
pyBKT's OpenMP threads otherwise oversubscribe a small machine, and after a fit each
``update_state`` can wait milliseconds for a scheduler tick instead of taking ~0.1 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyBKT
from pyBKT.models import Model, Roster

_REPLAY_RUNS = 3


def _log(msg: str) -> None:
    print(f"  [pyBKT] {msg}", file=sys.stderr, flush=True)


def _extension() -> str:
    """Path of the compiled E-step: proof in the results that the C++ build was measured."""
    found = sorted((Path(pyBKT.__file__).parent / "fit").glob("E_step*.so"))
    if not found:
        raise SystemExit("pyBKT has no compiled E_step extension: rerun bench/setup_pybkt.sh")
    return str(found[0])


def _fit_and_score(train: pd.DataFrame, test: str, forgets: bool, num_fits: int, seed: int,
                   repeats: int) -> tuple[Model, dict[str, Any]]:
    """Fit ``repeats`` fresh models (same seed: the same fit each time) and score the last.

    The training frame is already in memory, as our log is for our fit: the timing covers
    pyBKT's per-skill conversion and EM, not CSV parsing.
    """
    fit_s = []
    model = None
    for run in range(repeats):
        model = Model(seed=seed, num_fits=num_fits)
        data = train.copy()
        t0 = time.perf_counter()
        model.fit(data=data, forgets=forgets)
        fit_s.append(time.perf_counter() - t0)
        _log(f"fit forgets={forgets} run {run + 1}/{repeats}: {fit_s[-1]:.2f} s")
    assert model is not None
    auc, rmse, accuracy = model.evaluate(data_path=test, metric=["auc", "rmse", "accuracy"])
    return model, {"fit_s": fit_s, "auc": float(auc), "rmse": float(rmse),
                   "accuracy": float(accuracy)}


def _replay(model: Model, frame: pd.DataFrame) -> dict[str, float]:
    """Best-of-three answers per second of ``predict`` on a DataFrame already in memory.

    ``predict`` rewrites the frame's columns in place, so every run gets a fresh copy, made
    outside the timed region.
    """
    best = float("inf")
    for _ in range(_REPLAY_RUNS):
        data = frame.copy()
        t0 = time.perf_counter()
        model.predict(data=data)
        best = min(best, time.perf_counter() - t0)
    return {"answers": len(frame), "best_s": best, "answers_per_s": len(frame) / best}


def _roster_updates(model: Model, test: pd.DataFrame, n: int) -> dict[str, Any]:
    """Time ``Roster.update_state`` over the first ``n`` test answers, in order.

    Answers on skills the model was not fitted on are skipped (the Roster cannot update them);
    the Roster is built beforehand with exactly the (learner, skill) pairs those answers need.
    """
    rows = test.sort_values("order_id", kind="stable")
    fitted = rows["skill_name"].astype(str).isin(list(model.fit_model))
    rows = rows[fitted].head(n)
    answers = [(str(s), str(u), int(c)) for s, u, c in
               zip(rows["skill_name"], rows["user_id"], rows["correct"], strict=True)]
    learners_of: dict[str, set[str]] = defaultdict(set)
    for skill, learner, _ in answers:
        learners_of[skill].add(learner)

    t0 = time.perf_counter()
    roster = Roster([], sorted(learners_of), model=model)
    for skill, learners in learners_of.items():
        roster.add_students(skill, sorted(learners))
    build_s = time.perf_counter() - t0

    times_ns = np.empty(len(answers), dtype=np.int64)
    for i, (skill, learner, correct) in enumerate(answers):
        t = time.perf_counter_ns()
        roster.update_state(skill, learner, correct)
        times_ns[i] = time.perf_counter_ns() - t
    us = times_ns / 1e3
    return {"answers": len(answers), "unfitted_skill_answers_in_test": int((~fitted).sum()),
            "roster_build_s": build_s,
            "mean_us": float(us.mean()), "p50_us": float(np.percentile(us, 50)),
            "p99_us": float(np.percentile(us, 99))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All pyBKT measurements, as one JSON-ready dict."""
    result: dict[str, Any] = {"pybkt_version": "1.4.3", "numpy": np.__version__,
                              "pandas": pd.__version__, "extension": _extension(),
                              "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    frames = {split: pd.read_csv(path) for split, path in
              (("test", args.test), ("train", args.train))}
    models = {}
    for key, forgets in (("bkt", False), ("bkt_forgets", True)):
        models[key], result[key] = _fit_and_score(frames["train"], args.test, forgets,
                                                  args.num_fits, args.seed, args.repeats)
        _log(f"{key}: AUC {result[key]['auc']:.4f}")
    bkt = models["bkt"]
    result["replay"] = {split: _replay(bkt, frame) for split, frame in frames.items()}
    _log(f"replay: {result['replay']['test']['answers_per_s']:,.0f} answers/s on test")
    result["roster_update"] = _roster_updates(bkt, frames["test"], args.update_answers)
    _log(f"Roster.update_state: {result['roster_update']['mean_us']:.1f} us mean")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", help="training CSV (order_id, user_id, skill_name, correct)")
    parser.add_argument("test", help="test CSV, same columns")
    parser.add_argument("--num-fits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-answers", type=int, default=20_000,
                        help="how many test answers to time Roster.update_state on")
    args = parser.parse_args()
    with contextlib.redirect_stdout(sys.stderr):
        result = run(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
