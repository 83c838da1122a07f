"""Administration: tenants listed; API keys created, listed, revoked and rotated (a revoked key
stops working within the key cache period); content packs listed and removed (never one that
another pack needs); CORS for browser apps, off by default. Through the ``tutor`` commands (run
in process: a subprocess costs seconds of imports) and, for packs, the HTTP API."""

from __future__ import annotations

import copy
import json
import time
import uuid
from dataclasses import replace
from typing import Any

import pytest
from typer.testing import CliRunner

from tutor.cli import app as tutor_cli

from .conftest import MINI_PACK, TenantKey, error_of, full_history, new_event_id


@pytest.fixture
def tutor(backend, monkeypatch):  # type: ignore[no-untyped-def]
    """``tutor(*args)``: run a ``tutor`` command on the test's backend; its JSON output (for
    ``--json``) or its result."""
    for name, value in backend.env().items():
        if name.startswith("TUTOR_"):
            monkeypatch.setenv(name, value)

    def run(*args: str, ok: bool = True) -> Any:
        done = CliRunner().invoke(tutor_cli, list(args))
        if not ok:
            assert done.exit_code != 0, done.output
            return done
        assert done.exit_code == 0, (args, done.output)
        return json.loads(done.stdout) if "--json" in args else done

    return run


def other_pack() -> dict[str, Any]:
    """A second pack, with a skill, two items and a course."""
    doc = copy.deepcopy(MINI_PACK)
    doc["name"] = "solo"
    doc["skills"] = [{"id": "solo.s", "name": "Solo",
                      "bkt": {"prior": 0.3, "learn": 0.2, "guess": 0.2, "slip": 0.1}}]
    doc["items"] = [{"id": "solo.1", "skill": "solo.s"}, {"id": "solo.2", "skill": "solo.s"}]
    doc["courses"] = [{"id": "solo.course", "name": "Solo", "skills": ["solo.s"]}]
    return doc


def answer(client, t: TenantKey, learner: str, item: str, key: str | None = None):
    return client.post(f"/v1/learners/{learner}/answers",
                       headers={"Authorization": f"Bearer {key or t.key}"},
                       json={"item_id": item, "correct": True, "event_id": new_event_id()})


# ---------------------------------------------------------------------- tenants
def test_tenant_list(tutor, client, make_tenant) -> None:
    t = make_tenant()
    assert answer(client, t, "ana", "mini.a.mid").status_code == 200
    assert answer(client, t, "ben", "mini.c.1").status_code == 200
    listed = {x["name"]: x for x in tutor("tenant", "list", "--json")["tenants"]}
    mine = listed[t.tenant.name]
    assert mine["keys"] == 1 and mine["learners"] == 2 and mine["packs"] == ["mini"]
    assert mine["content_version"] == t.tenant.content_version
    assert mine["target_success"] == 0.75 and mine["created_at"]
    assert (mine["policy"], mine["tracer"]) == (None, None)  # the engine's defaults
    assert t.tenant.name in tutor("tenant", "list").stdout
    tutor("tenant", "defaults", t.tenant.name, "--policy", "spaced", "--tracer", "bkt-memory")
    listed = {x["name"]: x for x in tutor("tenant", "list", "--json")["tenants"]}
    assert (listed[t.tenant.name]["policy"], listed[t.tenant.name]["tracer"]) \
        == ("spaced", "bkt-memory")
    line = next(x for x in tutor("tenant", "list").stdout.splitlines()
                if x.startswith(t.tenant.name))
    assert "policy: spaced  tracer: bkt-memory" in line


def test_tenant_names_follow_the_id_rule(tutor) -> None:
    done = tutor("tenant", "create", "a/b", ok=False)
    assert "tenant name" in done.output


# ---------------------------------------------------------------------- API keys
def test_key_create_list_revoke(tutor, make_client, make_tenant) -> None:
    client = make_client(key_cache_seconds=0.3)
    t = make_tenant()
    name = t.tenant.name
    created = tutor("key", "create", "--tenant", name, "--json")
    second = created["api_key"]
    assert second.startswith("tk_") and created["prefix"] == second[:10]
    keys = tutor("key", "list", "--tenant", name, "--json")["keys"]
    assert [k["prefix"] for k in keys] == [t.key[:10], second[:10]]
    assert all("api_key" not in k and set(k) == {"id", "prefix", "created_at"} for k in keys)
    assert second not in tutor("key", "list", "--tenant", name).stdout
    # during a rotation both keys work
    assert answer(client, t, "kim", "mini.a.mid").status_code == 200
    assert answer(client, t, "kim", "mini.a.mid", key=second).status_code == 200
    # the old key revoked (by its prefix): refused once the cache period is over
    revoked = tutor("key", "revoke", t.key[:10], "--tenant", name, "--json")["revoked"]
    assert revoked["id"] == keys[0]["id"]
    time.sleep(0.4)
    error_of(answer(client, t, "kim", "mini.a.mid"), 401, "unauthorized")
    assert answer(client, t, "kim", "mini.a.mid", key=second).status_code == 200
    assert [k["id"] for k in tutor("key", "list", "--tenant", name, "--json")["keys"]] == [
        keys[1]["id"]]
    # by id, too; an unknown key is an error that says so
    tutor("key", "revoke", str(keys[1]["id"]), "--tenant", name)
    assert "no key" in tutor("key", "revoke", "tk_nothing", "--tenant", name, ok=False).output
    assert tutor("key", "list", "--tenant", name, "--json")["keys"] == []


def test_revoked_key_stops_working_within_the_cache_period(make_client, make_tenant,
                                                          backend) -> None:
    """A key in use (its lookup cached) stops working at most ``key_cache_seconds`` after it
    is revoked, in every worker."""
    from api.admin import revoke_key

    t = make_tenant()
    workers = [make_client(key_cache_seconds=0.5) for _ in range(2)]
    for client in workers:
        assert answer(client, t, "lou", "mini.a.mid").status_code == 200
    revoke_key(backend.engine, t.tenant.id, t.key)
    time.sleep(0.6)
    for client in workers:
        error_of(answer(client, t, "lou", "mini.a.mid"), 401, "unauthorized")


def test_key_rotate(tutor, make_client, make_tenant) -> None:
    client = make_client(key_cache_seconds=0.3)
    t = make_tenant()
    name = t.tenant.name
    rotated = tutor("key", "rotate", "--tenant", name, "--json")
    assert rotated["revoked"]["prefix"] == t.key[:10]
    new = rotated["api_key"]
    time.sleep(0.4)
    error_of(answer(client, t, "max", "mini.a.mid"), 401, "unauthorized")
    assert answer(client, t, "max", "mini.a.mid", key=new).status_code == 200
    # with several keys, the one to replace must be named
    tutor("key", "create", "--tenant", name)
    assert "name the one" in tutor("key", "rotate", "--tenant", name, ok=False).output
    again = tutor("key", "rotate", new, "--tenant", name, "--json")
    assert again["revoked"]["prefix"] == new[:10]
    assert len(tutor("key", "list", "--tenant", name, "--json")["keys"]) == 2


def test_key_commands_need_an_existing_tenant(tutor) -> None:
    done = tutor("key", "list", "--tenant", f"nobody-{uuid.uuid4().hex[:6]}", ok=False)
    assert "no tenant" in done.output


# ---------------------------------------------------------------------- content packs
def test_packs_listed_and_removed_over_http(client, make_tenant) -> None:
    t = make_tenant(["mini", other_pack()])
    r = client.get("/v1/content/packs", headers=t.headers)
    assert r.status_code == 200, r.text
    packs = {p["name"]: p for p in r.json()["packs"]}
    assert list(packs) == ["mini", "solo"]
    assert (packs["mini"]["skills"], packs["mini"]["items"], packs["mini"]["courses"]) == (3, 7, 3)
    assert packs["solo"]["title"] == "Mini" and packs["solo"]["imported_at"]
    # a learner answers items of a pack that is then removed
    for item in ("solo.1", "mini.a.mid", "solo.2"):
        assert answer(client, t, "nia", item).status_code == 200
    # the pack goes; its items and skills with it
    r = client.delete("/v1/content/packs/solo", headers=t.headers)
    assert r.status_code == 204, r.text
    assert [p["name"] for p in client.get("/v1/content/packs",
                                          headers=t.headers).json()["packs"]] == ["mini"]
    error_of(client.get("/v1/content/items/solo.1", headers=t.headers), 404)
    error_of(client.get("/v1/content/skills/solo.s", headers=t.headers), 404)
    error_of(client.delete("/v1/content/packs/solo", headers=t.headers), 404, "not_found")
    # the learner keeps working: answers kept, the state without the removed skill
    for endpoint in ("state", "history", "export", "next"):
        r = client.get(f"/v1/learners/nia/{endpoint}", headers=t.headers)
        assert r.status_code == 200, (endpoint, r.text)
    state = client.get("/v1/learners/nia/state", headers=t.headers).json()
    assert "solo.s" not in {s["skill_id"] for s in state["skills"]}
    assert len(full_history(client, "nia", t.headers)) == 3
    assert answer(client, t, "nia", "mini.a.easy").json()["seq"] == 4
    assert client.delete("/v1/content/packs/mini", headers=t.headers).status_code == 204
    assert client.get("/v1/content/packs", headers=t.headers).json() == {"packs": []}


def test_retries_of_acknowledged_answers_after_their_pack_was_removed(client,
                                                                         make_tenant) -> None:
    """A retry of an acknowledged answer whose item (or course) has been removed since got 404:
    the item was checked before the event id was looked up. An app retrying after a lost
    response must get the stored response, whatever changed in between; a new answer to a
    removed item is still refused."""
    t = make_tenant(["mini", other_pack()])
    first = {"item_id": "solo.1", "correct": True, "event_id": new_event_id(),
             "course": "solo.course"}
    done = client.post("/v1/learners/ivo/answers", headers=t.headers, json=first)
    assert done.status_code == 200, done.text
    statement = {"id": new_event_id(), "actor": {"account": {"homePage": "https://app.example",
                                                               "name": "ivo"}},
                 "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                 "object": {"id": "https://app.example/items/solo.2"},
                 "result": {"success": False}}
    batch = client.post("/v1/xapi/statements", headers=t.headers, json=[statement])
    assert batch.status_code == 200, batch.text
    assert client.delete("/v1/content/packs/solo", headers=t.headers).status_code == 204
    again = client.post("/v1/learners/ivo/answers", headers=t.headers, json=first)
    assert again.status_code == 200, again.text
    assert again.json() == {**done.json(), "duplicate": True}
    fresh = {"id": new_event_id(), "actor": statement["actor"], "verb": statement["verb"],
             "object": {"id": "https://app.example/items/mini.a.mid"},
             "result": {"success": True}}
    both = client.post("/v1/xapi/statements", headers=t.headers, json=[statement, fresh])
    assert both.status_code == 200, both.text
    results = both.json()["results"]
    assert results[0] == {**batch.json()["results"][0], "duplicate": True}
    assert results[1]["duplicate"] is False and results[1]["seq"] == 3
    error_of(client.post("/v1/learners/ivo/answers", headers=t.headers,
                         json={**first, "event_id": new_event_id()}), 404, "not_found")


def test_content_list_and_remove_commands(tutor, make_client, make_tenant) -> None:
    client = make_client(key_cache_seconds=0.2)
    t = make_tenant(["mini", other_pack()])
    name = t.tenant.name
    assert client.get("/v1/content/items/solo.1", headers=t.headers).status_code == 200
    listed = tutor("content", "list", "--tenant", name, "--json")["packs"]
    assert [p["name"] for p in listed] == ["mini", "solo"]
    assert "solo" in tutor("content", "list", "--tenant", name).stdout
    assert tutor("content", "remove", "solo", "--tenant", name, "--json") == {
        "tenant": name, "removed": "solo"}
    # a server sees the new content version within the key cache period (the cached tenant
    # holds its content version)
    time.sleep(0.3)
    error_of(client.get("/v1/content/items/solo.1", headers=t.headers), 404)
    assert client.get("/v1/content/items/mini.a.mid", headers=t.headers).status_code == 200
    assert "no pack" in tutor("content", "remove", "solo", "--tenant", name, ok=False).output


def test_a_pack_that_others_depend_on_is_not_removed(backend, make_tenant, monkeypatch) -> None:
    """Each pack is validated on its own today, so no pack can refer to another's skills;
    should packs ever build on each other, removing one that others need is refused, naming
    what needs it, and nothing changes."""
    from api import admin
    from content.packs import parse_pack
    from engine.catalog import ContentError, Skill

    t = make_tenant(["mini", other_pack()])
    mini, solo = (parse_pack(d) for d in (MINI_PACK, other_pack()))
    # solo as if its skill required mini.a and a course of it covered mini.c
    needy = replace(solo, skills=(replace(solo.skills[0], requires=("mini.a",)),),
                    courses=(replace(solo.courses[0], skills=("solo.s", "mini.c")),))
    assert isinstance(needy.skills[0], Skill)
    assert admin.dependents(mini, [needy]) == [
        "skill 'solo.s' of pack 'solo' requires 'mini.a'",
        "course 'solo.course' of pack 'solo' covers 'mini.c'"]
    assert admin.dependents(needy, [mini]) == []
    monkeypatch.setattr(admin, "load_packs", lambda engine, tenant_id: [mini, needy])
    with pytest.raises(ContentError, match=r"cannot be removed.*'solo\.s'.*requires 'mini\.a'"):
        admin.remove_pack(backend.engine, t.tenant.id, "mini")
    monkeypatch.undo()
    assert [p.name for p in admin.list_packs(backend.engine, t.tenant.id)] == ["mini", "solo"]


@pytest.mark.parametrize("command", [
    ["tenant", "list"], ["key", "create"], ["key", "list"], ["key", "revoke"],
    ["key", "rotate"], ["content", "list"], ["content", "remove"], ["db", "purge-erased"]])
def test_admin_commands_have_help_and_json(command: list[str]) -> None:
    done = CliRunner().invoke(tutor_cli, [*command, "--help"])
    assert done.exit_code == 0, done.output
    assert "--json" in done.output


# ---------------------------------------------------------------------- CORS
def test_cors_is_off_by_default(client, make_tenant) -> None:
    t = make_tenant()
    r = client.get("/v1/learners/ola/next", headers={**t.headers,
                                                      "Origin": "https://app.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/v1/learners/ola/next", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allows_the_configured_origins(make_client, make_tenant) -> None:
    client = make_client(cors_origins=("https://app.example",))
    t = make_tenant()
    preflight = client.options("/v1/learners/ola/answers", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    r = client.get("/v1/learners/ola/next", headers={**t.headers,
                                                      "Origin": "https://app.example"})
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    # errors carry the header too (a browser app must be able to read them)
    r = client.get("/v1/learners/ola/state", headers={**t.headers,
                                                       "Origin": "https://app.example"})
    assert r.status_code == 404 and r.headers["access-control-allow-origin"]
    # another origin gets nothing
    r = client.get("/v1/learners/ola/next", headers={**t.headers,
                                                      "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    refused = client.options("/v1/learners/ola/answers", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 400


def test_cors_origins_setting_from_the_environment(monkeypatch) -> None:
    from api.settings import Settings

    monkeypatch.setenv("TUTOR_CORS_ORIGINS", "https://a.example, https://b.example")
    assert Settings.from_env().cors_origins == ("https://a.example", "https://b.example")
    monkeypatch.delenv("TUTOR_CORS_ORIGINS")
    assert Settings.from_env().cors_origins == ()
