"""The learner's journey through the API, on the bundled math pack and a tenant that
configured nothing (the engine's default policy on bkt-memory from the pack): a learner who
knows every skill of the 9-skill course reaches `complete`, and then `next` is null with a
reason, and the reviews that fall due later rotate over all the course's skills (issue 21: it
repeated one or two skills forever); courses whose prerequisites lie outside them offer those
prerequisites, marked, never an empty `next`; on both backends."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from content.packs import catalog_from_packs, parse_pack
from engine.selection.scope_prereqs import outside_prerequisites

from .conftest import TenantKey, new_event_id, pack_document

WHOLE = "math.course.whole-numbers"
#: answers the default policy took today (issue 21) for a learner who knows every skill of
#: WHOLE, without placement: no more than that
KNOWN_SKILLS_TODAY = 21
MATH = catalog_from_packs([parse_pack(pack_document("math"))])


def answer_right(client, t: TenantKey, learner: str, exercise: dict[str, Any],
                 at: datetime) -> dict[str, Any]:
    r = client.post(f"/v1/learners/{learner}/answers", headers=t.headers, json={
        "item_id": exercise["item"], "correct": True, "event_id": new_event_id(),
        "answered_at": at.isoformat()})
    assert r.status_code == 200, r.text
    return r.json()


def all_right(client, t: TenantKey, learner: str, first: dict[str, Any], start: datetime,
              most: int) -> list[dict[str, Any]]:
    """Answer every exercise right, a minute apart from ``start``, until ``next`` is null
    (at most ``most`` answers); the exercises answered, in order."""
    done, exercise, at = [], first, start
    for _ in range(most):
        at += timedelta(minutes=1)
        out = answer_right(client, t, learner, exercise, at)
        done.append(exercise)
        if out["next"] is None:
            assert out["complete"] is True, out
            assert "is complete: all" in out["reason"], out
            return done
        assert out["complete"] is False, out
        exercise = out["next"]
    raise AssertionError(f"not complete after {most} answers right: {done[-10:]}")


def test_a_learner_who_knows_every_skill_completes_and_reviews_rotate(client,
                                                                      make_tenant) -> None:
    t = make_tenant(["math"])
    skills = set(MATH.courses[WHOLE].skills)
    assert len(skills) == 9
    start = datetime.now(UTC) - timedelta(days=120)
    first = client.get("/v1/learners/kai/next", headers=t.headers,
                       params={"course": WHOLE}).json()["next"][0]
    learning = all_right(client, t, "kai", first, start, 60)
    print(f"known skills: {len(learning)} exercises to `complete` on the 9-skill course")
    assert len(learning) <= KNOWN_SKILLS_TODAY
    assert {s for e in learning for s in e["skills"]} == skills
    # asked at the time of the last answer (`at`), the course is done; months later (now)
    # every skill has faded: reviews, the most forgotten first, over all nine
    then = start + timedelta(minutes=len(learning), seconds=30)
    done = client.get("/v1/learners/kai/next", headers=t.headers,
                      params={"at": then.isoformat()}).json()
    assert done["complete"] is True and done["next"] == [], done
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    refused = client.get("/v1/learners/kai/next", headers=t.headers, params={"at": future})
    assert refused.status_code == 422 and "in the future" in refused.text, refused.text
    now = client.get("/v1/learners/kai/next", headers=t.headers, params={"n": 3}).json()
    assert now["complete"] is False and now["next"], now
    reviews = all_right(client, t, "kai", now["next"][0],
                        datetime.now(UTC) - timedelta(hours=2), 60)
    reviewed = Counter(s for e in reviews for s in e["skills"])
    assert set(reviewed) == skills, reviewed
    assert max(reviewed.values()) <= 4, reviewed  # never a loop on one or two skills
    assert reviews[0]["reason"].startswith("review"), reviews[0]
    # done again: nothing to do now, and the reason says when the next review falls due
    after = client.get("/v1/learners/kai/next", headers=t.headers).json()
    assert after["next"] == [] and after["complete"] is True, after
    assert "the next review falls due at" in after["reason"], after


@pytest.mark.parametrize("course", ["math.course.fractions", "math.course.times-tables"])
def test_a_course_locked_by_outside_prerequisites_offers_them(client, make_tenant,
                                                              course: str) -> None:
    t = make_tenant(["math"])
    outside = set(outside_prerequisites(MATH, course))
    in_course = set(MATH.courses[course].skills)
    got = client.get("/v1/learners/ned/next", headers=t.headers,
                     params={"course": course, "n": 3}).json()
    assert got["next"] and got["complete"] is False, got
    for exercise in got["next"]:
        assert exercise["outside_course"] is True and set(exercise["skills"]) <= outside
        assert exercise["reason"].startswith(f"outside course {course!r}")
    # answered right, the prerequisites lead into the course (and out again where a later
    # skill of it needs another: times-tables' division-remainders needs sub-within-100),
    # and the course to its end
    done = all_right(client, t, "ned", got["next"][0],
                     datetime.now(UTC) - timedelta(days=1), 120)
    for exercise in done:
        assert set(exercise["skills"]) <= (outside if exercise.get("outside_course")
                                           else in_course), exercise
    assert {s for e in done if not e.get("outside_course") for s in e["skills"]} == in_course


def test_a_tenant_on_target_success_and_bkt_gets_the_same_journey(client,
                                                                  make_tenant) -> None:
    """The journey wraps every policy: a course locked from outside offers the prerequisites,
    and a complete course says so (BKT has no memory: no review ever falls due)."""
    t = make_tenant(["math"], policy="target-success", tracer="bkt")
    got = client.get("/v1/learners/ola/next", headers=t.headers,
                     params={"course": "math.course.fractions"}).json()
    assert got["next"][0]["outside_course"] is True, got
    first = client.get("/v1/learners/ola/next", headers=t.headers,
                       params={"course": WHOLE}).json()["next"][0]
    all_right(client, t, "ola", first, datetime.now(UTC) - timedelta(days=1), 80)
    after = client.get("/v1/learners/ola/next", headers=t.headers).json()
    assert after["next"] == [] and after["complete"] is True
    assert "next review" not in after["reason"], after


def test_an_opted_out_learner_keeps_the_fixed_curriculum(client, make_tenant) -> None:
    t = make_tenant(["math"])
    r = client.put("/v1/learners/pia/consent", headers=t.headers,
                   json={"personalization": False})
    assert r.status_code == 200, r.text
    got = client.get("/v1/learners/pia/next", headers=t.headers,
                     params={"course": "math.course.fractions"}).json()
    assert got["complete"] is False and got["next"], got
    assert "outside_course" not in got["next"][0]  # no learner model: course order
    assert set(got["next"][0]["skills"]) <= set(MATH.courses["math.course.fractions"].skills)
