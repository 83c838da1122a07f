"""Discovery and progress, on both backends: courses, skills (with prerequisites) and items
(paged by id, filtered by skill or course), and a learner's progress in a course."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from engine.selection import journey, make_policy
from engine.selection.registry import DEFAULT_POLICY

from .conftest import TenantKey, error_of, new_event_id, pack_document


def get(client: TestClient, t: TenantKey, url: str, **params: Any) -> Any:
    r = client.get(url, headers=t.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def every_page(client: TestClient, t: TenantKey, url: str, key: str,
               **params: Any) -> list[list[dict[str, Any]]]:
    """Each page of a list, following ``next_after``."""
    pages, after = [], None
    for _ in range(1000):
        body = get(client, t, url, **params, **({"after": after} if after else {}))
        assert set(body) == {key, "next_after"}, body
        pages.append(body[key])
        after = body["next_after"]
        if after is None:
            return pages
        assert after == body[key][-1]["id"]
    raise AssertionError("paging does not end")


def test_courses_are_listed_by_id_a_page_at_a_time(client, make_tenant) -> None:
    t = make_tenant(["math", "vocab"])
    docs = [pack_document(p) for p in ("math", "vocab")]
    want = {c["id"]: c for d in docs for c in d["courses"]}
    pages = every_page(client, t, "/v1/content/courses", "courses", limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    listed = [c for p in pages for c in p]
    assert [c["id"] for c in listed] == sorted(want)
    for course in listed:
        assert course["name"] == want[course["id"]]["name"]
        assert course["skills"] == want[course["id"]]["skills"]
        items = get(client, t, "/v1/content/items", course=course["id"], limit=1000)["items"]
        assert course["items"] == len(items) > 0
        assert get(client, t, f"/v1/content/courses/{course['id']}") == course
    error_of(client.get("/v1/content/courses/nope", headers=t.headers), 404, "not_found")


def test_skills_have_their_prerequisites_and_a_course_filter(client, make_tenant) -> None:
    t = make_tenant(["math", "vocab"])
    docs = {s["id"]: s for p in ("math", "vocab") for s in pack_document(p)["skills"]}
    pages = every_page(client, t, "/v1/content/skills", "skills", limit=10)
    listed = {s["id"]: s for p in pages for s in p}
    assert list(listed) == sorted(docs)
    for sid, skill in listed.items():
        assert skill["requires"] == docs[sid].get("requires", [])
        assert skill["description"] == docs[sid].get("description", "")
        assert skill == get(client, t, f"/v1/content/skills/{sid}")
    assert any(s["requires"] for s in listed.values())
    course = next(c for c in pack_document("math")["courses"])
    in_course = get(client, t, "/v1/content/skills", course=course["id"])
    assert [s["id"] for s in in_course["skills"]] == sorted(course["skills"])
    error_of(client.get("/v1/content/skills", headers=t.headers, params={"course": "nope"}),
             404)


def test_items_page_and_filter_by_skill_and_course(client, make_tenant) -> None:
    t = make_tenant(["mini"])
    items = {i["id"]: i for i in pack_document("mini")["items"]}
    pages = every_page(client, t, "/v1/content/items", "items", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i["id"] for p in pages for i in p] == sorted(items)
    one = pages[0][0]
    assert set(one) == {"id", "skills", "kind", "prompt", "answer", "metadata", "difficulty"}
    assert one == get(client, t, f"/v1/content/items/{one['id']}")

    def ids(**params: Any) -> list[str]:
        return [i["id"] for i in get(client, t, "/v1/content/items", **params)["items"]]

    assert ids(skill="mini.c") == ["mini.ac", "mini.c.1"]
    assert ids(course="mini.course.c") == ["mini.c.1"]  # mini.ac also practises mini.a
    assert ids(course="mini.course.a", skill="mini.a", limit=2) == ["mini.a.easy",
                                                                    "mini.a.hard"]
    assert ids(after="mini.b.2") == ["mini.c.1"]
    assert ids(after="zzz") == []
    for params in ({"skill": "nope"}, {"course": "nope"}):
        error_of(client.get("/v1/content/items", headers=t.headers, params=params), 404)
    for params in ({"limit": 0}, {"limit": 1001}, {"after": ""}):
        error_of(client.get("/v1/content/items", headers=t.headers, params=params), 422)


def test_the_items_content_comes_from_the_pack(client, make_tenant) -> None:
    t = make_tenant(["vocab"])
    doc = {i["id"]: i for i in pack_document("vocab")["items"]}
    choice = next(i for i in doc.values() if "choices" in i.get("metadata", {}))
    item = get(client, t, f"/v1/content/items/{choice['id']}")
    assert item["prompt"] == choice["prompt"] and item["answer"] == choice["answer"]
    assert item["metadata"] == choice["metadata"] and item["kind"] == choice["kind"]


def test_progress_counts_the_mastered_skills_of_a_course(client, make_tenant) -> None:
    t = make_tenant(["mini"])
    fresh = get(client, t, "/v1/learners/pat/progress", course="mini.course.a")
    # mastered at the threshold of the tenant's policy (the engine's default here)
    threshold = journey.levels(make_policy(DEFAULT_POLICY))[0]
    assert fresh == {"learner_id": "pat", "course": "mini.course.a", "mastered": 0, "total": 1,
                     "complete": False, "mastery_threshold": threshold,
                     "skills": [{"skill_id": "mini.a", "name": "Skill A", "mastery": 0.3,
                                 "mastered": False}]}
    whole = get(client, t, "/v1/learners/pat/progress")
    assert whole["course"] is None and whole["total"] == 3
    error_of(client.get("/v1/learners/pat/progress", headers=t.headers,
                        params={"course": "nope"}), 404)

    item = "mini.c.1"
    for _ in range(12):  # right every time: mini.c gets mastered
        r = client.post("/v1/learners/pat/answers", headers=t.headers, json={
            "item_id": item, "correct": True, "event_id": new_event_id(),
            "course": "mini.course.c"})
        assert r.status_code == 200, r.text
    done = get(client, t, "/v1/learners/pat/progress")  # the learner's current course
    assert done["course"] == "mini.course.c"
    assert (done["mastered"], done["total"], done["complete"]) == (1, 1, True)
    state = {s["skill_id"]: s["mastery"]
             for s in get(client, t, "/v1/learners/pat/state")["skills"]}
    assert done["skills"][0]["mastery"] == state["mini.c"] >= threshold
    other = get(client, t, "/v1/learners/pat/progress", course="mini.course.a")
    assert other["complete"] is False and other["mastered"] == 0
    # reading progress does not change the current course
    assert get(client, t, "/v1/learners/pat/next")["course"] == "mini.course.c"
