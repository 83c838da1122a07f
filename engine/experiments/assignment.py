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
    """One arm: its name and allocation weight (any finite positive number; shares are weight /
    sum, see :func:`shares`)."""

    name: str
    weight: float = 1.0


def scaled_weights(weights: Sequence[float]) -> list[float]:
    """``weights`` times the power of two that brings the largest into [0.5, 1).

    The sum of raw weights overflows for weights near the float maximum (two arms of 1e308:
    ``math.fsum`` raises OverflowError), and tiny ones lose precision; scaled, any finite
    positive weights sum to at most their count. Multiplying by a power of two is exact (short
    of underflow), so the edges :func:`assign` cuts are, for weights whose sum was finite,
    exactly those of the raw weights: no learner's bucket changes arm. A weight more than
    about 2**1074 times smaller than the largest underflows to 0 (its arm could never be
    assigned; :func:`check_arms` refuses it)."""
    exponent = math.frexp(max(weights))[1]
    return [math.ldexp(w, -exponent) for w in weights]


def shares(weights: Sequence[float]) -> list[float]:
    """Each weight's share of their sum (finite for any finite positive weights, see
    :func:`scaled_weights`), in the weights' order."""
    scaled = scaled_weights(weights)
    total = math.fsum(scaled)
    return [w / total for w in scaled]


def check_arms(arms: Sequence[Arm]) -> None:
    """ValueError unless there are at least two arms, with distinct valid names and finite
    positive weights whose shares are all > 0 (no arm so light next to another that it could
    never get a learner, nor be expected to in the sample-ratio-mismatch check)."""
    if len(arms) < 2:
        raise ValueError(f"an experiment needs at least two arms, got {len(arms)}")
    seen: set[str] = set()
    for arm in arms:
        check_id(arm.name)
        if arm.name in seen:
            raise ValueError(f"arm {arm.name!r} is named twice")
        seen.add(arm.name)
        if isinstance(arm.weight, bool) or not isinstance(arm.weight, int | float) \
                or not math.isfinite(arm.weight) or arm.weight <= 0:
            raise ValueError(f"arm {arm.name!r}: the weight must be a finite number > 0, got "
                             f"{arm.weight!r}")
    for arm, share in zip(arms, shares([a.weight for a in arms]), strict=True):
        if share <= 0:
            raise ValueError(f"arm {arm.name!r}: the weight {arm.weight!r} is too small next "
                             f"to the others' for a share of the learners")


def bucket(experiment: str, learner: str) -> float:
    """The learner's point in [0, 1) for ``experiment``: the first 64 bits of SHA-256 of the
    two ids (uniform for any ids, the same everywhere and always)."""
    digest = hashlib.sha256(f"{experiment}{_SEPARATOR}{learner}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign(experiment: str, learner: str, arms: Sequence[Arm]) -> str:
    """The name of the arm ``learner`` joins in ``experiment``: the arm whose share of [0, 1),
    in the arms' order, holds the learner's :func:`bucket`."""
    return assign_all(experiment, [learner], arms)[0]


def assign_all(experiment: str, learners: Sequence[str], arms: Sequence[Arm]) -> list[str]:
    """:func:`assign` of each of ``learners`` (the arms checked once)."""
    check_arms(arms)
    scaled = scaled_weights([a.weight for a in arms])
    total = math.fsum(scaled)
    edges = []
    edge = 0.0
    for weight in scaled[:-1]:
        edge += weight
        edges.append(edge)
    names = [a.name for a in arms]
    # a point at or past the last edge goes to the last arm (also absorbs the edges' rounding)
    return [names[bisect.bisect_right(edges, bucket(experiment, learner) * total)]
            for learner in learners]
