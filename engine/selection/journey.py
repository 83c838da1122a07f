"""What wraps any policy's choice while a learner works through a course: the course's end, and
prerequisites that lie outside it. The same for every policy (it reads a policy's
``mastery_threshold`` and ``retention`` where it has them, and a policy's own
``course_status`` where it defines one), so the API serves every policy alike:

* **complete**: every skill of the course learned and no review due
  (:func:`engine.selection.spaced.course_status`): nothing is chosen, and the reason says when
  the next review falls due (with a tracer that has memory). Reviews that fall due are chosen
  again by the policy, the most forgotten first: never a loop on one or two skills of a course
  that is done;
* **locked from outside**: nothing new of the course is open because prerequisites it does not
  teach are not learned (:func:`engine.selection.scope_prereqs.locked_outside`), and the policy
  offers nothing, or only practice of learned skills: the policy chooses among those outside
  prerequisites instead (:func:`~engine.selection.scope_prereqs.choose_outside`), marked as
  outside the course;
* otherwise the policy's choice, or its reason for none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from engine.catalog import Catalog
from engine.selection.policy import Choice, Policy, SelectionContext
from engine.selection.prepared import prepare
from engine.selection.scope_prereqs import choose_outside, learned_skills, locked_outside
from engine.selection.spaced import MASTERY_THRESHOLD, CourseStatus, course_status, reviews
from engine.tracing.base import Tracer

__all__ = ["Journey", "choose", "status"]

#: the retention a review is due at, for a policy that sets none
RETENTION = 0.9


@dataclass(frozen=True, slots=True)
class Journey:
    """A choice in a course: the items (best first), whether the course is ``complete``,
    whether the items are ``outside_course`` (prerequisites the course does not teach), and
    why there are none (``reason``; None when there are)."""

    choices: list[Choice]
    complete: bool
    outside_course: bool = False
    reason: str | None = None


def levels(policy: Policy, retention: float | None = None) -> tuple[float, float]:
    """(mastery threshold, retention) that ``policy`` reads as learned and due; ``retention``
    overrides the policy's (a request's)."""
    threshold = getattr(policy, "mastery_threshold", MASTERY_THRESHOLD)
    kept = retention if retention is not None else getattr(policy, "retention", RETENTION)
    return float(threshold), float(kept)


def status(policy: Policy, tracer: Tracer[Any], state: Any, catalog: Catalog,
           course: str | None, *, at: datetime, retention: float | None = None,
           ) -> CourseStatus:
    """Where the learner stands in ``course`` (None: the whole catalog) as ``policy`` sees
    it: its own ``course_status`` when it has one, else :func:`course_status` at its mastery
    threshold and retention."""
    own = getattr(policy, "course_status", None)
    if callable(own):
        found: CourseStatus = own(tracer, state, catalog, course, at=at)
        return found
    threshold, kept = levels(policy, retention)
    return course_status(tracer, state, catalog, course, at=at, retention=kept,
                         mastery_threshold=threshold)


def choose(policy: Policy, tracer: Tracer[Any], state: Any, catalog: Catalog,
           context: SelectionContext) -> Journey:
    """``policy``'s choice in ``context.course`` (module docstring); ``context.at``, the
    moment of the choice, is required (completion depends on it)."""
    at = context.at
    if at is None:
        raise ValueError("the moment of the choice (context.at) is needed to tell whether "
                         "the course is complete")
    done = status(policy, tracer, state, catalog, context.course, at=at,
                  retention=context.retention)
    if done.complete:
        return Journey([], True, reason=_complete(policy, tracer, state, catalog, context,
                                                  done))
    choices = policy.choose(tracer, state, catalog, context)
    if context.course is not None and done.due == 0:
        threshold, retention = levels(policy, context.retention)
        learned = learned_skills(tracer, state, catalog, at=at, mastery_threshold=threshold,
                                 retention=retention)
        if locked_outside(learned, catalog, context.course) \
                and not _any_new(catalog, learned, choices):
            outside = choose_outside(policy, tracer, state, catalog, context)
            if outside:
                return Journey(outside, False, outside_course=True)
    if choices:
        return Journey(choices, False)
    return Journey([], False, reason=policy.explain_empty(tracer, state, catalog, context))


def _any_new(catalog: Catalog, learned: np.ndarray, choices: list[Choice]) -> bool:
    """Whether one of ``choices`` practises a skill not learned (new material, which the
    policy found open by its own reading: then it is kept)."""
    index = {s: k for k, s in enumerate(prepare(catalog).skill_ids)}
    return any(not learned[index[s]] for c in choices for s in c.skills)


def _complete(policy: Policy, tracer: Tracer[Any], state: Any, catalog: Catalog,
              context: SelectionContext, done: CourseStatus) -> str:
    """Why nothing is chosen in a complete course, with the next review's time if any."""
    assert context.at is not None
    scope = "the content" if context.course is None else f"course {context.course!r}"
    threshold, retention = levels(policy, context.retention)
    upcoming = [r.due for r in reviews(tracer, state, catalog, at=context.at,
                                       retention=retention, mastery_threshold=threshold,
                                       course=context.course) if r.due is not None]
    then = (f"; the next review falls due at {min(upcoming).isoformat(timespec='seconds')}"
            if upcoming else "")
    return (f"{scope} is complete: all {done.skills} skills learned and no review due"
            f"{then}")
