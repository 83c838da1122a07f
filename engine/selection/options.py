"""A policy's options, declared: each option's name, kind (integer or number) and range.

Every policy lists its options (``OPTIONS``, next to its constructor) and its constructor checks
each value with :meth:`Option.check`. The same declaration is what the API states in its
OpenAPI document (an arm's ``options`` per policy, in :mod:`api.experiment_schemas`), so the
rule that refuses a value and the document that describes it cannot drift apart.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["AVOID_RECENT", "MASTERY_THRESHOLD", "SEED", "TARGET_SUCCESS", "Option"]


@dataclass(frozen=True, slots=True)
class Option:
    """One keyword option of a policy. ``integer``: an int (never a bool); otherwise any finite
    real number. A bound that is None is absent; ``exclusive_*`` makes it strict."""

    name: str
    integer: bool
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def check(self, value: object) -> None:
        """ValueError naming the option and its rule, unless ``value`` is of its kind and in
        its range."""
        if isinstance(value, bool) or not isinstance(
                value, int if self.integer else numbers.Real):
            raise ValueError(self._refusal(value, below=True))
        number = float(value)
        if self.minimum is not None and not (number > self.minimum if self.exclusive_minimum
                                             else number >= self.minimum):
            raise ValueError(self._refusal(value, below=True))
        if not math.isfinite(number) or (self.maximum is not None and not (
                number < self.maximum if self.exclusive_maximum else number <= self.maximum)):
            raise ValueError(self._refusal(value, below=False))

    def _refusal(self, value: object, below: bool) -> str:
        if self.integer:  # the lower bound with the kind; the upper one on its own
            rule = "an integer" + (f" >= {self.minimum:g}" if self.minimum is not None else "")
            if not below and self.maximum is not None:
                rule = f"at most {self.maximum:g}"
        else:
            rule = self._interval()
        return f"{self.name} must be {rule}, got {value!r}"

    def _interval(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            if self.exclusive_minimum and self.exclusive_maximum:
                return f"strictly between {low:g} and {high:g}"
            return (f"in {'(' if self.exclusive_minimum else '['}{low:g}, "
                    f"{high:g}{')' if self.exclusive_maximum else ']'}")
        if low is not None:
            return "positive" if low == 0 and self.exclusive_minimum else \
                f"{'>' if self.exclusive_minimum else '>='} {low:g}"
        if high is not None:
            return f"{'<' if self.exclusive_maximum else '<='} {high:g}"
        return "a finite number"


#: the options several policies share (one message for one mistake, whichever the policy)
TARGET_SUCCESS = Option("target_success", False, 0.0, 1.0, exclusive_minimum=True,
                        exclusive_maximum=True)
MASTERY_THRESHOLD = Option("mastery_threshold", False, 0.0, 1.0, exclusive_minimum=True)
AVOID_RECENT = Option("avoid_recent", True, 0)
SEED = Option("seed", True)
