"""`GET /v1/learners/{id}/reviews`: due and upcoming reviews for app notifications, with a set
clock (`answered_at` in the past, `at` on the request), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.models import register_model
from api.tenants import load_catalog

from .conftest import error_of
from .test_answers import answer

DAYS_AGO = 40


def _memory_tenant(backend, make_tenant, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A tenant of the mini pack served by `bkt-memory` built from the pack's parameters."""
    t = make_tenant(["mini"])
    catalog = load_catalog(backend.engine, t.tenant.id)
    path = tmp_path / "bkt-memory.json"
    catalog.tracer("bkt-memory").save(path)
    register_model(backend.engine, t.tenant.id, path, catalog)
    return t


def test_reviews_fall_due_as_recall_fades(backend, make_tenant, make_client,
                                          tmp_path: Path) -> None:
    t = _memory_tenant(backend, make_tenant, tmp_path)
    client = make_client()
    start = datetime.now(UTC) - timedelta(days=DAYS_AGO)
    for k in range(8):  # skill a learned, one answer a minute, 40 days ago
        answer(client, t, "ron", "mini.a.easy" if k % 2 else "mini.a.mid", True,
               answered_at=(start + timedelta(minutes=k)).isoformat())
    url = "/v1/learners/ron/reviews"

    soon = client.get(url, headers=t.headers,
                      params={"at": (start + timedelta(minutes=10)).isoformat()})
    assert soon.status_code == 200, soon.text
    body = soon.json()
    assert body["memory"] is True and body["retention"] == 0.9
    (review,) = [r for r in body["reviews"] if r["skill_id"] == "mini.a"]
    assert not review["due_now"] and review["recall"] > 0.9
    due_at = datetime.fromisoformat(review["due_at"])
    assert due_at > start + timedelta(minutes=10)
    assert datetime.fromisoformat(review["last_practised_at"]) == start + timedelta(minutes=7)

    now = client.get(url, headers=t.headers).json()  # 40 days later: recall has faded
    (later,) = [r for r in now["reviews"] if r["skill_id"] == "mini.a"]
    assert later["due_now"] and later["recall"] <= 0.9 < review["recall"]
    assert now["reviews"][0]["due_now"]  # due ones first
    # a lower retention puts the same review later
    lax = client.get(url, headers=t.headers, params={"retention": 0.5}).json()
    (lax_a,) = [r for r in lax["reviews"] if r["skill_id"] == "mini.a"]
    assert datetime.fromisoformat(lax_a["due_at"]) > datetime.fromisoformat(later["due_at"])


def test_reviews_beyond_ten_years_have_no_due_time_but_a_reason(backend, make_tenant,
                                                                 make_client,
                                                                 tmp_path: Path) -> None:
    """Issue 20 #6: a skill recalled for decades had a due date centuries ahead (retention
    0.3: year 2731), and lower retentions answered 500 (a year past 9999); now the due time is
    given up to ten years after `at`, and null with a reason beyond, for every `at`."""
    t = _memory_tenant(backend, make_tenant, tmp_path)
    client = make_client()
    start = datetime.now(UTC) - timedelta(days=2000)
    days = (0, 0, 0, 0, 0, 0, 3, 10, 30, 100, 300, 1000, 1000, 1000)  # years of memory
    for k, day in enumerate(days):
        answer(client, t, "eve", "mini.a.easy" if k % 2 else "mini.a.mid", True,
               answered_at=(start + timedelta(days=day, minutes=k)).isoformat())
    last = start + timedelta(days=1000, minutes=len(days) - 1)
    url = "/v1/learners/eve/reviews"
    for at in (last + timedelta(days=1), datetime(2099, 12, 31, 23, 59, tzinfo=UTC)):
        for retention in (0.5, 0.99):
            response = client.get(url, headers=t.headers, params={
                "retention": retention, "at": at.isoformat()})
            assert response.status_code == 200, response.text
            for review in response.json()["reviews"]:
                if review["due_at"] is None:
                    assert review["reason"].startswith("not due within 3650 days")
                    assert not review["due_now"]
                else:
                    assert "reason" not in review
                    due_at = datetime.fromisoformat(review["due_at"])
                    assert due_at <= at + timedelta(days=3650)
    body = client.get(url, headers=t.headers, params={
        "retention": 0.5, "at": (last + timedelta(days=1)).isoformat()}).json()
    (a,) = [r for r in body["reviews"] if r["skill_id"] == "mini.a"]
    assert a["due_at"] is None and not a["due_now"] and a["recall"] > 0.99


@pytest.mark.parametrize("retention", ["0.3", "0.2", "0.1", "0.05", "1e-300", "0.4999",
                                       "0.991", "nan", "inf"])
def test_a_retention_outside_half_to_099_is_422(make_tenant, make_client,
                                                retention: str) -> None:
    """Below 0.5 a skill is due when more likely forgotten than recalled (relearning, not a
    review); the OpenAPI document states the range."""
    t = make_tenant(["mini"])
    client = make_client()
    answer(client, t, "kim", "mini.a.easy", True)
    error_of(client.get("/v1/learners/kim/reviews", headers=t.headers,
                        params={"retention": retention}), 422)
    (parameter,) = [p for p in client.get("/openapi.json").json()["paths"][
        "/v1/learners/{learner_id}/reviews"]["get"]["parameters"] if p["name"] == "retention"]
    assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (0.5, 0.99)


def test_reviews_at_a_moment_know_only_the_answers_given_by_then(backend, make_tenant,
                                                                  make_client,
                                                                  tmp_path: Path) -> None:
    """Issue 20 #10: `at` before the learner's answers listed the skills they learned later."""
    t = _memory_tenant(backend, make_tenant, tmp_path)
    client = make_client()
    start = datetime.now(UTC) - timedelta(days=DAYS_AGO)
    for k in range(8):
        answer(client, t, "ron", "mini.a.easy" if k % 2 else "mini.a.mid", True,
               answered_at=(start + timedelta(minutes=k)).isoformat())
    url = "/v1/learners/ron/reviews"
    before = client.get(url, headers=t.headers,
                        params={"at": (start - timedelta(days=1)).isoformat()})
    assert before.status_code == 200, before.text
    assert before.json()["reviews"] == []  # nothing learned yet
    midway = client.get(url, headers=t.headers,  # two answers by then: not learned yet
                        params={"at": (start + timedelta(minutes=1)).isoformat()}).json()
    assert midway["reviews"] == []
    after = client.get(url, headers=t.headers,
                       params={"at": (start + timedelta(minutes=10)).isoformat()}).json()
    assert [r["skill_id"] for r in after["reviews"]] == ["mini.a"]


def test_a_model_without_memory_schedules_nothing(make_tenant, make_client) -> None:
    t = make_tenant(["mini"], tracer="bkt")
    client = make_client()
    answer(client, t, "kim", "mini.a.easy", True)
    body = client.get("/v1/learners/kim/reviews", headers=t.headers).json()
    assert body["memory"] is False and body["reviews"] == []


@pytest.mark.parametrize("params", [{"retention": 1.5}, {"retention": 0}, {"at": "tomorrow"}])
def test_bad_parameters_are_422(make_tenant, make_client, params) -> None:  # type: ignore[no-untyped-def]
    t = make_tenant(["mini"])
    response = make_client().get("/v1/learners/kim/reviews", headers=t.headers, params=params)
    error_of(response, 422)


def test_unknown_course_is_404(make_tenant, make_client) -> None:
    t = make_tenant(["mini"])
    response = make_client().get("/v1/learners/kim/reviews", headers=t.headers,
                                 params={"course": "nope"})
    error_of(response, 404)
