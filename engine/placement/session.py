"""A placement test: the configured CAT (:class:`Placement`) and one examinee's run of it
(:class:`PlacementSession`).

A :class:`Placement` holds a bank, its precomputed tables and the rules (criterion, exposure
control, content balance, stopping); it is immutable and shared by every session. A session's
whole state is its seed and the answers so far: every random draw of step ``k`` comes from a
generator seeded with ``(seed, k)``, so :meth:`Placement.resume` replays the same selections,
the same items set aside by Sympson-Hetter and the same estimate. A server persists
:meth:`PlacementSession.to_dict` (or nothing but the answer log) and resumes after a restart.
Replaying costs a selection (a pass over the bank) per answer; a server that also keeps the
item the session gives now (:attr:`PlacementSession.pending`) and the items set aside
restores it with :meth:`Placement.restore` without any selection, in O(answers x grid).

The bank's tables (:class:`engine.placement.select.Tables`) depend on the bank and the grid
only: a server builds them once per bank and shares them between placements of any stopping
rule (``shared_tables=``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.placement.estimate import ESTIMATORS, Estimate, Grid, eap, estimate
from engine.placement.irt import ItemBank
from engine.placement.select import CRITERIA, Tables, choose, next_group, scores

__all__ = ["Placement", "PlacementSession", "StopRule"]


@dataclass(frozen=True, slots=True)
class StopRule:
    """When a test ends: at ``max_length`` items, or once the standard error is at most
    ``se`` (None: never) with at least ``min_length`` items given."""

    min_length: int = 1
    max_length: int = 40
    se: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_length <= self.max_length or self.max_length < 1:
            raise ValueError(f"stop rule: need 0 <= min_length <= max_length and max_length >= "
                             f"1, got {self.min_length} and {self.max_length}")
        if self.se is not None and self.se <= 0:
            raise ValueError(f"stop rule: the standard-error target must be above 0, got "
                             f"{self.se}")

    def done(self, length: int, se: float) -> bool:
        if length >= self.max_length:
            return True
        return self.se is not None and length >= self.min_length and se <= self.se


@dataclass(frozen=True, eq=False)
class Placement:
    """A configured adaptive test over ``bank`` (see :mod:`engine.placement.select` for the
    rules). ``balance``: target share of the test per content group (normalized; groups left
    out are not given); ``control``: Sympson-Hetter parameters, one per item; ``estimator``:
    how the final θ is estimated (selection always uses EAP, which exists for every pattern)."""

    bank: ItemBank
    criterion: str = "kl"
    randomesque: int = 1
    control: np.ndarray | None = None
    balance: Mapping[str, float] | None = None
    stop: StopRule = field(default_factory=StopRule)
    estimator: str = "eap"
    grid: Grid = field(default_factory=Grid.normal)
    tables: Tables = field(init=False)
    #: the bank's tables on ``grid`` when they are built already (shared: see the module)
    shared_tables: InitVar[Tables | None] = None
    group_masks: Mapping[str, np.ndarray] = field(init=False)

    def __post_init__(self, shared_tables: Tables | None) -> None:
        if self.criterion not in CRITERIA:
            raise ValueError(f"unknown selection criterion {self.criterion!r}; one of "
                             f"{', '.join(CRITERIA)}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; one of "
                             f"{', '.join(ESTIMATORS)}")
        if self.randomesque < 1:
            raise ValueError(f"randomesque must be at least 1, got {self.randomesque}")
        if self.control is not None:
            control = np.array(self.control, dtype=np.float64)
            if control.shape != (len(self.bank),) or np.any((control <= 0) | (control > 1)):
                raise ValueError("Sympson-Hetter parameters: one per item, each in (0, 1]")
            control.setflags(write=False)
            object.__setattr__(self, "control", control)
        if self.balance is not None:
            unknown = set(self.balance) - set(self.bank.groups)
            if unknown:
                raise ValueError(f"content balance names groups the bank does not have: "
                                 f"{sorted(unknown)} (it has {list(self.bank.group_names)})")
            total = sum(self.balance.values())
            if total <= 0 or any(v < 0 for v in self.balance.values()):
                raise ValueError("content balance: shares must be >= 0 and not all 0")
            object.__setattr__(self, "balance", MappingProxyType(
                {g: v / total for g, v in self.balance.items()}))
        if shared_tables is None:
            shared_tables = Tables.build(self.bank, self.grid)
        elif shared_tables.bank is not self.bank or shared_tables.grid is not self.grid:
            raise ValueError("tables: built for another bank or grid than the placement's")
        object.__setattr__(self, "tables", shared_tables)
        # only the balanced groups' masks: a bank of many groups would hold groups x items
        groups = np.asarray(self.bank.groups)
        object.__setattr__(self, "group_masks", MappingProxyType(
            {g: groups == g for g in self.balance or ()}))

    def start(self, seed: int) -> PlacementSession:
        """A new examinee's test."""
        return PlacementSession(self, seed)

    def resume(self, seed: int, answers: Sequence[tuple[str, bool]]) -> PlacementSession:
        """The session that gave ``answers`` (item id, correct), replayed; ValueError if an
        answer is not to the item this test would have given at that point."""
        session = self.start(seed)
        for item, correct in answers:
            session.answer(item, correct)
        return session

    def restore(self, seed: int, answers: Sequence[tuple[str, bool]], pending: str | None,
                set_aside: Sequence[str] = ()) -> PlacementSession:
        """The session that gave ``answers`` and gives ``pending`` now (None: it is over, or
        its next item is to be selected), with ``set_aside`` refused by Sympson-Hetter, as
        :meth:`resume` would replay it, without selecting anything: what a server that kept
        those restores in one step. ValueError for an item the bank does not have, one
        answered twice, or a ``pending`` item answered or set aside already."""
        session = self.start(seed)
        try:
            for item, correct in answers:
                if not session._available[self.tables.index[item]]:
                    raise ValueError(f"item {item!r} is answered twice")
                session._record(self.tables.index[item], correct)
            for item in set_aside:
                session._available[self.tables.index[item]] = False
                session.set_aside.append(self.tables.index[item])
            if pending is not None:
                i = self.tables.index[pending]
                if not session._available[i]:
                    raise ValueError(f"the pending item {pending!r} is answered or set aside")
                session._pending = i
        except KeyError as exc:
            raise ValueError(f"item {exc.args[0]!r} is not in the bank") from None
        return session


class PlacementSession:
    """One examinee's test: :meth:`next_item`, :meth:`answer`, until :attr:`done`."""

    def __init__(self, placement: Placement, seed: int) -> None:
        self.placement = placement
        self.seed = int(seed)
        n = len(placement.bank)
        self._available = np.ones(n, dtype=bool)
        self._given: list[int] = []
        self._correct: list[bool] = []
        self._log_likelihood = np.zeros(len(placement.grid.points))
        self._counts: dict[str, int] = {}
        self._estimate, self._weights = eap(placement.grid, self._log_likelihood)
        self._pending: int | None = None
        self.set_aside: list[int] = []  # items Sympson-Hetter refused this examinee

    # ------------------------------------------------------------------ state
    @property
    def length(self) -> int:
        return len(self._given)

    @property
    def done(self) -> bool:
        return (self.placement.stop.done(self.length, self._estimate.se)
                or not self._available.any())

    @property
    def answers(self) -> list[tuple[str, bool]]:
        ids = self.placement.bank.ids
        return [(ids[i], c) for i, c in zip(self._given, self._correct, strict=True)]

    @property
    def pending(self) -> str | None:
        """The item given now if it is selected already (:meth:`next_item` selects it)."""
        return None if self._pending is None else self.placement.bank.ids[self._pending]

    @property
    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """The grid and the posterior weights of θ on it."""
        return self.placement.grid.points, self._weights

    def estimate(self, method: str | None = None) -> Estimate:
        """θ and its standard error by ``method`` (default: the placement's estimator)."""
        method = method or self.placement.estimator
        if method == "eap":
            return self._estimate
        return estimate(self.placement.bank, np.array(self._given, dtype=np.int64),
                        np.array(self._correct, dtype=bool), self.placement.grid, method)

    def to_dict(self) -> dict[str, Any]:
        """What a server stores: the seed and the answers (everything else is recomputed)."""
        return {"seed": self.seed, "answers": [[i, c] for i, c in self.answers]}

    # ------------------------------------------------------------------ steps
    def next_item(self) -> str | None:
        """The id of the item to give now (the same until it is answered); None when done."""
        if self.done:
            return None
        if self._pending is None:
            self._pending = self._select()
        return self.placement.bank.ids[self._pending]

    def answer(self, item: str, correct: bool) -> Estimate:
        """Record the answer to the item :meth:`next_item` gives; the new estimate."""
        expected = self.next_item()
        if expected is None:
            raise ValueError(f"the placement test is over ({self.length} items); no answer to "
                             f"{item!r} is expected")
        if item != expected:
            raise ValueError(f"the placement test gives item {expected!r} now, not {item!r}")
        self._pending = None
        self._record(self.placement.tables.index[item], correct)
        return self._estimate

    def _record(self, i: int, correct: bool) -> None:
        """Take the answer to item ``i``: the likelihood, the estimate, the group counts."""
        self._given.append(i)
        self._correct.append(bool(correct))
        self._available[i] = False
        group = self.placement.bank.groups[i]
        self._counts[group] = self._counts.get(group, 0) + 1
        column = self.placement.tables.log_p if correct else self.placement.tables.log_q
        self._log_likelihood += column[:, i]
        self._estimate, self._weights = eap(self.placement.grid, self._log_likelihood)

    def _select(self) -> int:
        p = self.placement
        rng = np.random.default_rng([self.seed, self.length])
        candidates = self._available
        if p.balance is not None:
            open_groups = {p.bank.groups[i] for i in np.flatnonzero(candidates)}
            group = next_group(p.balance, self._counts, open_groups)
            if group is not None:
                candidates = candidates & p.group_masks[group]
        score = scores(p.tables, p.criterion, self._estimate.theta, self._weights)
        item, rejected = choose(score, np.flatnonzero(candidates), rng, p.randomesque,
                                p.control)
        for r in rejected:
            self._available[r] = False
        self.set_aside.extend(rejected)
        return item
