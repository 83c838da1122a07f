"""DKT's network (Piech et al. 2015): an LSTM over a learner's (skill, correct) answers.

The network reads one answer per step (an embedding of skill and correctness; the mean over the
skills of a multi-skill answer) and, from its hidden state, scores every skill: the logit of
P(correct) on the next answer to that skill. A multi-skill item is scored by the mean of its
skills' logits; a skill the model never saw by the mean over all skills, which is a fixed linear
function of the hidden state (mean weights, mean bias), so it costs nothing extra.

This module is the arithmetic only: the trainer (:mod:`engine.tracing.dkt_train`) and the tracer
(:mod:`engine.tracing.dkt`) both use it, and neither is imported here.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.tracing.dkt_config import DKTConfig
from engine.tracing.dkt_data import Batch, Sequences, batches, make_batch

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

    def member(self, k: int) -> DKTMember:
        """Member ``k``; ``self.members[k]`` is the same network, typed as a plain Module."""
        member = self.members[k]
        if not isinstance(member, DKTMember):
            raise TypeError(f"DKTNet.members[{k}] is a {type(member).__name__}, not a DKTMember")
        return member

    def member_nets(self) -> list[DKTMember]:
        """The members in order (what iterating ``self.members`` gives, typed)."""
        return [self.member(k) for k in range(len(self.members))]

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
        for k, member in enumerate(self.member_nets()):
            rows = slice(k * self.layers, (k + 1) * self.layers)
            mine = None if state is None else (state[0][rows], state[1][rows])
            member_logits, hidden, (h, c) = member.run(batch, mine)
            logits.append(member_logits)
            hiddens.append(hidden)
            hs.append(h)
            cs.append(c)
        return torch.stack(logits), hiddens, (torch.cat(hs), torch.cat(cs))



def predict_sequences(net: DKTNet, seqs: Sequences, *, batch_size: int = 512, chunk: int = 64,
                      device: str | torch.device = "cpu") -> np.ndarray:
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
