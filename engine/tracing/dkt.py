"""Deep Knowledge Tracing (Piech et al. 2015) as a tracer: an LSTM over a learner's answers.

The network is :mod:`engine.tracing.dkt_net`, training :mod:`engine.tracing.dkt_train`, the saved
form :mod:`engine.tracing.dkt_checkpoint`; this module puts them behind the
:class:`~engine.tracing.base.Tracer` contract.

Batch and online use the same weights: :meth:`DKT.predict_log` runs PyTorch's LSTM over whole
sequences, while the online :meth:`DKT.update` is one LSTM step in numpy (a few microseconds, no
PyTorch dispatch on the request path). A state holds the hidden and cell vectors of every layer;
its bytes are those vectors in float32. Online and batch predictions agree to float32 rounding
(tested).

"Mastery" of a skill is the model's P(correct) on the next answer to it: DKT has no latent
mastery variable, and this is the quantity its papers plot as the knowledge state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from scipy.special import expit

from engine.events import AnswerEvent, AnswerLog
from engine.tracing.base import Cached, FitProgress, NotFittedError, Tracer
from engine.tracing.dkt_checkpoint import Checkpoint
from engine.tracing.dkt_config import DKTConfig
from engine.tracing.dkt_data import Sequences
from engine.tracing.dkt_net import DKTNet, predict_sequences
from engine.tracing.dkt_train import train
from engine.tracing.items import ItemIndex

_CONFIG_FIELDS = frozenset(f.name for f in fields(DKTConfig))


@dataclass(frozen=True, eq=False)
class DKTState:
    """One learner's recurrent state: hidden and cell vectors per layer, and the skill logits
    they imply (derived, recomputed when read from bytes)."""

    h: np.ndarray
    c: np.ndarray
    logits: np.ndarray


class DKT(Tracer[DKTState]):
    """The DKT tracer. ``fit`` trains with early stopping on held-out learners' AUC.

    Options are :class:`~engine.tracing.dkt_config.DKTConfig`'s settings (saved with the model)
    and three of the run, not saved: ``checkpoint`` (a directory the best model so far and the
    training state are written to after every epoch), ``resume`` (continue the run whose
    state is in ``checkpoint``) and ``device`` (PyTorch's; default CUDA when present).
    """

    name = "dkt"
    #: the settings ``**settings`` takes (what the registry checks options against)
    settings_type = DKTConfig

    def __init__(self, *, checkpoint: str | Path | None = None, resume: bool = False,
                 device: str | None = None, **settings: Any) -> None:
        unknown = set(settings) - _CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown DKT settings: {', '.join(sorted(unknown))}")
        self.config = replace(DKTConfig(), **settings)
        if resume and checkpoint is None:
            raise ValueError("resuming needs the checkpoint directory of the interrupted run")
        self.checkpoint = checkpoint
        self.resume = resume
        self.device = device
        self.max_unseen = self.config.max_unseen
        self.skills_: tuple[str, ...] | None = None
        self.net_: DKTNet | None = None
        self.training_: dict[str, Any] = {}
        self._online_cache: _OnlineWeights | None = None
        self._views = Cached()

    def get_options(self) -> dict[str, Any]:
        run = {"checkpoint": self.checkpoint, "resume": self.resume, "device": self.device}
        return {**asdict(self.config), **{k: v for k, v in run.items() if v}}

    # ================================================================== batch side
    def fit(self, log: AnswerLog, *, valid: AnswerLog | None = None,
            progress: FitProgress | None = None) -> Self:
        """Train on ``log``; early stopping on ``valid`` (else on held-out learners of
        ``log``)."""
        return self._install(train(self.config, log, valid, progress=progress,
                                   checkpoint=self.checkpoint, resume=self.resume,
                                   device=self.device))

    @property
    def skills(self) -> tuple[str, ...]:
        return self._skills()

    def fit_summary(self) -> str:
        t = self.training_
        if "best_epoch" not in t:
            return ""
        return (f"best validation AUC {t['best_valid_auc']:.4f} at epoch {t['best_epoch']} of "
                f"{t['epochs_run']} ({t['train_seconds']:.0f} s of training)")

    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """One-step-ahead P(correct) per answer over whole sequences, each learner from zero."""
        self.check_id_space(log)
        seqs = Sequences.from_log(log, self._online().vocab)
        return predict_sequences(self._net(), seqs)[np.argsort(seqs.rows)]

    # ================================================================== online side
    def new_state(self) -> DKTState:
        zeros = np.zeros((self.config.members * self.config.layers, self.config.hidden),
                         dtype=np.float32)
        return self._with_logits(zeros, zeros)

    def update(self, state: DKTState, event: AnswerEvent) -> DKTState:
        """One LSTM step per member in numpy with the trained weights (the batch path's
        arithmetic)."""
        online = self._online()
        rows = [1 + 2 * self._index(s) + int(event.correct) for s in event.skills]
        hs, cs = np.empty_like(state.h), np.empty_like(state.c)
        row = 0  # member k's layers are rows k * layers on
        for member in online.members:
            x = member.embedding[rows].sum(0) / len(rows)
            for w_ih, w_hh, bias in member.lstm:
                gates = w_ih @ x + w_hh @ state.h[row] + bias
                i, f, g, o = np.split(gates, 4)
                cs[row] = expit(f) * state.c[row] + expit(i) * np.tanh(g)
                hs[row] = x = expit(o) * np.tanh(cs[row])
                row += 1
        return self._with_logits(hs, cs)

    def predict_correct(self, state: DKTState, item: str, skills: Sequence[str], *,
                        at: datetime | None = None) -> float:
        if not skills:
            raise ValueError(f"item {item!r} needs at least one skill")
        total = sum(float(state.logits[self._index(s)]) for s in skills)
        return _sigmoid_scalar(total / len(skills))

    def predict_items(self, state: DKTState, items: ItemIndex, *,
                      at: datetime | None = None) -> np.ndarray:
        """The sigmoid of the mean logit of each item's skills, for all items at once."""
        skill = self._views.get(items, self._view)
        per_pair = state.logits[skill[items.pair_skill]].astype(np.float64)
        return expit(items.mean_per_item(per_pair))

    def mastery(self, state: DKTState, skills: Sequence[str] | None = None, *,
                at: datetime | None = None) -> dict[str, float]:
        """P(correct) on the next answer to each skill (DKT's knowledge state)."""
        names = self._skills()
        if skills is None:
            return dict(zip(names, expit(state.logits.astype(np.float64)).tolist(),
                            strict=True))
        return {s: _sigmoid_scalar(float(state.logits[self._index(s)])) for s in skills}

    def mastery_of(self, state: DKTState, items: ItemIndex, *,
                   at: datetime | None = None) -> np.ndarray:
        skill = self._views.get(items, self._view)
        return expit(state.logits[skill].astype(np.float64))

    def state_to_bytes(self, state: DKTState) -> bytes:
        return np.concatenate([state.h.ravel(), state.c.ravel()]).astype("<f4").tobytes()

    def state_from_bytes(self, data: bytes) -> DKTState:
        """The state in ``data``, read in place (read-only: :meth:`update` never mutates)."""
        rows, hidden = self.config.members * self.config.layers, self.config.hidden
        size = 2 * rows * hidden * 4
        if len(data) != size:
            raise ValueError(f"a DKT state of this model is {size} bytes, got {len(data)}")
        h, c = np.frombuffer(data, dtype="<f4").reshape(2, rows, hidden)
        # h is an LSTM output, o * tanh(c): in [-1, 1]; c is only finite (damaged bytes)
        if not (np.isfinite(c).all() and np.abs(h).max() <= 1.0):
            raise ValueError("a DKT state holds a value no LSTM state can (NaN, infinite, or "
                             "an output out of [-1, 1])")
        return self._with_logits(h, c)

    # ================================================================== persistence
    def to_bytes(self) -> bytes:
        return self._checkpoint().to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Self:
        return cls.from_checkpoint(Checkpoint.from_bytes(data, source=source))

    def save(self, path: str | Path) -> None:
        """Write a checkpoint directory (``model.json`` and ``weights.pt``)."""
        self._checkpoint().write(path)

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read a checkpoint directory written by :meth:`save` or by training."""
        return cls.from_checkpoint(Checkpoint.read(path))

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> Self:
        return cls(**asdict(checkpoint.config))._install(checkpoint)

    # ================================================================== internals
    def _install(self, checkpoint: Checkpoint) -> Self:
        """Use the trained network of ``checkpoint`` (its configuration must be this one's)."""
        net = DKTNet(len(checkpoint.skills), checkpoint.config)
        try:
            net.load_state_dict(checkpoint.weights)
        except RuntimeError as exc:
            raise ValueError(f"the weights do not fit this DKT configuration: {exc}") from None
        net.eval()
        self.config = checkpoint.config
        self.skills_, self.net_, self.training_ = checkpoint.skills, net, checkpoint.training
        self._online_cache = None
        self._views.clear()
        return self

    def _checkpoint(self) -> Checkpoint:
        return Checkpoint(self.config, self._skills(), self._net().state_dict(),
                          self.training_)

    def _skills(self) -> tuple[str, ...]:
        if self.skills_ is None:
            raise NotFittedError("this DKT model is not trained: call fit() or DKT.load()")
        return self.skills_

    def _net(self) -> DKTNet:
        self._skills()
        assert self.net_ is not None
        return self.net_

    def _online(self) -> _OnlineWeights:
        if self._online_cache is None:
            self._online_cache = _OnlineWeights.of(self._net(), self._skills())
        return self._online_cache

    def _index(self, skill: str) -> int:
        """The model's index of ``skill``; KeyError for a skill it was not trained on (a live
        state only takes evidence the model can read)."""
        k = self._online().vocab.get(skill)
        if k is None:
            raise KeyError(f"skill {skill!r} is not known to this DKT model")
        return k

    def _view(self, items: ItemIndex) -> np.ndarray:
        """The model index of each skill of ``items`` (KeyError for an unknown one)."""
        return np.array([self._index(s) for s in items.skill_ids], dtype=np.intp)

    def _with_logits(self, h: np.ndarray, c: np.ndarray) -> DKTState:
        """The state (h, c) with every skill's logit: the mean of the members' read-outs of
        their top layers."""
        online = self._online()
        tops = h[self.config.layers - 1::self.config.layers].reshape(-1)  # members' top layers
        return DKTState(h, c, online.out_w @ tops + online.out_b)


@dataclass(frozen=True, eq=False)
class _OnlineMember:
    """One member's trained weights as float32 numpy arrays, for the online step."""

    embedding: np.ndarray
    lstm: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]  # per layer: w_ih, w_hh, bias


@dataclass(frozen=True, eq=False)
class _OnlineWeights:
    """The trained weights, for the online step: per member, and the output layers side by
    side (skills, members * hidden), divided by the number of members, with the mean of their
    biases, so that the ensemble's mean logits are one matrix-vector product."""

    vocab: dict[str, int]
    members: tuple[_OnlineMember, ...]
    out_w: np.ndarray
    out_b: np.ndarray

    @classmethod
    def of(cls, net: DKTNet, skills: tuple[str, ...]) -> _OnlineWeights:
        def arr(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        nets = net.member_nets()
        members = tuple(
            _OnlineMember(arr(m.inputs.weight), tuple(
                (arr(getattr(m.lstm, f"weight_ih_l{k}")), arr(getattr(m.lstm, f"weight_hh_l{k}")),
                 arr(getattr(m.lstm, f"bias_ih_l{k}") + getattr(m.lstm, f"bias_hh_l{k}")))
                for k in range(m.lstm.num_layers)))
            for m in nets)
        out_w = np.hstack([arr(m.out.weight) for m in nets]) / len(nets)
        out_b = np.mean([arr(m.out.bias) for m in nets], axis=0)
        return cls({s: k for k, s in enumerate(skills)}, members, out_w, out_b)


def _sigmoid_scalar(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))
