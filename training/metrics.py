"""Prediction metrics as knowledge-tracing papers report them.

``pooled``: over all answers at once (what pyBKT's ``evaluate`` and the DKT papers report).
``per_skill``: the unweighted mean over skills, each answer counting for every skill it
practises; AUC only over skills that have both correct and wrong answers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

from engine.events import AnswerLog

_CLIP = 1e-7  # log loss of a prediction of exactly 0 or 1 would be infinite


def scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, RMSE, accuracy (threshold 0.5) and log loss of predictions ``p`` for outcomes ``y``."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"{len(y)} outcomes but {len(p)} predictions")
    if len(y) == 0:
        raise ValueError("no answers to score")
    if not np.all(np.isfinite(p)):
        raise ValueError("predictions contain NaN or infinity")
    both = 0 < y.sum() < len(y)
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "rmse": float(np.sqrt(np.mean((y - p) ** 2))),
        "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
        "log_loss": float(log_loss(y, np.clip(p, _CLIP, 1 - _CLIP), labels=[0, 1])),
    }


def evaluate(log: AnswerLog, p: np.ndarray) -> dict[str, Any]:
    """Pooled scores plus per-skill means (``<metric>_per_skill``) for predictions on ``log``."""
    y = log.correct.astype(float)
    out: dict[str, Any] = scores(y, p)
    pair_row = np.repeat(np.arange(len(log)), np.diff(log.skill_ptr))
    order = np.argsort(log.skill_codes, kind="stable")
    bounds = np.searchsorted(log.skill_codes[order], np.arange(len(log.skill_ids) + 1))
    per_skill: dict[str, list[float]] = {m: [] for m in out}
    for k in range(len(log.skill_ids)):
        rows = pair_row[order[bounds[k]:bounds[k + 1]]]
        if len(rows) == 0:
            continue
        for metric, value in scores(y[rows], p[rows]).items():
            if not np.isnan(value):
                per_skill[metric].append(value)
    for metric, values in per_skill.items():
        out[f"{metric}_per_skill"] = float(np.mean(values)) if values else float("nan")
    return out
