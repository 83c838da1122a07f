"""Training DKT: mini-batches of windows, Adam, early stopping on validation AUC, checkpoints.

Every source of randomness is derived from ``(config.seed, epoch)``: the batch order from a
numpy generator, dropout and initial weights from PyTorch's generator. A run is therefore
deterministic for a seed on one device, and a run resumed from an epoch's checkpoint continues
exactly as if it had not stopped.

The model kept is the one with the best validation AUC, scored like the replay scores it: whole
sequences, each learner from a zero state.

The trainer sees only a configuration and logs, and returns what it learned as a
:class:`~engine.tracing.dkt_checkpoint.Checkpoint`; the tracer installs it.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from engine.events import AnswerLog
from engine.tracing.dkt_checkpoint import Checkpoint, Weights, read_document
from engine.tracing.dkt_config import DKTConfig
from engine.tracing.dkt_data import Batch, Sequences, batches, make_batch, windows
from engine.tracing.dkt_net import DKTMember, DKTNet, predict_sequences


class TrainProgress(Protocol):
    """Called with (steps done, steps in all, what is happening, metrics so far)."""

    def __call__(self, done: int, total: int, what: str, metrics: Mapping[str, float],
                 /) -> None: ...

TRAIN_STATE_FILE = "train_state.pt"
RESUMABLE_CHANGES = ("epochs", "patience")


def train(config: DKTConfig, log: AnswerLog, valid: AnswerLog | None, *,
          progress: TrainProgress | None = None, checkpoint: str | Path | None = None,
          resume: bool = False, device: str | None = None) -> Checkpoint:
    """Train a network with ``config`` on ``log``, early stopping on ``valid`` (else on
    held-out learners of ``log``); returns the best network.

    With ``checkpoint`` the best network so far and the training state are written to that
    directory after every epoch, and ``resume`` continues from them.

    PyTorch's deterministic kernels are used meanwhile: without them two runs with one seed
    drifted apart on assist2009 (multi-threaded accumulation in the backward pass) and ended
    0.009 AUC apart.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn where CUDA has none
    try:
        return _train(config, log, valid, progress=progress, checkpoint=checkpoint,
                      resume=resume, device=device)
    finally:
        torch.use_deterministic_algorithms(previous)


def _train(cfg: DKTConfig, log: AnswerLog, valid: AnswerLog | None, *,
           progress: TrainProgress | None, checkpoint: str | Path | None, resume: bool,
           device: str | None) -> Checkpoint:
    if len(log) == 0:
        raise ValueError("cannot train DKT on an empty log")
    if valid is None:
        log, valid = _hold_out(log, cfg.valid_fraction, cfg.seed)
    skills = _used_skills(log)
    vocab = {s: k for k, s in enumerate(skills)}
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_seqs, valid_seqs = Sequences.from_log(log, vocab), Sequences.from_log(valid, vocab)
    if len(np.unique(valid_seqs.correct)) < 2:
        raise ValueError(f"the {len(valid_seqs.correct):,} validation answers are all "
                         f"{'correct' if valid_seqs.correct.all() else 'wrong'}: no AUC can "
                         "be computed to stop early on; give a validation log with both")
    spans = windows(train_seqs, cfg.window)
    if len(spans) == 0:
        raise ValueError("no learner in the training log has two answers: nothing to learn from")
    n_batches = -(-len(spans) // cfg.batch_size)

    torch.manual_seed(cfg.seed)
    net = DKTNet(len(skills), cfg).to(dev)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    averaged = _moving_average(net, cfg.ema_epochs, n_batches)
    run = _Run(best_auc=-np.inf, best_weights=copy.deepcopy(net.state_dict()))
    folder = Path(checkpoint) if checkpoint is not None else None
    if resume:
        if folder is None:
            raise ValueError("resuming needs the checkpoint directory of the interrupted run")
        run = _resume(folder, cfg, skills, net, optimizer, averaged)

    for epoch in range(run.epoch, cfg.epochs):
        if run.bad_epochs >= cfg.patience:
            break
        started = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        net.train()
        total_loss, seen = 0.0, 0
        for done, group in enumerate(batches(spans, cfg.batch_size, rng), start=1):
            batch = make_batch(train_seqs, group, len(skills)).to(dev)
            logits, hiddens, _ = net.run(batch)
            target = batch.correct[batch.mask]
            # each member on its own loss, clipped on its own: it learns as it would alone
            loss = sum((loss_fn(member_logits, target) for member_logits in logits),
                       start=logits.new_zeros(()))
            if cfg.reg_r or cfg.reg_w1 or cfg.reg_w2:
                for member, hidden in zip(net.member_nets(), hiddens, strict=True):
                    loss = loss + dkt_plus_penalty(member, batch, hidden, cfg, loss_fn)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for member in net.member_nets():
                torch.nn.utils.clip_grad_norm_(member.parameters(), max_norm=5.0)
            optimizer.step()
            if averaged is not None:
                averaged.update_parameters(net)
            total_loss += loss.item() / len(logits) * len(target)  # per member
            seen += len(target)
            if progress is not None:
                progress(epoch * n_batches + done, cfg.epochs * n_batches,
                         f"epoch {epoch + 1}/{cfg.epochs}",
                         {"loss": total_loss / seen, **run.last_metrics()})
        kept = net if averaged is None else _averaged_net(averaged)
        auc = _auc(kept, valid_seqs, dev)
        run.record(epoch, total_loss / max(seen, 1), auc, time.perf_counter() - started, kept)
        if folder is not None:
            _save(folder, cfg, skills, net, optimizer, averaged, run)
        if progress is not None:
            progress((epoch + 1) * n_batches, cfg.epochs * n_batches,
                     f"epoch {epoch + 1}/{cfg.epochs}", run.last_metrics())

    learned = Checkpoint(cfg, skills, run.best_weights,
                         run.summary(len(log), len(valid), str(dev)))
    if folder is not None:
        learned.write(folder)
    return learned


def _moving_average(net: torch.nn.Module, epochs: float,
                    n_batches: int) -> torch.optim.swa_utils.AveragedModel | None:
    """An exponential moving average of ``net``'s weights over about ``epochs`` epochs of
    ``n_batches`` steps (``None`` for 0).

    The average of the weights along the last epochs of the trajectory predicts better than
    the weights at any one step (Polyak averaging; AWD-LSTM's averaged SGD): on assist2015 one
    network went from 0.7242 to 0.7286 test AUC, statics2011 from 0.8264 to 0.8283 (README).
    The horizon is in epochs, not steps, because datasets differ by 10x in batches per epoch;
    it never covers more than the later half of the steps taken, so a short run is not
    averaged with its first, untrained weights.
    """
    if not epochs:
        return None
    horizon = epochs * n_batches

    @torch.no_grad()
    def update(averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor],
               n_averaged: torch.Tensor | int) -> None:
        weight = 1.0 / max(1.0, min(horizon, (int(n_averaged) + 1) / 2))
        for mean, value in zip(averaged, current, strict=True):
            mean.lerp_(value, weight)

    return torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=update)


def _averaged_net(averaged: torch.optim.swa_utils.AveragedModel) -> DKTNet:
    """The averaged copy of the network (``averaged.module``, typed as a plain Module)."""
    net = averaged.module
    if not isinstance(net, DKTNet):
        raise TypeError(f"the averaged model holds a {type(net).__name__}, not a DKTNet")
    return net


def dkt_plus_penalty(net: DKTMember, batch: Batch, hidden: torch.Tensor, cfg: DKTConfig,
                     loss_fn: torch.nn.Module) -> torch.Tensor:
    """DKT+'s regularizers (Yeung & Yeung 2018): the state after an answer must also predict
    that answer (reconstruction), and predictions of all skills should not jump between steps
    (waviness, L1 and squared L2, averaged over skills and steps)."""
    penalty = hidden.new_zeros(())
    if cfg.reg_r:
        after = net.readout(net.drop(hidden[batch.mask]), batch)
        penalty = penalty + cfg.reg_r * loss_fn(after, batch.correct[batch.mask])
    if cfg.reg_w1 or cfg.reg_w2:
        pairs = batch.mask[:, 1:] & batch.mask[:, :-1]
        if bool(pairs.any()):
            p = torch.sigmoid(net.out(hidden))
            change = (p[:, 1:] - p[:, :-1])[pairs]
            penalty = penalty + cfg.reg_w1 * change.abs().mean() \
                + cfg.reg_w2 * change.pow(2).mean()
    return penalty


class _Run:
    """The bookkeeping of one training run: history, best epoch, patience."""

    def __init__(self, best_auc: float, best_weights: Weights) -> None:
        self.epoch = 0
        self.best_auc = best_auc
        self.best_epoch = -1
        self.best_weights = best_weights
        self.bad_epochs = 0
        self.history: list[dict[str, float]] = []

    def record(self, epoch: int, loss: float, auc: float, seconds: float,
               net: torch.nn.Module) -> None:
        self.history.append({"epoch": epoch + 1, "loss": loss, "valid_auc": auc,
                             "seconds": seconds})
        self.epoch = epoch + 1
        if auc > self.best_auc:
            self.best_auc, self.best_epoch, self.bad_epochs = auc, epoch + 1, 0
            self.best_weights = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        else:
            self.bad_epochs += 1

    def last_metrics(self) -> dict[str, float]:
        return {"valid_auc": self.history[-1]["valid_auc"]} if self.history else {}

    def summary(self, n_train: int, n_valid: int, device: str) -> dict[str, Any]:
        return {"epochs_run": self.epoch, "best_epoch": self.best_epoch,
                "best_valid_auc": self.best_auc, "n_train": n_train, "n_valid": n_valid,
                "device": device, "train_seconds": sum(h["seconds"] for h in self.history),
                "history": self.history}


def _auc(net: DKTNet, seqs: Sequences, device: torch.device) -> float:
    """Validation AUC (both classes are present: checked before training)."""
    return float(roc_auc_score(seqs.correct, predict_sequences(net, seqs, device=device)))


def _hold_out(log: AnswerLog, fraction: float, seed: int) -> tuple[AnswerLog, AnswerLog]:
    """Split learners (never single answers) into training and validation."""
    learners = np.unique(log.learner)
    if len(learners) < 2:
        raise ValueError("early stopping needs a validation set: give one, or at least two "
                         "learners to hold one out")
    rng = np.random.default_rng([seed, 2**31])
    n_valid = max(1, round(fraction * len(learners)))
    held = rng.choice(learners, size=n_valid, replace=False)
    in_valid = np.isin(log.learner, held)
    return log.take(~in_valid), log.take(in_valid)


def _used_skills(log: AnswerLog) -> tuple[str, ...]:
    """The skill ids that occur in ``log`` (its vocabulary may hold more), in first-seen order."""
    used = np.zeros(len(log.skill_ids), dtype=bool)
    used[log.skill_codes] = True
    return tuple(str(s) for s in log.skill_ids[used])


def _save(folder: Path, cfg: DKTConfig, skills: tuple[str, ...], net: torch.nn.Module,
          optimizer: torch.optim.Optimizer,
          averaged: torch.optim.swa_utils.AveragedModel | None, run: _Run) -> None:
    """The best model so far as a servable checkpoint, plus what resuming needs."""
    Checkpoint(cfg, skills, run.best_weights,
               {**run.summary(0, 0, ""), "complete": False}).write(folder)
    state = {"epoch": run.epoch, "net": net.state_dict(), "optimizer": optimizer.state_dict(),
             "best_weights": run.best_weights, "best_auc": run.best_auc,
             "best_epoch": run.best_epoch, "bad_epochs": run.bad_epochs,
             "history": json.dumps(run.history),
             "averaged": averaged.state_dict() if averaged is not None else {}}
    tmp = folder / (TRAIN_STATE_FILE + ".tmp")
    torch.save(state, tmp)
    tmp.replace(folder / TRAIN_STATE_FILE)


def _resume(folder: Path, cfg: DKTConfig, skills: tuple[str, ...], net: torch.nn.Module,
            optimizer: torch.optim.Optimizer,
            averaged: torch.optim.swa_utils.AveragedModel | None) -> _Run:
    path = folder / TRAIN_STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: {path} does not exist")
    doc = read_document(folder)
    # a resumed run may be given more epochs or patience; anything else must be the same
    before, now = (
        {k: v for k, v in options.items() if k not in RESUMABLE_CHANGES}
        for options in (doc["config"], asdict(cfg)))
    if before != now or tuple(doc["skills"]) != skills:
        raise ValueError(f"{folder} was written by a run with other settings or other data; "
                         "resume with the same options and files, or use a new --out")
    state = torch.load(path, weights_only=True, map_location="cpu")
    net.load_state_dict(state["net"])
    optimizer.load_state_dict(state["optimizer"])
    if averaged is not None:
        averaged.load_state_dict(state["averaged"])
    run = _Run(state["best_auc"], state["best_weights"])
    run.epoch, run.best_epoch, run.bad_epochs = state["epoch"], state["best_epoch"], \
        state["bad_epochs"]
    run.history = json.loads(state["history"])
    return run
