"""Tenants are isolated: one tenant's key sees nothing of another's learners or content, and
requests without a valid key get 401."""

from __future__ import annotations

import pytest

from .conftest import error_of, full_history, new_event_id

ENDPOINTS = ["state", "history", "export"]


@pytest.fixture
def two_tenants(client, make_tenant):
    """Tenant A (mini pack) and tenant B (math pack), B with a learner ``bob`` who answered."""
    a = make_tenant(["mini"])
    b = make_tenant(["math"])
    for i, correct in enumerate([True, True, False]):
        r = client.post("/v1/learners/bob/answers", headers=b.headers,
                        json={"item_id": f"math.counting.0{i + 1}", "correct": correct,
                              "event_id": new_event_id()})
        assert r.status_code == 200, r.text
    return a, b


def test_learners_of_another_tenant_are_not_found(client, two_tenants) -> None:
    a, b = two_tenants
    before = full_history(client, "bob", b.headers)
    for endpoint in ENDPOINTS:
        err = error_of(client.get(f"/v1/learners/bob/{endpoint}", headers=a.headers), 404,
                       "not_found")
        assert "math" not in err["message"]
    error_of(client.get("/v1/learners/bob/history", params={"after": 1}, headers=a.headers),
             404)
    error_of(client.delete("/v1/learners/bob", headers=a.headers), 404, "not_found")
    # B's learner is untouched by A's delete
    assert full_history(client, "bob", b.headers) == before
    assert client.get("/v1/learners/bob/state", headers=b.headers).status_code == 200

    # to A, bob is a new learner: recommendations from A's own content and priors
    r = client.get("/v1/learners/bob/next", params={"n": 5}, headers=a.headers)
    assert r.status_code == 200, r.text
    assert all(c["item"].startswith("mini.") for c in r.json()["next"])
    error_of(client.get("/v1/learners/bob/state", headers=a.headers), 404)


def test_content_of_another_tenant_is_not_found(client, two_tenants) -> None:
    a, b = two_tenants
    assert client.get("/v1/content/items/math.counting.01", headers=b.headers).status_code == 200
    assert client.get("/v1/content/skills/math.counting", headers=b.headers).status_code == 200
    error_of(client.get("/v1/content/items/math.counting.01", headers=a.headers), 404,
             "not_found")
    error_of(client.get("/v1/content/skills/math.counting", headers=a.headers), 404,
             "not_found")
    error_of(client.get("/v1/content/items/mini.a.mid", headers=b.headers), 404)
    error_of(client.get("/v1/learners/x/next", params={"course": "math.course.fractions"},
                        headers=a.headers), 404)


def test_cannot_answer_another_tenants_items(client, two_tenants) -> None:
    a, b = two_tenants
    event_id = new_event_id()
    for learner in ("bob", "alice"):
        r = client.post(f"/v1/learners/{learner}/answers", headers=a.headers,
                        json={"item_id": "math.counting.01", "correct": True,
                              "event_id": event_id})
        error_of(r, 404, "not_found")
        error_of(client.get(f"/v1/learners/{learner}/state", headers=a.headers), 404)
    statement = {"id": event_id, "actor": {"account": {"name": "bob"}},
                 "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                 "object": {"id": "https://example.org/items/math.counting.01"},
                 "result": {"success": True}}
    error_of(client.post("/v1/xapi/statements", headers=a.headers, json=statement), 404)
    assert len(full_history(client, "bob", b.headers)) == 3


def test_same_learner_and_event_ids_in_two_tenants_are_independent(client, make_tenant) -> None:
    a = make_tenant(["mini"])
    b = make_tenant(["mini"])
    event_id = new_event_id()
    ra = client.post("/v1/learners/sam/answers", headers=a.headers,
                     json={"item_id": "mini.a.mid", "correct": True, "event_id": event_id})
    assert ra.status_code == 200 and ra.json()["duplicate"] is False
    # the same event id in another tenant is another event (not a conflict, not a replay)
    rb = client.post("/v1/learners/sam/answers", headers=b.headers,
                     json={"item_id": "mini.c.1", "correct": False, "event_id": event_id})
    assert rb.status_code == 200, rb.text
    assert rb.json()["duplicate"] is False and rb.json()["mastery"].keys() == {"mini.c"}
    ha = full_history(client, "sam", a.headers)
    hb = full_history(client, "sam", b.headers)
    assert [(e["item_id"], e["correct"]) for e in ha] == [("mini.a.mid", True)]
    assert [(e["item_id"], e["correct"]) for e in hb] == [("mini.c.1", False)]
    # a pack imported by B does not change A's content
    doc = {"format": "tutor-content-pack", "version": 1, "name": "extra", "title": "Extra",
           "skills": [{"id": "x.s", "name": "X"}], "items": [{"id": "x.i", "skill": "x.s"}]}
    r = client.post("/v1/content/packs", headers=b.headers, json=doc)
    assert r.status_code == 200, r.text
    assert client.get("/v1/content/items/x.i", headers=b.headers).status_code == 200
    error_of(client.get("/v1/content/items/x.i", headers=a.headers), 404)


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "bearer tk_x", "Basic dXNlcjpwYXNz", "Bearer tk_unknown",
    "tk_missing_scheme"])
def test_missing_or_invalid_key_is_401(client, make_tenant, authorization) -> None:
    t = make_tenant()
    assert client.post("/v1/learners/u/answers", headers=t.headers,
                       json={"item_id": "mini.a.mid", "correct": True,
                             "event_id": new_event_id()}).status_code == 200
    headers = {} if authorization is None else {"Authorization": authorization}
    requests = [
        ("GET", "/v1/learners/u/state", None), ("GET", "/v1/learners/u/history", None),
        ("GET", "/v1/learners/u/next", None), ("GET", "/v1/learners/u/export", None),
        ("DELETE", "/v1/learners/u", None), ("GET", "/v1/content/items/mini.a.mid", None),
        ("GET", "/v1/content/skills/mini.a", None),
        ("POST", "/v1/learners/u/answers",
         {"item_id": "mini.a.mid", "correct": True, "event_id": new_event_id()}),
        ("POST", "/v1/content/packs", {"format": "tutor-content-pack", "version": 1,
                                       "name": "p", "title": "t", "skills": [], "items": []}),
    ]
    for method, path, body in requests:
        r = client.request(method, path, headers=headers, json=body)
        error_of(r, 401, "unauthorized")
    # nothing changed
    assert len(full_history(client, "u", t.headers)) == 1


def test_openapi_declares_the_bearer_scheme_on_every_v1_operation(client) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API key from `tutor tenant create NAME`."}
    operations = [(path, op) for path, ops in schema["paths"].items() for op in ops.values()]
    v1 = [op for path, op in operations if path.startswith("/v1/")]
    assert len(v1) >= 9
    assert all(op["security"] == [{"apiKey": []}] for op in v1)
    assert all("security" not in op for path, op in operations if not path.startswith("/v1/"))
