"""Item response theory: the logistic models 1PL to 4PL, their probability and Fisher information.

One formula covers the four models, the four-parameter logistic

    P(correct | θ) = c + (d - c) / (1 + exp(-a (θ - b)))

with a the discrimination, b the difficulty, c the lower asymptote (guessing) and d the upper
one (1 - slip). The 3PL fixes d = 1, the 2PL also c = 0, the 1PL also a common a. The logistic
metric is used without the 1.7 scaling constant (as catsim, mirt and the tcals bank do), so
parameters move between these tools unchanged.

Every function is vectorized over abilities and items at once (arrays of shape (abilities,
items)): a placement step evaluates a thousand items at one θ or on a whole quadrature grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

__all__ = ["MODELS", "ItemBank", "information", "probability"]

#: the model names, by number of free parameters per item
MODELS = ("1pl", "2pl", "3pl", "4pl")


@dataclass(frozen=True, eq=False)
class ItemBank:
    """Calibrated items: parameter arrays of equal length, a content group and an id per item.

    Immutable once built (the arrays are made read-only), so one bank is shared by every
    placement session of a server without copies.
    """

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    groups: tuple[str, ...]
    ids: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.b)
        for name in ("a", "b", "c", "d"):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != (n,):
                raise ValueError(f"item bank: {name} has shape {value.shape}, expected ({n},)")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"item bank: {name} holds a value that is not a finite number")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if len(self.groups) != n or len(self.ids) != n:
            raise ValueError(f"item bank: {len(self.groups)} groups and {len(self.ids)} ids for "
                             f"{n} items")
        if len(set(self.ids)) != n:
            raise ValueError("item bank: item ids must be unique")
        problems = [
            (self.a <= 0, "a (discrimination) must be above 0"),
            ((self.c < 0) | (self.c >= 1), "c (guessing) must be in [0, 1)"),
            ((self.d <= self.c) | (self.d > 1), "d (upper asymptote) must be above c and at "
                                                "most 1"),
        ]
        for bad, message in problems:
            if np.any(bad):
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"item bank: item {self.ids[i]!r}: {message}")

    @classmethod
    def build(cls, a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
              c: Sequence[float] | np.ndarray | None = None,
              d: Sequence[float] | np.ndarray | None = None, *,
              groups: Sequence[str] | None = None, ids: Sequence[str] | None = None) -> ItemBank:
        """A bank from parameter columns; c defaults to 0, d to 1, groups to one group ("all")
        and ids to the item numbers from 1."""
        n = len(b)
        return cls(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                   np.zeros(n) if c is None else np.asarray(c, dtype=np.float64),
                   np.ones(n) if d is None else np.asarray(d, dtype=np.float64),
                   tuple(groups) if groups is not None else ("all",) * n,
                   tuple(ids) if ids is not None else tuple(str(i + 1) for i in range(n)))

    def __len__(self) -> int:
        return len(self.b)

    @property
    def model(self) -> str:
        """The smallest of :data:`MODELS` that holds every item's parameters."""
        if np.any(self.d < 1):
            return "4pl"
        if np.any(self.c > 0):
            return "3pl"
        return "2pl" if np.ptp(self.a) > 0 else "1pl"

    @property
    def group_names(self) -> tuple[str, ...]:
        """The content groups, in order of first appearance."""
        return tuple(dict.fromkeys(self.groups))


def _grid(theta: float | np.ndarray) -> np.ndarray:
    return np.atleast_1d(np.asarray(theta, dtype=np.float64))[:, None]


def probability(bank: ItemBank, theta: float | np.ndarray) -> np.ndarray:
    """P(correct) of every item at every ability: shape (len(theta), len(bank))."""
    return bank.c + (bank.d - bank.c) * expit(bank.a * (_grid(theta) - bank.b))


def information(bank: ItemBank, theta: float | np.ndarray) -> np.ndarray:
    """Fisher information of every item at every ability, shape (len(theta), len(bank)).

    The closed form of the 4PL (Magis 2013),
    I = a² (P - c)² (d - P)² / ((d - c)² P (1 - P)),
    which is a² P (1 - P) for the 2PL and the 3PL's a² (1 - P)(P - c)² / (P (1 - c)²).
    """
    p = probability(bank, theta)
    return (bank.a ** 2 * (p - bank.c) ** 2 * (bank.d - p) ** 2
            / ((bank.d - bank.c) ** 2 * p * (1.0 - p)))
