"""DKT's settings, apart from the model so that reading them does not import PyTorch."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DKTConfig"]


@dataclass(frozen=True)
class DKTConfig:
    """Architecture and training settings; saved with every checkpoint."""

    hidden: int = 128  #: LSTM units per layer (per member; the DKT paper's one network: 200)
    embed: int = 64  #: size of the (skill, correct) input embedding
    layers: int = 1  #: stacked LSTM layers
    dropout: float = 0.2  #: on the LSTM output (and between layers)
    #: independently initialised networks whose logits are averaged (an ensemble): three of
    #: 128 units against one of 200 (README): statics2011 +0.0035 AUC, assist2015 +0.0052,
    #: synthetic5 +0.0039, assist2009 -0.0016, for 2-3x the training time
    members: int = 3
    #: DKT+ (Yeung & Yeung 2018): weights of the reconstruction loss (the state after an answer
    #: should predict that answer) and of the L1 / squared L2 change of every skill's
    #: prediction from one step to the next (0 turns each off; the paper uses 0.1, 0.003, 3.0)
    reg_r: float = 0.0
    reg_w1: float = 0.0
    reg_w2: float = 0.0
    #: horizon, in epochs, of an exponential moving average of the weights, updated after every
    #: batch; the average is what is validated and kept (0: the raw weights). With the ensemble
    #: (README): statics2011 +0.0009 AUC, assist2015 +0.0031, assist2009 +0.0047, synthetic5
    #: +0.0031
    ema_epochs: float = 2.0
    window: int = 200  #: longest training window, in answers
    batch_size: int = 32  #: windows per training batch
    lr: float = 2e-3  #: Adam learning rate
    weight_decay: float = 0.0  #: Adam L2 penalty
    epochs: int = 30  #: most training epochs
    patience: int = 3  #: epochs without a better validation AUC before stopping
    valid_fraction: float = 0.1  #: learners held out for early stopping without a valid log
    seed: int = 42  #: fixes initial weights, batch order and dropout
    max_unseen: float = 0.5  #: largest share of answers on unknown skills a log may have

    def __post_init__(self) -> None:
        for name in ("hidden", "embed", "layers", "members", "window", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"DKT {name} must be a positive integer, got "
                                 f"{getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"DKT dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction!r}")
        if self.ema_epochs < 0:
            raise ValueError(f"ema_epochs must be >= 0 (0: no average), got {self.ema_epochs!r}")
        if min(self.reg_r, self.reg_w1, self.reg_w2) < 0:
            raise ValueError("the DKT+ weights reg_r, reg_w1, reg_w2 must be >= 0")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DKTConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown DKT settings: {', '.join(sorted(unknown))}")
        return cls(**data)
