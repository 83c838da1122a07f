"""Policy names -> policies: the one place the command line, the simulator and experiments
build a policy from (``make_policy(name, **options)``), so adding a policy is adding a line.

A policy *spec* is how a user writes one with its options: ``NAME`` or
``NAME:option=value,option=value`` (``target-success:target_success=0.6``); values are read as
numbers where they are numbers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from engine.selection.baselines import FixedCurriculumPolicy, LowestMasteryPolicy, RandomPolicy
from engine.selection.options import Option
from engine.selection.policy import Policy, TargetSuccessPolicy
from engine.selection.spaced import SpacedPolicy
from engine.selection.teach import TeachPolicy

__all__ = ["DEFAULT_POLICY", "POLICIES", "PolicySpec", "make_policy", "parse_policy"]


_Registered = type[TargetSuccessPolicy | FixedCurriculumPolicy | RandomPolicy
                   | LowestMasteryPolicy | SpacedPolicy | TeachPolicy]


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy: what builds it, and one line for ``--help``. Its options are the
    class's declared ``OPTIONS`` (what the constructor checks, and the API states)."""

    build: _Registered
    summary: str

    @property
    def options(self) -> tuple[Option, ...]:
        return self.build.OPTIONS

    def default(self, option: str) -> Any:
        """The value the policy takes for ``option`` when none is given."""
        return inspect.signature(self.build).parameters[option].default


#: the policy a tenant that names none is served, and what ``tutor simulate`` recommends
DEFAULT_POLICY = "teach"

POLICIES: dict[str, PolicySpec] = {
    "teach": PolicySpec(TeachPolicy, "the engine's default: new material in prerequisite "
                        "order, the weakest open skill first, with due reviews of what is "
                        "being forgotten (at most 2 a session); runs with the bkt-memory "
                        "tracer"),
    "target-success": PolicySpec(TargetSuccessPolicy, "the engine's policy: predicted success "
                                 "closest to a target (0.75), prerequisites first"),
    "fixed-curriculum": PolicySpec(FixedCurriculumPolicy, "course order, a skill passed after "
                                   "3 correct in a row (skill builder)"),
    "random": PolicySpec(RandomPolicy, "any item of the course, uniformly"),
    "lowest-mastery": PolicySpec(LowestMasteryPolicy, "the open skill with the lowest "
                                 "mastery, then an item of it (OATutor)"),
    "spaced": PolicySpec(SpacedPolicy, "selection v2: due reviews (recall below a target "
                         "retention, 0.9) interleaved with new material at the target success; "
                         "runs with the bkt-memory tracer"),
}


def make_policy(name: str, **options: Any) -> Policy:
    """A policy by name with keyword options; ValueError naming the policies there are, or the
    options the policy takes."""
    try:
        spec = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r} (policies: {', '.join(POLICIES)})") from None
    takes = [option.name for option in spec.options]
    unknown = sorted(o for o in options if o not in takes)
    if unknown:
        raise ValueError(f"policy {name!r} takes no option {', '.join(map(repr, unknown))} "
                         f"(options: {', '.join(takes) or 'none'})")
    return spec.build(**options)


def parse_policy(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:option=value,...]`` -> (name, options); ValueError saying what is malformed."""
    name, _, rest = spec.partition(":")
    options: dict[str, Any] = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"policy {spec!r}: options are written option=value, got {part!r}")
        options[key.strip()] = _value(value.strip())
    return name.strip(), options


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
