"""Sticky assignment of learners to an experiment's arms by a hash of (experiment, learner).

A learner's *bucket* is a point in [0, 1) drawn from SHA-256 of the experiment's and the
learner's ids; the arms cut [0, 1) into consecutive intervals in their order, each as wide as
its share of the weights, and the learner joins the arm whose interval holds the bucket. No
random state and no table is needed to assign again: every worker, at any time, computes the
same arm for the same learner, and buckets of different experiments are independent (the
experiment's id is hashed too), so one experiment's split does not follow another's.

The rule for changes: the hash decides a learner's *first* assignment only. The API stores
each assignment when it is made and serves from the stored arm ever after, so a definition that
changed (a weight, an added arm) could move only learners not yet enrolled, never those already
in an arm. The API goes further and keeps a definition fixed once created: weights that changed
mid-way would make the arms' counts incomparable with any one set of weights (the
sample-ratio-mismatch check) and mix learners enrolled under different splits; a new split is a
new experiment.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.ids import check_id

_SEPARATOR = "\x1f"  # the unit separator: not allowed in ids (printable only), so no collisions
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm: its name and allocation weight (any positive number; shares are weight / sum)."""

    name: str
    weight: float = 1.0


def check_arms(arms: Sequence[Arm]) -> None:
    """ValueError unless there are at least two arms, with distinct valid names and finite
    positive weights."""
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least two arms, got {len(arms)}")
    seen: set[str] = set()
    for arm in arms:
        check_id(arm.name)
        if arm.name in seen:
            raise ValueError(f"arm {arm.name!r} is named twice")
        seen.add(arm.name)
        if isinstance(arm.weight, bool) or not math.isfinite(arm.weight) or arm.weight <= 0:
            raise ValueError(f"arm {arm.name!r}: the weight must be a finite number > 0, got "
                             f"{arm.weight!r}")


def bucket(experiment: str, learner: str) -> float:
    """The learner's point in [0, 1) for ``experiment``: the first 64 bits of SHA-256 of the
    two ids (uniform for any ids, the same everywhere and always)."""
    digest = hashlib.sha256(f"{experiment}{_SEPARATOR}{learner}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(experiment: str, learner: str, arms: Sequence[Arm]) -> str:
    """The name of the arm ``learner`` joins in ``experiment``: the arm whose share of [0, 1),
    in the arms' order, holds the learner's :func:`bucket`."""
    check_arms(arms)
    point = bucket(experiment, learner) * math.fsum(a.weight for a in arms)
    edge = 0.0
    for arm in arms[:-1]:
        edge += arm.weight
        if point < edge:
            return arm.name
    return arms[-1].name  # (also absorbs the rounding of the last edge)


def assign_all(experiment: str, learners: Sequence[str], arms: Sequence[Arm]) -> list[str]:
    """:func:`assign` of each of ``learners`` (the arms checked once)."""
    check_arms(arms)
    total = math.fsum(a.weight for a in arms)
    edges = []
    edge = 0.0
    for arm in arms[:-1]:
        edge += arm.weight
        edges.append(edge)
    names = [a.name for a in arms]
    return [names[bisect.bisect_right(edges, bucket(experiment, learner) * total)]
            for learner in learners]
