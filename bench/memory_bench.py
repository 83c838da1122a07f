"""Benchmark memory models on the flashcard review log beside FSRS-6 (py-fsrs), in one run.

Protocol (``training/review_replay.py``, as ``tutor replay --format reviews`` runs it): reviews in
time order, the first 70% train, the rest are predicted online (each card from all its earlier
reviews), scored when a day or more after the card's previous review. Rows: FSRS-6 with default
and optimized parameters (the anchors), the engine's recommended ``memory`` model, and each
option tried for it (kept only if it pays), then the online API's cost per call.

Run from the repository root: ``.venv/bin/python bench/memory_bench.py [--help]``.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy and torch load

import torch
from benchinfo import latencies, log, machine

from engine.memory import make_memory_model
from engine.memory.reviews import as_datetime
from training.readers.reviews import read_reviews
from training.review_replay import replay_reviews

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "review-log"
#: the issue's measurements of FSRS-6 on this log (py-fsrs, same protocol)
REFERENCE = {"fsrs": {"log_loss": 0.4313, "auc": 0.635}, "fsrs-optimized": {"log_loss": 0.4321}}
#: (row label, model name, options): the anchors, the recommended model, the options measured
ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("FSRS-6, default parameters (py-fsrs)", "fsrs", {}),
    ("FSRS-6, optimized on the training part", "fsrs-optimized", {}),
    ("memory (recommended): calibrated, counts, recency", "memory", {}),
    ("  option: calibration only (no counts)", "memory", {"features": ()}),
    ("  option: counts, no recency weighting", "memory", {"half_lives": (None,)}),
    ("  option: + same-day (learning-step) counts", "memory",
     {"features": ("counts", "same_day")}),
    ("  option: + previous review's duration", "memory", {"features": ("counts", "duration")}),
    ("  option: over optimized FSRS parameters", "memory", {"optimize_fsrs": True}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=DATA / "review_log_single_learner.csv",
                        help="review log (default: ../shared/data/review-log)")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reviews = read_reviews(args.log)
    results = []
    for label, model, options in ROWS:
        log(f"{label}")
        result, _, _ = replay_reviews(model, reviews, options=options)
        results.append((label, result))
    timing = _online_cost(reviews)
    print(f"Review log {args.log.name}: {len(reviews):,} reviews, {results[0][1]['n_cards']:,} "
          f"cards; chrono:0.7 split, {results[0][1]['n_test']:,} scored test reviews")
    print(f"{'model':54s} {'log loss':>9s} {'RMSE':>7s} {'RMSE(bins)':>10s} {'AUC':>7s} "
          f"{'fit s':>6s} | {'reference log loss / AUC':>24s}")
    for label, r in results:
        ref = REFERENCE.get(r["model"]) if not label.startswith("  ") else None
        shown = "" if ref is None else (f"{ref['log_loss']:.4f}" + (f" / {ref['auc']:.3f}"
                                                                    if "auc" in ref else ""))
        print(f"{label:54s} {r['log_loss']:9.4f} {r['rmse']:7.4f} {r['rmse_bins']:10.4f} "
              f"{r['auc']:7.4f} {r['fit_seconds']:6.1f} | {shown:>24s}")
    memory = dict(results)[ROWS[2][0]]
    anchors = {r["model"]: r for label, r in results[:2]}
    print("targets: log loss < FSRS-6 default ({:.4f}): {}; < FSRS-6 optimized ({:.4f}): {}; "
          "AUC > FSRS-6 default ({:.4f}): {}".format(
              anchors["fsrs"]["log_loss"], memory["log_loss"] < anchors["fsrs"]["log_loss"],
              anchors["fsrs-optimized"]["log_loss"],
              memory["log_loss"] < anchors["fsrs-optimized"]["log_loss"],
              anchors["fsrs"]["auc"], memory["auc"] > anchors["fsrs"]["auc"]))
    update, recall = timing["update"], timing["recall"]
    print(f"online API (memory model, one learner's cards): update {update['mean_us']:.1f} µs "
          f"mean (p99 {update['p99_us']:.1f}), recall {recall['mean_us']:.1f} µs mean (p99 "
          f"{recall['p99_us']:.1f})")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": dict(results),
                                         "online": timing}, indent=1))


def _online_cost(reviews: Any) -> dict[str, Any]:
    """Per-call time of the online API over the log: one update per review, one recall a day
    after each."""
    model = make_memory_model("memory").fit(reviews.head(int(0.7 * len(reviews))))
    states: dict[str, Any] = {}
    calls = [(reviews.card[k], int(reviews.rating[k]), as_datetime(reviews.time_ns[k]))
             for k in range(len(reviews))]

    def update(call: tuple[str, int, Any]) -> None:
        card, rating, at = call
        states[card] = model.update(states.get(card) or model.new_state(), rating, at)

    def recall(call: tuple[str, int, Any]) -> None:
        model.recall(states[call[0]], call[2] + timedelta(days=1))

    return {"update": latencies(calls, update), "recall": latencies(calls, recall)}


if __name__ == "__main__":
    main()
