"""Replay a flashcard review log through a memory model: the review-log protocol and its metrics.

The protocol (issue 14, as the open srs-benchmark scores memory models): reviews in time order,
the first ``split.fraction`` (70% by default) train and the rest are predicted. The model is fitted
on the training part only; predictions are online: before each review, the model has seen every
earlier review of that card, training and test alike. A review is scored when it comes at least a
day (24 h) after the card's previous review (same-day learning steps are not predictions of
memory). Metrics: log loss, RMSE, AUC and RMSE(bins).

RMSE(bins) is srs-benchmark's (``rmse_matrix`` in its ``utils.py``): scored reviews are binned by
elapsed days since the previous review, the review number ``i`` and the count of earlier lapses,
each on a log scale; within each bin the mean prediction is compared with the observed recall
rate, and the squared differences are averaged with the bins' sizes as weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from engine.memory import make_memory_model
from engine.memory.reviews import AGAIN, NS_PER_DAY, Reviews
from engine.tracing.base import FitProgress
from training.metrics import scores
from training.splits import ChronoSplit

__all__ = ["DEFAULT_SPLIT", "ReviewHistory", "replay_reviews", "rmse_bins"]

DEFAULT_SPLIT = ChronoSplit(0.7)

# srs-benchmark's bins: x -> floor(log(x) / log(base)); its keys (round(a * base**k)) are one per
# exponent k, so grouping by k is the same grouping
_DELTA_T_BASE, _I_BASE, _LAPSE_BASE = 3.62, 1.89, 1.73


class ReviewHistory:
    """What the protocol needs to know of each review, from the log alone.

    ``scored``: at least a day after the card's previous review. ``elapsed_days``: whole days
    since that review (-1 for a card's first). ``i``: 1 + the card's scored reviews so far, this
    one included (srs-benchmark's review number). ``lapses``: the card's earlier scored reviews
    rated Again.
    """

    def __init__(self, reviews: Reviews) -> None:
        elapsed = reviews.elapsed_ns()
        self.scored = elapsed >= NS_PER_DAY
        self.elapsed_days = np.where(elapsed < 0, -1, elapsed // NS_PER_DAY)
        lapse = self.scored & (reviews.rating == AGAIN)
        by_card = pd.Series(reviews.card_codes())
        self.i = 1 + pd.Series(self.scored.astype(int)).groupby(by_card).cumsum().to_numpy()
        self.lapses = (pd.Series(lapse.astype(int)).groupby(by_card).cumsum().to_numpy()
                       - lapse)


def _exponent(x: np.ndarray, base: float) -> np.ndarray:
    return np.floor(np.log(x) / np.log(base)).astype(np.int64)


def rmse_bins(y: np.ndarray, p: np.ndarray, elapsed_days: np.ndarray, i: np.ndarray,
              lapses: np.ndarray) -> float:
    """srs-benchmark's RMSE(bins) of predictions ``p`` for outcomes ``y`` (0/1).

    Bins: elapsed days on base 3.62 (days < 1e-6 count as 1e-6), the review number on base 1.89,
    lapses on base 1.73 with 0 lapses its own bin. Per bin, mean outcome against mean
    prediction; the root of the bin-size-weighted mean of their squared differences.
    """
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    lapses = np.asarray(lapses)
    if not len(y) == len(p) == len(elapsed_days) == len(i) == len(lapses):
        raise ValueError("rmse_bins needs one outcome, prediction, elapsed time, review number "
                         "and lapse count per review")
    if len(y) == 0:
        raise ValueError("no reviews to score")
    keys = np.column_stack([
        _exponent(np.maximum(np.asarray(elapsed_days, dtype=float), 1e-6), _DELTA_T_BASE),
        _exponent(np.asarray(i, dtype=float), _I_BASE),
        np.where(lapses > 0, _exponent(np.maximum(lapses, 1).astype(float), _LAPSE_BASE), -1),
    ])
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    size = np.bincount(group).astype(float)
    mean_y = np.bincount(group, weights=y) / size
    mean_p = np.bincount(group, weights=p) / size
    return float(np.sqrt(np.sum(size * (mean_y - mean_p) ** 2) / np.sum(size)))


def _quiet(done: int, total: int, what: str, metrics: Any) -> None:
    """The default progress callback: report nothing."""


def replay_reviews(model: str, reviews: Reviews, *, split: ChronoSplit = DEFAULT_SPLIT,
                   options: dict[str, Any] | None = None, progress: FitProgress = _quiet,
                   ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Fit memory model ``model`` (a name; ``options`` change the variant, e.g. ``features``) on
    the training part and score the test part.

    Returns the result (``log_loss``, ``rmse``, ``rmse_bins``, ``auc``, ``n_test``, counts,
    timings and what was fitted), the predictions before every review (NaN before a card's
    first) and the mask of the scored test reviews.
    """
    cut = split.cut(len(reviews))
    history = ReviewHistory(reviews)
    test = history.scored & (np.arange(len(reviews)) >= cut)
    if not test.any():
        raise ValueError(f"no review of the test part ({len(reviews) - cut} reviews after the "
                         f"{split} split) comes a day or more after its card's previous review: "
                         "nothing to score")
    memory = make_memory_model(model, **(options or {}))
    progress(0, 2, f"fitting {model} on {cut:,} reviews", {})
    started = time.perf_counter()
    memory.fit(reviews.head(cut), progress=progress)
    fit_seconds = time.perf_counter() - started
    progress(1, 2, f"predicting {len(reviews):,} reviews online", {})
    started = time.perf_counter()
    p = memory.predict_reviews(reviews)
    predict_seconds = time.perf_counter() - started
    y = reviews.recalled[test]
    measured = scores(y, p[test])
    result: dict[str, Any] = {
        "model": model,
        "log_loss": measured["log_loss"],
        "rmse": measured["rmse"],
        "rmse_bins": rmse_bins(y, p[test], history.elapsed_days[test], history.i[test],
                               history.lapses[test]),
        "auc": measured["auc"],
        "accuracy": measured["accuracy"],
        "n_test": int(test.sum()),
        "n_test_reviews": len(reviews) - cut,
        "n_train": cut,
        "n_train_scored": int(history.scored[:cut].sum()),
        "n_cards": len(np.unique(reviews.card)),
        "split": str(split),
        "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "fitted": dict(memory.describe()),
    }
    progress(2, 2, "done", {})
    return result, p, test
