"""The simulator serves what the API serves (engine.selection.journey): nothing once a learner's
course is complete, reviews again when they fall due, and the batched path the same as the
one-learner path, which calls ``journey.choose`` itself.

Course ``toy`` of :mod:`.toy` (skills a -> b -> c, six items); one learner, or a few in
lockstep, who answer every exercise right, a minute apart.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from content.packs import bundled_packs, catalog_from_packs, load_pack
from engine.catalog import Catalog
from engine.selection import SelectionContext, journey, make_policy
from engine.selection.prepared import prepare
from engine.selection.scope_prereqs import outside_prerequisites
from engine.simulation.base import NO_ITEM
from engine.simulation.run import EPOCH, EngineTutor
from engine.tracing.base import Tracer
from engine.tracing.bkt import BKT

from .toy import CATALOG, COURSE

MINUTE = timedelta(minutes=1)
#: a learner answering right every minute has learned the toy course well within this
ENOUGH = 60


class _ListBKT(BKT):
    """BKT with the Tracer contract's default batch layout, a list of states (that of models
    that do not vectorize), so that sub-batches of both layouts are exercised."""

    new_states = Tracer.new_states
    update_many = Tracer.update_many
    predict_items_many = Tracer.predict_items_many
    mastery_of_many = Tracer.mastery_of_many


def _tracer(model: str) -> Tracer[Any]:
    if model == "bkt-as-list":
        return _ListBKT().set_params(CATALOG.bkt_params())
    return CATALOG.tracer(model)


def _tutor(tracer: Any, n: int = 1, *, lockstep: bool = True, policy: str = "teach",
           catalog: Catalog = CATALOG, course: str = COURSE) -> EngineTutor:
    return EngineTutor(catalog, course, make_policy(policy), tracer,
                       [f"learner-{i}" for i in range(n)], lockstep=lockstep)


def _step(tutor: EngineTutor, at: datetime) -> np.ndarray:
    """One exercise at ``at`` (as run_tutor does it: a choice, then the answers): every
    learner served an item answers it right. What was served."""
    chosen = tutor.choose(at)
    tutor.record(chosen, chosen != NO_ITEM, at)
    return chosen


def _answer_right_until_complete(tutor: EngineTutor) -> datetime:
    """Every learner answers its exercise right, a minute apart, until the tutor serves all of
    them nothing; the moment it did. Fails the test if that takes more than ENOUGH."""
    at = EPOCH
    for _ in range(ENOUGH):
        if (_step(tutor, at) == NO_ITEM).all():
            return at
        at += MINUTE
    raise AssertionError(f"the course was not complete after {ENOUGH} right answers")


def _status(tutor: EngineTutor, at: datetime, i: int = 0) -> Any:
    return journey.status(tutor.policy, tutor.tracer, tutor.states[i], tutor.catalog,
                          tutor.course, at=at)


@pytest.mark.parametrize("lockstep", [True, False])
def test_without_memory_a_complete_course_serves_nothing_ever_after(lockstep: bool) -> None:
    tutor = _tutor(CATALOG.tracer("bkt"), lockstep=lockstep)
    done = _answer_right_until_complete(tutor)
    assert tutor.answered[0] > 0
    status = _status(tutor, done)
    assert status.complete and status.learned == status.skills == 3
    # (BKT does not forget with time: nothing ever falls due)
    for later in (MINUTE, timedelta(days=1), timedelta(days=365)):
        assert _step(tutor, done + later).tolist() == [NO_ITEM]
    # the whole course was learned before the tutor stopped: every skill at the threshold
    mastery = tutor.mastery(done)
    assert (mastery >= journey.levels(tutor.policy)[0]).all()


@pytest.mark.parametrize("lockstep", [True, False])
def test_with_memory_reviews_are_served_again_when_they_fall_due(lockstep: bool) -> None:
    tutor = _tutor(CATALOG.tracer("bkt-memory"), lockstep=lockstep)
    done = _answer_right_until_complete(tutor)
    assert _status(tutor, done).complete
    # hour by hour: nothing while the course is complete, a review the first hour it is not
    at = done
    for _ in range(24 * 365):
        at += timedelta(hours=1)
        if not _status(tutor, at).complete:
            break
        assert _step(tutor, at).tolist() == [NO_ITEM], at
    else:
        raise AssertionError("no review fell due within a year")
    assert _status(tutor, at).due > 0
    # what is served is the API's own choice, a review of a learned skill
    found = journey.choose(tutor.policy, tutor.tracer, tutor.states[0], CATALOG,
                           SelectionContext(course=COURSE, seed=int(tutor.answered[0]),
                                            learner="learner-0", at=at,
                                            recent_items=_recent(tutor),
                                            recent_correct=(True,) * len(_recent(tutor))))
    assert not found.complete and found.choices
    assert int(tutor.choose(at)[0]) == prepare(CATALOG).item_index[found.choices[0].item]


def _recent(tutor: EngineTutor) -> tuple[str, ...]:
    items = prepare(tutor.catalog).item_ids
    return tuple(items[j] for j in tutor.recent[0].tolist() if j != NO_ITEM)


@pytest.mark.parametrize("model", ["bkt", "bkt-memory", "bkt-as-list"])
@pytest.mark.parametrize("policy", ["teach", "target-success", "fixed-curriculum"])
def test_lockstep_serves_what_the_one_learner_path_serves(model: str, policy: str) -> None:
    """Learners of mixed luck, a minute apart within a session and a day between sessions: the
    batched path (complete_many, choose_many, on the learners not done) and journey.choose
    learner by learner serve the same items, completions and reviews included."""
    tracer = _tracer(model)
    paths = [_tutor(tracer, 8, lockstep=lockstep, policy=policy) for lockstep in (True, False)]
    rng = np.random.default_rng(7)
    served_nothing, served_again = 0, 0
    idle = np.zeros(8, dtype=bool)
    for day in range(6):
        for k in range(10):
            at = EPOCH + timedelta(days=day) + k * MINUTE
            chosen = [tutor.choose(at) for tutor in paths]
            np.testing.assert_array_equal(chosen[0], chosen[1], err_msg=f"{day} {k}")
            correct = (rng.random(8) < 0.85) & (chosen[0] != NO_ITEM)
            for tutor in paths:
                tutor.record(chosen[0], correct, at)
            served_again += int((idle & (chosen[0] != NO_ITEM)).sum())
            idle = chosen[0] == NO_ITEM
            served_nothing += int(idle.sum())
    assert served_nothing > 0  # some learners completed the course on the way
    # and only a tracer that forgets with time has reviews fall due after that
    assert (served_again > 0) == (model == "bkt-memory")


def test_a_course_locked_from_outside_is_served_its_prerequisites_in_lockstep_too() -> None:
    """A course whose skills require skills it does not teach: the journey offers those (the
    batched path has no reading of that, so it chooses learner by learner there)."""
    math = catalog_from_packs([load_pack(bundled_packs()["math-basics"])])
    course = "math.course.fractions"
    assert outside_prerequisites(math, course)
    tutor = _tutor(math.tracer("bkt"), 3, lockstep=True, catalog=math, course=course)
    chosen = tutor.choose(EPOCH)
    found = journey.choose(tutor.policy, tutor.tracer, tutor.tracer.new_state(), math,
                           SelectionContext(course=course, seed=0, learner="learner-0",
                                            at=EPOCH))
    assert found.outside_course
    assert int(chosen[0]) == prepare(math).item_index[found.choices[0].item]
    assert not set(math.items[found.choices[0].item].skills) & set(math.courses[course].skills)
