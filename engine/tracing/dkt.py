"""Deep Knowledge Tracing (Piech et al. 2015): an LSTM over a learner's (skill, correct) answers.

The network reads one answer per step (an embedding of skill and correctness; the mean over the
skills of a multi-skill answer) and, from its hidden state, scores every skill: the logit of
P(correct) on the next answer to that skill. A multi-skill item is scored by the mean of its
skills' logits; a skill the model never saw by the mean over all skills, which is a fixed linear
function of the hidden state (mean weights, mean bias), so it costs nothing extra.

Batch and online use the same weights: :meth:`DKT.predict_log` runs PyTorch's LSTM over whole
sequences, while the online :meth:`DKT.update` is one LSTM step in numpy (a few microseconds, no
PyTorch dispatch on the request path). A state holds the hidden and cell vectors of every layer;
its bytes are those vectors in float32. Online and batch predictions agree to float32 rounding
(tested).

"Mastery" of a skill is the model's P(correct) on the next answer to it: DKT has no latent
mastery variable, and this is the quantity its papers plot as the knowledge state.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from engine.events import AnswerEvent, AnswerLog
from engine.tracing.base import NotFittedError
from engine.tracing.dkt_config import DKTConfig
from engine.tracing.dkt_data import Batch, Sequences, batches, make_batch

FILE_FORMAT = "tutor-dkt"
#: 2: the network is a list of members (version 1 held one network, read as one member)
FILE_VERSION = 2
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"

#: Called with (finished, total, description, metrics so far) during training.
TrainProgress = Callable[[int, int, str, dict[str, float]], None]


class IdSpaceError(ValueError):
    """Data whose skill ids are not the ones a trained model knows."""


#: an LSTM's (h, c), each (layers, batch, hidden)
LSTMState = tuple[torch.Tensor, torch.Tensor]


class DKTMember(nn.Module):
    """One network of Piech et al.: input embedding, LSTM, per-skill output layer."""

    def __init__(self, n_skills: int, config: DKTConfig) -> None:
        super().__init__()
        # index 0: padding and unknown skills (a zero vector); 1 + 2 * skill + correct otherwise
        self.inputs = nn.Embedding(1 + 2 * n_skills, config.embed, padding_idx=0)
        self.lstm = nn.LSTM(config.embed, config.hidden, num_layers=config.layers,
                            batch_first=True,
                            dropout=config.dropout if config.layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden, n_skills)

    def output_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Output weights and biases with one extra row, the mean, for unknown skills."""
        weight, bias = self.out.weight, self.out.bias
        return (torch.cat([weight, weight.mean(0, keepdim=True)]),
                torch.cat([bias, bias.mean(0, keepdim=True)]))

    def run(self, batch: Batch, state: LSTMState | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor, LSTMState]:
        """This member's logit of every real answer (in ``batch.mask`` order), its LSTM's
        top-layer state after every step (B, T, hidden) and its final (h, c)."""
        mask = batch.skill_mask
        x = self.inputs(batch.tokens).sum(2) / mask.sum(2, keepdim=True).clamp(min=1.0)
        # padding is not packed away: batches group similar lengths, and on a CPU a step over
        # a few more rows costs less than packing (states after a sequence's end are unused)
        hidden, final = self.lstm(x, state)
        # the prediction of answer t comes from the state after answer t - 1 (zeros for t = 0)
        first = (hidden.new_zeros(hidden.shape[0], 1, hidden.shape[2]) if state is None
                 else state[0][-1].unsqueeze(1))
        before = torch.cat([first, hidden[:, :-1]], dim=1)[batch.mask]
        return self.readout(self.drop(before), batch), hidden, final

    def readout(self, states: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Logits of the real answers' skills from one state per real answer (N, hidden): the
        mean over each answer's skills."""
        weight, bias = self.output_params()
        targets, skill_mask = batch.targets[batch.mask], batch.skill_mask[batch.mask]
        per_skill = torch.einsum("nh,nkh->nk", states, weight[targets]) + bias[targets]
        return (per_skill * skill_mask).sum(1) / skill_mask.sum(1).clamp(min=1.0)


class DKTNet(nn.Module):
    """``config.members`` independently initialised :class:`DKTMember` networks; the model's
    logit is the mean of theirs.

    Each member is trained on its own loss, so it learns as it would alone; averaging several
    cancels part of each one's initialisation noise (measured in the README: three 128-unit
    members beat one 200-unit network on three of the four reference splits, assist2009 being
    0.0016 AUC lower).
    """

    def __init__(self, n_skills: int, config: DKTConfig) -> None:
        super().__init__()
        self.n_skills = n_skills
        self.layers = config.layers
        self.members = nn.ModuleList(DKTMember(n_skills, config)
                                     for _ in range(config.members))

    def forward(self, batch: Batch) -> torch.Tensor:
        """The model's logit of every real answer (in ``batch.mask`` order), each predicted
        from the answers before it."""
        return self.run(batch)[0].mean(0)

    def run(self, batch: Batch, state: LSTMState | None = None,
            ) -> tuple[torch.Tensor, list[torch.Tensor], LSTMState]:
        """Every member's logits (members, N), each member's LSTM top-layer state after every
        step (B, T, hidden), which DKT+'s regularizers read, and the final (h, c), each
        (members * layers, B, hidden): member ``k``'s layers are rows ``k * layers`` on.

        ``state`` continues sequences from the (h, c) a previous call ended with: a long
        sequence can be run in consecutive pieces with the same result as in one.
        """
        logits, hiddens, hs, cs = [], [], [], []
        for k, member in enumerate(self.members):
            rows = slice(k * self.layers, (k + 1) * self.layers)
            mine = None if state is None else (state[0][rows], state[1][rows])
            member_logits, hidden, (h, c) = member.run(batch, mine)
            logits.append(member_logits)
            hiddens.append(hidden)
            hs.append(h)
            cs.append(c)
        return torch.stack(logits), hiddens, (torch.cat(hs), torch.cat(cs))


@dataclass(frozen=True, eq=False)
class DKTState:
    """One learner's recurrent state: hidden and cell vectors per layer, and the skill logits
    they imply (derived, recomputed when read from bytes)."""

    h: np.ndarray
    c: np.ndarray
    logits: np.ndarray


class DKT:
    """The DKT tracer. ``fit`` trains with early stopping on held-out learners' AUC."""

    name = "dkt"

    def __init__(self, config: DKTConfig | None = None, **options: Any) -> None:
        self.config = replace(config or DKTConfig(), **options)
        self.skills_: tuple[str, ...] | None = None
        self.net_: DKTNet | None = None
        self.training_: dict[str, Any] = {}

    def get_options(self) -> dict[str, Any]:
        return asdict(self.config)

    # ================================================================== batch side
    def fit(self, log: AnswerLog, valid: AnswerLog | None = None, *,
            progress: TrainProgress | None = None, checkpoint: str | Path | None = None,
            resume: bool = False, device: str | None = None) -> Self:
        """Train on ``log``; early stopping on ``valid`` (else on held-out learners of ``log``).

        With ``checkpoint`` the best model so far and the training state are written to that
        directory after every epoch, and ``resume`` continues from them.
        """
        from engine.tracing.dkt_fit import train  # the training loop, kept apart

        train(self, log, valid, progress=progress, checkpoint=checkpoint, resume=resume,
              device=device)
        return self

    def vocabulary(self) -> dict[str, int]:
        """Skill id -> index: of the model's inputs and outputs, and of a state's ``logits``
        (which is what vectorized selection reads). Shared: do not modify."""
        return self._online().vocab

    def unseen_skills(self, log: AnswerLog) -> int:
        """How many answers in ``log`` practise at least one skill the model was not trained on."""
        if len(log) == 0:
            return 0
        vocab = self.vocabulary()
        unknown = np.array([s not in vocab for s in log.skill_ids])[log.skill_codes]
        return int(np.count_nonzero(np.logical_or.reduceat(unknown, log.skill_ptr[:-1])))

    def check_id_space(self, log: AnswerLog) -> None:
        """Refuse a log most of whose answers practise skills the model never saw: that is a
        model trained on another id space (another dataset, another content pack)."""
        unseen = self.unseen_skills(log)
        if len(log) and unseen / len(log) > self.config.max_unseen:
            vocab = self.vocabulary()
            theirs = [s for s in log.skill_ids if s not in vocab][:5]
            raise IdSpaceError(
                f"{unseen:,} of {len(log):,} answers ({unseen / len(log):.0%}) practise skills "
                f"this DKT model was not trained on (e.g. {', '.join(map(repr, theirs))}; the "
                f"model knows {len(vocab):,} skills such as "
                f"{', '.join(map(repr, self._skills()[:5]))}): the log and the model use "
                "different id spaces; train a model on this data instead")

    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """One-step-ahead P(correct) per answer over whole sequences, each learner from zero."""
        self.check_id_space(log)
        seqs = Sequences.from_log(log, self.vocabulary())
        return self.predict_sequences(self._net(), seqs)[np.argsort(seqs.rows)]

    def predict_sequences(self, net: DKTNet, seqs: Sequences, *, batch_size: int = 512,
                          chunk: int = 64, device: str | torch.device = "cpu") -> np.ndarray:
        """P(correct) of every answer of ``seqs``, in its (learner-grouped) order.

        Up to ``batch_size`` learners, longest first, run together ``chunk`` answers at a time,
        each piece continuing from the state the previous one ended with; a learner leaves the
        batch when their sequence ends. One very long sequence thus costs its own steps, not
        padding for the whole batch, and memory stays bounded whatever the lengths.
        """
        out = np.empty(len(seqs.rows))
        was_training = net.training
        net.eval()
        with torch.inference_mode():
            for spans in batches(seqs.spans(), batch_size):  # each group longest first
                lengths = spans[:, 1] - spans[:, 0]
                state: LSTMState | None = None
                for start in range(0, int(lengths.max(initial=0)), chunk):
                    alive = int(np.count_nonzero(lengths > start))
                    begin = spans[:alive, 0] + start
                    piece = np.stack([begin, np.minimum(spans[:alive, 1], begin + chunk)], axis=1)
                    batch = make_batch(seqs, piece, net.n_skills).to(device)
                    if state is not None:
                        state = (state[0][:, :alive], state[1][:, :alive])
                    logits, _, state = net.run(batch, state)
                    out[batch.positions] = torch.sigmoid(logits.mean(0)).double().cpu().numpy()
        net.train(was_training)
        return out

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

    def predict_correct(self, state: DKTState, item: str, skills: Sequence[str]) -> float:
        if not skills:
            raise ValueError(f"item {item!r} needs at least one skill")
        total = sum(float(state.logits[self._index(s)]) for s in skills)
        return _sigmoid_scalar(total / len(skills))

    def mastery(self, state: DKTState, skills: Sequence[str] | None = None) -> dict[str, float]:
        """P(correct) on the next answer to each skill (DKT's knowledge state)."""
        names = self._skills()
        if skills is None:
            return dict(zip(names, expit(state.logits.astype(np.float64)).tolist(),
                            strict=True))
        return {s: _sigmoid_scalar(float(state.logits[self._index(s)])) for s in skills}

    def state_to_bytes(self, state: DKTState) -> bytes:
        return np.concatenate([state.h.ravel(), state.c.ravel()]).astype("<f4").tobytes()

    def state_from_bytes(self, data: bytes) -> DKTState:
        """The state in ``data``, read in place (read-only: :meth:`update` never mutates)."""
        rows, hidden = self.config.members * self.config.layers, self.config.hidden
        size = 2 * rows * hidden * 4
        if len(data) != size:
            raise ValueError(f"a DKT state of this model is {size} bytes, got {len(data)}")
        h, c = np.frombuffer(data, dtype="<f4").reshape(2, rows, hidden)
        return self._with_logits(h, c)

    # ================================================================== persistence
    def save(self, path: str | Path) -> None:
        """Write a checkpoint directory: ``model.json`` (format, configuration, skill ids,
        training summary) and ``weights.pt`` (a plain state dict, read with
        ``weights_only=True``)."""
        net = self._net()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()},
                   path / WEIGHTS_FILE)
        doc = {"format": FILE_FORMAT, "version": FILE_VERSION, "model": self.name,
               "config": asdict(self.config), "skills": list(self._skills()),
               "training": self.training_}
        (path / CONFIG_FILE).write_text(json.dumps(doc, indent=1))

    @classmethod
    def load(cls, path: str | Path) -> DKT:
        """Read a checkpoint directory written by :meth:`save`."""
        path = Path(path)
        doc = read_checkpoint_doc(path)
        return cls.from_checkpoint(doc, (path / WEIGHTS_FILE).read_bytes(), source=str(path))

    @classmethod
    def from_checkpoint(cls, doc: dict[str, Any], weights: bytes, *, source: str) -> DKT:
        """A model from a checkpoint's two parts: the ``model.json`` document and the bytes of
        ``weights.pt`` (e.g. as a database holds them)."""
        check_checkpoint_doc(doc, source)
        config = doc["config"] if doc["version"] > 1 else {**doc["config"], "members": 1}
        model = cls(DKTConfig.from_dict(config))
        model.training_ = doc.get("training", {})
        try:
            state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
        except (RuntimeError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"{source}: the weights are not a readable state dict ({exc})"
                             ) from None
        if doc["version"] == 1:
            state = {f"members.0.{k}": v for k, v in state.items()}
        return model.set_weights(tuple(doc["skills"]), state)

    def set_weights(self, skills: tuple[str, ...], state_dict: dict[str, torch.Tensor]) -> Self:
        """Install trained weights for the skill vocabulary ``skills``."""
        net = DKTNet(len(skills), self.config)
        try:
            net.load_state_dict(state_dict)
        except RuntimeError as exc:
            raise ValueError(f"the weights do not fit this DKT configuration: {exc}") from None
        net.eval()
        self.skills_, self.net_ = skills, net
        self.__dict__.pop("_online_cache", None)
        return self

    # ================================================================== internals
    def _skills(self) -> tuple[str, ...]:
        if self.skills_ is None:
            raise NotFittedError("this DKT model is not trained: call fit() or DKT.load()")
        return self.skills_

    def _net(self) -> DKTNet:
        self._skills()
        assert self.net_ is not None
        return self.net_

    def _online(self) -> _OnlineWeights:
        cached = self.__dict__.get("_online_cache")
        if cached is None:
            cached = self.__dict__["_online_cache"] = _OnlineWeights.of(self._net(),
                                                                        self._skills())
        return cached

    def _index(self, skill: str) -> int:
        """The model's index of ``skill``; KeyError for a skill it was not trained on (a live
        state only takes evidence the model can read)."""
        k = self._online().vocab.get(skill)
        if k is None:
            raise KeyError(f"skill {skill!r} is not known to this DKT model")
        return k

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

        members = tuple(
            _OnlineMember(arr(m.inputs.weight), tuple(
                (arr(getattr(m.lstm, f"weight_ih_l{k}")), arr(getattr(m.lstm, f"weight_hh_l{k}")),
                 arr(getattr(m.lstm, f"bias_ih_l{k}") + getattr(m.lstm, f"bias_hh_l{k}")))
                for k in range(m.lstm.num_layers)))
            for m in net.members)
        out_w = np.hstack([arr(m.out.weight) for m in net.members]) / len(net.members)
        out_b = np.mean([arr(m.out.bias) for m in net.members], axis=0)
        return cls({s: k for k, s in enumerate(skills)}, members, out_w, out_b)


def read_checkpoint_doc(path: Path) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint directory, checked for format and version."""
    if not path.is_dir():
        raise FileNotFoundError(f"DKT checkpoint directory not found: {path}")
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path} is not a DKT checkpoint: {name} is missing")
    try:
        doc = json.loads((path / CONFIG_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path / CONFIG_FILE}: not JSON ({exc})") from None
    return check_checkpoint_doc(doc, str(path / CONFIG_FILE))


def check_checkpoint_doc(doc: Any, source: str) -> dict[str, Any]:
    """``doc`` if it is a checkpoint document this engine reads, else a ValueError."""
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise ValueError(f"{source}: not a {FILE_FORMAT} checkpoint")
    if doc.get("version") not in (1, FILE_VERSION):
        raise ValueError(f"{source}: {FILE_FORMAT} version {doc.get('version')} is not "
                         f"supported (this engine reads versions 1 to {FILE_VERSION})")
    if not isinstance(doc.get("skills"), list) or not isinstance(doc.get("config"), dict):
        raise ValueError(f"{source}: the checkpoint lacks its skill ids or configuration")
    return doc


def _sigmoid_scalar(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))
