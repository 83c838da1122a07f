"""The learner's journey through the API with a placement test first (issue 21, "Known skills":
a learner who knows every skill of the 9-skill math course reaches `complete` in at most one
exercise per skill, placement included), on a tenant that configured nothing (the default
policy on bkt-memory, the per-skill placement with its default stop) and on both backends.

The placement's seed is drawn per test (``secrets``), so each count is checked on a few
learners; over 150 learners the counts below never varied (known: 10 items and no exercise
with the default stop, confidence 0.9; 10 with ``confidence`` 0.95, the default before; knowing
nothing: 4 items)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.placement.skills import DEFAULT_CONFIDENCE

from .conftest import TenantKey, new_event_id
from .test_journey import MATH, WHOLE

LEARNERS = 3  #: learners per case (the placement's seed differs for each)
#: with the stop at 0.95 (the default before): 10 placement items and no exercise after it, one
#: over the target: the 10th item only lifted the last skill (math.negative-numbers) from about
#: 0.92 to 0.95, above the 0.9 at which the journey counts a skill learned
KNOWN_AT_95 = 10
TARGET = len(MATH.courses[WHOLE].skills)  #: at most one exercise per skill, placement included
#: a learner who knows nothing (every placement item wrong): items before practice starts
BEGINNER_ITEMS_TODAY = 5


def placed_then_practise(client: TestClient, t: TenantKey, learner: str, right: bool, most: int,
                         **options: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                  dict[str, Any]]:
    """Start a placement on WHOLE (``options``: its stopping rule), answer each of its items
    ``right``, then practise answering right what ``next`` gives until it is null (at most
    ``most`` answers in all); the placement's items, the exercises after it, and the last
    answer's response."""
    r = client.post(f"/v1/learners/{learner}/placement", headers=t.headers,
                    json={"course": WHOLE, **options})
    assert r.status_code == 201, r.text
    exercise = r.json()["next"]
    placement: list[dict[str, Any]] = []
    practice: list[dict[str, Any]] = []
    for _ in range(most):
        testing = exercise["reason"].startswith("placement test")
        r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers, json={
            "item_id": exercise["item"], "correct": right or not testing,
            "event_id": new_event_id()})
        assert r.status_code == 200, r.text
        (placement if testing else practice).append(exercise)
        out: dict[str, Any] = r.json()
        if out["next"] is None:
            return placement, practice, out
        exercise = out["next"]
    raise AssertionError(f"not complete after {most} answers: {practice[-10:]}")


@pytest.mark.parametrize(("options", "bound"), [
    ({}, TARGET),
    ({"confidence": 0.95}, KNOWN_AT_95),
])
def test_a_learner_who_knows_every_skill_completes_after_placement(
        client: TestClient, make_tenant: Callable[..., TenantKey], options: dict[str, Any],
        bound: int) -> None:
    """Placement answered right, then practice answered right, until `complete`: the items
    and exercises together at most ``bound``. The default stop (every skill at 0.9, the
    policy's mastery threshold, where the journey counts a skill learned) meets the target of
    one per skill; a stop at 0.95 took 10 (a regression bound: see KNOWN_AT_95)."""
    t = make_tenant(["math"])
    for k in range(LEARNERS):
        learner = f"known{k}"
        placement, practice, last = placed_then_practise(client, t, learner, True, 3 * TARGET,
                                                         **options)
        print(f"known skills, placement {options or 'default'}: {len(placement)} items + "
              f"{len(practice)} exercises to `complete` on the {TARGET}-skill course")
        assert len(placement) + len(practice) <= bound
        assert last["complete"] is True and "is complete: all" in last["reason"], last
        done = client.get(f"/v1/learners/{learner}/placement", headers=t.headers).json()
        assert done["status"] == "finished" and done["items_used"] == len(placement), done
        assert set(done["mastery"]) == set(MATH.courses[WHOLE].skills)
        assert min(done["mastery"].values()) >= 0.9, done["mastery"]
        after = client.get(f"/v1/learners/{learner}/next", headers=t.headers).json()
        assert after["complete"] is True and after["next"] == [], after


def test_a_learner_who_knows_nothing_is_placed_low_and_practises(
        client: TestClient, make_tenant: Callable[..., TenantKey]) -> None:
    """Every placement item wrong: the test ends early with every skill near 0, and practice
    starts at the course's first skill (no prerequisite), with a `next` at every answer."""
    t = make_tenant(["math"])
    roots = {s for s in MATH.courses[WHOLE].skills if not MATH.skills[s].requires}
    for k in range(LEARNERS):
        learner = f"new{k}"
        placement, practice, last = placed_then_practise(client, t, learner, False, 200)
        print(f"knows nothing: {len(placement)} placement items, then {len(practice)} "
              f"exercises answered right to `complete`")
        assert len(placement) <= BEGINNER_ITEMS_TODAY
        done = client.get(f"/v1/learners/{learner}/placement", headers=t.headers).json()
        assert done["status"] == "finished" \
            and max(done["mastery"].values()) <= 1 - DEFAULT_CONFIDENCE, done
        assert practice, "no practice after the placement"
        assert set(practice[0]["skills"]) <= roots, practice[0]
        assert not practice[0]["reason"].startswith("placement"), practice[0]
        # answered right from then on, the course is learnt to its end: every skill practised
        assert {s for e in practice for s in e["skills"]} == set(MATH.courses[WHOLE].skills)
        assert last["complete"] is True, last
