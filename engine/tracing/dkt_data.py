"""Answer logs as the padded tensors a recurrent tracer trains and predicts on.

A log becomes one sequence per learner (chronological), each answer a row of up to ``K`` skill
indices (``K`` is the most skills any answer practises; ``-1`` pads). Skills are numbered by the
model's vocabulary; a skill the model never saw gets index ``n_skills``, which the network scores
with its mean output (like BKT's mean parameters) and whose input it ignores.

Training cuts long sequences into windows; batches are formed from windows of similar length so
little time is spent on padding, and their order is shuffled with a seeded generator so a seed
fixes the whole run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from engine.events import AnswerLog

__all__ = ["Batch", "Sequences", "batches", "windows"]


@dataclass(frozen=True, eq=False)
class Sequences:
    """A log's answers grouped by learner: learner ``j`` is ``rows[ptr[j]:ptr[j + 1]]``.

    ``skills[n]`` and ``correct[n]`` describe answer ``rows[n]`` of the log.
    """

    rows: np.ndarray
    ptr: np.ndarray
    skills: np.ndarray
    correct: np.ndarray

    @classmethod
    def from_log(cls, log: AnswerLog, vocabulary: dict[str, int]) -> Sequences:
        """Group ``log`` by learner; skill ids are looked up in ``vocabulary`` (id -> index)."""
        unknown = len(vocabulary)
        code_index = np.array([vocabulary.get(s, unknown) for s in log.skill_ids],
                              dtype=np.int64)
        # learners in order of first appearance, chronological within each (as BKT reads them)
        rows = np.argsort(log.learner, kind="stable")
        counts = np.bincount(log.learner, minlength=log.n_learners)
        counts = counts[counts > 0]
        ptr = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        per_row = np.diff(log.skill_ptr)[rows]
        width = int(per_row.max(initial=1))
        skills = np.full((len(rows), width), -1, dtype=np.int64)
        for k in range(width):
            has = per_row > k
            skills[has, k] = code_index[log.skill_codes[log.skill_ptr[rows[has]] + k]]
        return cls(rows=rows, ptr=ptr, skills=skills, correct=log.correct[rows].astype(np.int64))

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def spans(self) -> np.ndarray:
        """(start, end) of every learner's sequence, shape (n_learners, 2)."""
        return np.stack([self.ptr[:-1], self.ptr[1:]], axis=1)


@dataclass(frozen=True, eq=False)
class Batch:
    """Padded tensors for ``B`` sequences of at most ``T`` answers.

    ``tokens[b, t, k]``: the input index of skill ``k`` of answer ``t`` (``1 + 2 * skill +
    correct``, 0 for padding and unknown skills); ``targets``: the skill index to predict
    (``n_skills`` for unknown, 0 under padding); ``skill_mask``: 1 where ``targets`` is a real
    skill; ``correct``: the answers; ``mask``: True on real answers; ``positions``: the row in
    :class:`Sequences` of each real answer, in ``mask`` order.
    """

    tokens: torch.Tensor
    targets: torch.Tensor
    skill_mask: torch.Tensor
    correct: torch.Tensor
    mask: torch.Tensor
    positions: np.ndarray

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.tokens.to(device), self.targets.to(device),
                     self.skill_mask.to(device), self.correct.to(device),
                     self.mask.to(device), self.positions)


def make_batch(seqs: Sequences, spans: Sequence[tuple[int, int]] | np.ndarray,
               n_skills: int) -> Batch:
    """Pad the answers ``seqs[start:end]`` of each span into one :class:`Batch`."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    lengths = spans[:, 1] - spans[:, 0]
    n, t = len(spans), int(lengths.max(initial=1))
    mask = np.arange(t)[None, :] < lengths[:, None]
    positions = (spans[:, :1] + np.arange(t)[None, :])[mask]
    width = seqs.skills.shape[1]
    skills = np.full((n, t, width), -1, dtype=np.int64)
    skills[mask] = seqs.skills[positions]
    correct = np.zeros((n, t), dtype=np.int64)
    correct[mask] = seqs.correct[positions]
    real = skills >= 0
    known = real & (skills < n_skills)
    tokens = np.where(known, 1 + 2 * skills + correct[:, :, None], 0)
    targets = np.where(real, skills, 0)
    return Batch(
        tokens=torch.from_numpy(tokens),
        targets=torch.from_numpy(targets),
        skill_mask=torch.from_numpy(real.astype(np.float32)),
        correct=torch.from_numpy(correct.astype(np.float32)),
        mask=torch.from_numpy(mask),
        positions=positions,
    )


def windows(seqs: Sequences, length: int) -> np.ndarray:
    """Every learner's sequence cut into consecutive windows of at most ``length`` answers."""
    if length < 2:
        raise ValueError(f"the training window must be at least 2 answers, got {length}")
    starts, ends = [], []
    for start, end in seqs.spans():
        cuts = np.arange(start, end, length)
        starts.append(cuts)
        ends.append(np.minimum(cuts + length, end))
    if not starts:
        return np.empty((0, 2), dtype=np.int64)
    spans = np.stack([np.concatenate(starts), np.concatenate(ends)], axis=1)
    return spans[spans[:, 1] - spans[:, 0] >= 2]  # one answer alone has nothing to predict from


def batches(spans: np.ndarray, batch_size: int,
            rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Groups of up to ``batch_size`` spans of similar length.

    With ``rng``, spans of equal length are shuffled and the groups come in random order;
    without, groups come longest first and each group is sorted longest first.
    """
    lengths = spans[:, 1] - spans[:, 0]
    if rng is None:
        order = np.argsort(-lengths, kind="stable")
    else:
        order = np.lexsort((rng.permutation(len(spans)), -lengths))
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for group in groups:
        yield spans[group]
