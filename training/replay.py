"""Replay answer logs through a tracer and score its one-step-ahead predictions.

The protocol is pyBKT's ``evaluate``: fit on the training learners, then predict each test
learner's answers one step ahead, every learner starting from the fitted prior. With K folds,
learners (never single answers) are split so no learner is both fitted and scored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import KFold

from engine.events import AnswerLog
from engine.tracing import Tracer, make_tracer
from engine.tracing.base import FitProgress
from training.metrics import evaluate
from training.splits import ChronoSplit, train_rows


def _quiet(done: int, total: int, what: str, metrics: Mapping[str, float]) -> None:
    """The default progress callback: report nothing."""


def score(tracer: Tracer[Any], test: AnswerLog, *, progress: FitProgress = _quiet,
          step: tuple[int, int] = (0, 1)) -> tuple[dict[str, Any], np.ndarray]:
    """Predict ``test`` with a fitted tracer; metrics, timings and counts, and the predictions.

    A log most of whose answers the model cannot read (another id space) is refused.
    """
    progress(*step, f"predicting {len(test):,} answers", {})
    tracer.check_id_space(test)
    tracer.predict_log(test.take(np.arange(min(len(test), 1))))  # compile/load kernels untimed
    start = time.perf_counter()
    p = tracer.predict_log(test)
    predict_seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "model": tracer.name,
        **evaluate(test, p),
        "predict_seconds": predict_seconds,
        "answers_per_second": len(test) / max(predict_seconds, 1e-9),
        "n_test": len(test),
        "n_test_learners": len(np.unique(test.learner)),
        "n_test_unseen_skill": tracer.unseen_skills(test),
    }
    return result, p


def fit_and_score(model: str, train: AnswerLog, test: AnswerLog, *, options: dict[str, Any],
                  progress: FitProgress = _quiet, step: tuple[int, int] = (0, 2),
                  ) -> tuple[dict[str, Any], np.ndarray]:
    """Fit ``model`` (a registry name, built with ``options``) on ``train`` and :func:`score`
    it on ``test``."""
    done, total = step
    tracer = make_tracer(model, **options)
    progress(done, total, f"fitting {model} on {len(train):,} answers", {})
    start = time.perf_counter()
    tracer.fit(train, progress=progress)
    fit_seconds = time.perf_counter() - start
    result, p = score(tracer, test, progress=progress, step=(done + 1, total))
    result.update(fit_seconds=fit_seconds, n_train=len(train),
                  n_train_learners=len(np.unique(train.learner)))
    return result, p


#: the metrics reported per fold beside the pooled ones
FOLD_METRICS = ("auc", "rmse", "accuracy", "log_loss")


def cross_validate(model: str, log: AnswerLog, folds: int, *, seed: int | None,
                   options: dict[str, Any], progress: FitProgress = _quiet,
                   ) -> tuple[dict[str, Any], np.ndarray]:
    """Learner-level K-fold cross-validation.

    Every answer is predicted once, by the model fitted on the folds its learner is not in;
    ``auc``, ``rmse``... are computed over all these out-of-fold predictions together (pooled,
    like a train/test split's), and ``<metric>_fold_mean`` / ``<metric>_fold_std`` give the
    spread over folds (each fold's result is kept under ``fold_results``). Returns the result
    and the out-of-fold predictions.
    """
    learners = np.unique(log.learner)
    if folds < 2 or folds > len(learners):
        raise ValueError(f"--folds must be between 2 and the number of learners "
                         f"({len(learners)}), got {folds}")
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    runs = []
    pooled = np.empty(len(log))
    for i, (_, test_idx) in enumerate(splitter.split(learners)):
        in_test = np.isin(log.learner, learners[test_idx])
        run, pooled[in_test] = fit_and_score(model, log.take(~in_test), log.take(in_test),
                                             options=options, progress=progress,
                                             step=(2 * i, 2 * folds))
        runs.append(run)
    progress(2 * folds, 2 * folds, "done", {})
    result: dict[str, Any] = {"model": runs[0]["model"], "folds": folds, **evaluate(log, pooled)}
    for metric in FOLD_METRICS:
        values = np.array([run[metric] for run in runs])
        result[f"{metric}_fold_mean"] = float(np.mean(values))
        result[f"{metric}_fold_std"] = float(np.std(values, ddof=1))
    result.update(
        n_train=round(float(np.mean([run["n_train"] for run in runs]))), n_test=len(log),
        n_test_learners=len(learners),
        n_test_unseen_skill=int(sum(run["n_test_unseen_skill"] for run in runs)),
        fit_seconds=float(np.sum([run["fit_seconds"] for run in runs])),
        predict_seconds=float(np.sum([run["predict_seconds"] for run in runs])),
        fold_results=runs)
    result["answers_per_second"] = len(log) / max(result["predict_seconds"], 1e-9)
    return result, pooled


def chrono_replay(model: str, log: AnswerLog, split: ChronoSplit, *, options: dict[str, Any],
                  progress: FitProgress = _quiet,
                  ) -> tuple[dict[str, Any], np.ndarray, AnswerLog]:
    """Fit ``model`` on the first part of every learner's answers (``split``, in time order) and
    score its predictions of the rest; returns the result, the test answers' predictions and
    the test answers.

    Each test answer is predicted from all of its learner's earlier answers, the training ones
    included (the batch side predicts the whole log one step ahead; only the test rows are
    scored): the model meets these learners' futures, not new learners.
    """
    log = log.in_learner_order()
    train = train_rows(split, log.learner)
    if not np.any(train) or np.all(train):
        missing = "fit" if not np.any(train) else "score"
        raise ValueError(f"--split {split} leaves no answers to {missing} ({len(log):,} "
                         f"answers of {log.n_learners:,} learners)")
    tracer = make_tracer(model, **options)
    progress(0, 2, f"fitting {model} on {int(np.sum(train)):,} answers", {})
    start = time.perf_counter()
    tracer.fit(log.take(train), progress=progress)
    fit_seconds = time.perf_counter() - start
    progress(1, 2, f"predicting {int(np.sum(~train)):,} answers", {})
    start = time.perf_counter()
    p = tracer.predict_log(log)[~train]
    predict_seconds = time.perf_counter() - start
    test = log.take(~train)
    progress(2, 2, "done", {})
    return {"model": tracer.name, "split": str(split), **evaluate(test, p),
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
            "answers_per_second": len(test) / max(predict_seconds, 1e-9),
            "n_train": int(np.sum(train)), "n_test": len(test),
            "n_test_learners": len(np.unique(test.learner)),
            "n_test_unseen_skill": tracer.unseen_skills(test)}, p, test


def calibration_plot(y: np.ndarray, p: np.ndarray, path: str | Path, title: str,
                     bins: int = 10) -> None:
    """A reliability diagram: observed correct rate against predicted P(correct), per bin.

    Calibration matters for a tutor (it targets a success rate), and AUC cannot see it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    top.plot(predicted, observed, marker="o", label="model")
    top.set_ylabel("observed fraction correct")
    top.set_title(title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.hist(p, bins=bins, range=(0, 1), color="tab:blue", alpha=0.7)
    bottom.set_xlabel("predicted P(correct)")
    bottom.set_ylabel("answers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
