"""Answer logs drawn from a BKT model with known parameters.

Ground truth makes the strongest tests and demos: fit on simulated answers and check that the
parameters come back (parameter recovery), or that a model's AUC approaches the generating model's.
"""

from __future__ import annotations

import numpy as np

from engine.events import AnswerLog
from engine.tracing._bkt_kernels import sample_sequences
from engine.tracing.bkt_params import BKTParams


def random_params(n_skills: int, *, seed: int = 0, forgets: bool = False,
                  items_per_skill: int = 0) -> BKTParams:
    """Plausible BKT parameters (guess, slip < 0.35) for ``n_skills`` skills ``s0``, ``s1``...

    With ``items_per_skill`` > 0 each skill gets that many items ``s0-i0``... with their own
    guess/slip (KT-IDEM) plus the ``default`` class.
    """
    rng = np.random.default_rng(seed)
    classes = items_per_skill + 1 if items_per_skill else 1
    skills = tuple(f"s{k}" for k in range(n_skills))
    names = [f"{s}-i{j}" for s in skills for j in range(items_per_skill)] if items_per_skill \
        else []
    gs_names: list[str] = []
    for k, _ in enumerate(skills):
        gs_names += [*names[k * items_per_skill:(k + 1) * items_per_skill], "default"]
    return BKTParams(
        skills=skills,
        prior=rng.uniform(0.1, 0.6, n_skills),
        learn=rng.uniform(0.05, 0.3, n_skills),
        forget=rng.uniform(0.02, 0.15, n_skills) if forgets else np.zeros(n_skills),
        gs_ptr=np.arange(n_skills + 1, dtype=np.int64) * classes,
        gs_names=tuple(gs_names),
        guess=rng.uniform(0.05, 0.35, n_skills * classes),
        slip=rng.uniform(0.05, 0.3, n_skills * classes),
    )


def simulate(params: BKTParams, n_learners: int, *, answers_per_skill: tuple[int, int] = (5, 20),
             seed: int = 0) -> tuple[AnswerLog, np.ndarray]:
    """Learners ``u0``... each practise every skill in a random order, a block of answers each.

    Block lengths are uniform in ``answers_per_skill`` (inclusive); an item is drawn uniformly among
    the skill's item classes (or is the skill id itself without items). Returns the log and the
    true mastery state behind each answer.
    """
    rng = np.random.default_rng(seed)
    n_skills = len(params.skills)
    lo, hi = answers_per_skill
    skill_order = np.argsort(rng.random((n_learners, n_skills)), axis=1).ravel()
    lengths = rng.integers(lo, hi + 1, n_learners * n_skills)
    seq_ptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    n = int(seq_ptr[-1])
    skill = np.repeat(skill_order, lengths)
    n_cls = np.diff(params.gs_ptr)
    n_items = np.maximum(n_cls - 1, 1)  # the default class serves as item when there are none
    local = (rng.random(n) * n_items[skill]).astype(np.int64)
    gs = params.gs_ptr[skill] + np.where(n_cls[skill] > 1, local, 0)
    correct = np.empty(n, dtype=np.bool_)
    mastered = np.empty(n, dtype=np.bool_)
    sample_sequences(seq_ptr, skill_order.astype(np.int64), gs, params.prior, params.learn,
                     params.forget, params.guess, params.slip, rng.random((n, 3)), correct,
                     mastered)
    names = np.array(params.gs_names, dtype=object)
    skill_ids = np.array(params.skills, dtype=object)[skill]
    item = np.where(n_cls[skill] > 1, names[gs], skill_ids)
    learner = np.repeat(np.array([f"u{i}" for i in range(n_learners)], dtype=object),
                        np.add.reduceat(lengths, np.arange(0, n_learners * n_skills, n_skills)))
    return AnswerLog.from_columns(learner, item, skill_ids, correct), mastered
