"""/openapi.json tells the truth: every route's success shape and errors are documented (the
fuzz in test_bad_input.py checks real responses against them), every parameter is described
with an example, and a client generated from the document by a maintained generator
(openapi-python-client) works against a running server through its typed models."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings

from .conftest import Server, _sqlite_backend, make_tenant_on

SPEC = create_app(Settings(database_url="sqlite://")).openapi()
OPERATIONS = [(path, method, op) for path, ops in SPEC["paths"].items()
              for method, op in ops.items()]
ERROR_REF = "#/components/schemas/ErrorResponse"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS,
                         ids=[f"{m.upper()} {p}" for p, m, _ in OPERATIONS])
def test_every_operation_is_documented(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    successes = [code for code in responses if code.startswith("2")]
    assert len(successes) == 1, responses
    success = responses[successes[0]]
    if successes[0] != "204":  # a body, with its schema
        schema = success["content"]["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/"), (path, schema)
        assert set(schema) <= {"$ref", "title"}, schema
    for code, response in responses.items():
        assert response.get("description"), (code, response)
        if not code.startswith("2"):
            assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
    if path.startswith("/v1/"):
        assert "401" in responses and op["security"] == [{"apiKey": []}]
    if op.get("parameters") or "requestBody" in op:
        assert "422" in responses
    if "requestBody" in op:
        assert {"400", "413", "422"} <= set(responses)
    for param in op.get("parameters", []):
        assert param.get("description"), (path, param)
        assert param["schema"].get("examples"), (path, param)
    assert op.get("description"), (path, method)
    assert op["operationId"].isidentifier(), op["operationId"]


def test_the_document_names_no_schema_the_server_never_sends() -> None:
    schemas = SPEC["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    text = json.dumps(SPEC)
    unused = [name for name in schemas if f'"#/components/schemas/{name}"' not in text]
    assert not unused, unused
    # the answer's `next` and GET /next's list hold the same object
    answer = schemas["AnswerResponse"]["properties"]["next"]
    listed = schemas["NextResponse"]["properties"]["next"]
    assert {"$ref": "#/components/schemas/Exercise"} in answer["anyOf"]
    assert listed["items"] == {"$ref": "#/components/schemas/Exercise"}
    assert "/metrics" not in SPEC["paths"]


# ---------------------------------------------------------------------- a generated client
@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The package openapi-python-client generates from the document, imported."""
    where = tmp_path_factory.mktemp("client")
    (where / "openapi.json").write_text(json.dumps(SPEC))
    (where / "config.yaml").write_text("post_hooks: []\npackage_name_override: tutor_client\n")
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(where / "openapi.json"), "--meta", "none",
         "--output-path", str(where / "tutor_client"), "--config", str(where / "config.yaml")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # the generator warns about what it could not model: nothing may be missing
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(where))
    try:
        yield importlib.import_module("tutor_client")
    finally:
        sys.path.remove(str(where))
        for name in [m for m in sys.modules if m.split(".")[0] == "tutor_client"]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """``tutor serve`` on SQLite, on a free port, and a tenant with both bundled packs."""
    backend = _sqlite_backend(tmp_path_factory.mktemp("db"))
    server = Server(backend, 1, tmp_path_factory.mktemp("server")).start()
    try:
        yield server, make_tenant_on(backend.engine, ["math", "vocab"])
    finally:
        server.kill()
        backend.engine.dispose()


def test_a_generated_client_works_against_the_server(generated, running) -> None:
    from tutor_client.api.content import get_course, get_items, get_skills
    from tutor_client.api.learners import (
        get_history,
        get_next,
        get_progress,
        get_state,
        post_answer,
    )
    from tutor_client.models import (
        AnswerIn,
        AnswerResponse,
        ErrorResponse,
        Exercise,
        NextResponse,
        ProgressResponse,
        StateResponse,
    )

    server, t = running
    client = generated.AuthenticatedClient(base_url=server.url, token=t.key,
                                           raise_on_unexpected_status=True)
    course = "es.course.first-steps"
    first = get_next.sync("ada", client=client, course=course, n=2)
    assert isinstance(first, NextResponse), first
    assert first.course == course and len(first.next_) == 2
    exercise = first.next_[0]
    assert isinstance(exercise, Exercise) and exercise.item.startswith("es.")
    assert exercise.prompt and exercise.answer and exercise.kind

    item = exercise.item
    for i in range(5):
        out = post_answer.sync("ada", client=client, body=AnswerIn(
            item_id=item, correct=i % 2 == 0, event_id=uuid.uuid4()))
        assert isinstance(out, AnswerResponse), out
        assert out.seq == i + 1 and out.duplicate is False and out.course == course
        assert isinstance(out.next_, Exercise) and out.next_.item.startswith("es.")
        assert all(0 < m < 1 for m in out.mastery.additional_properties.values())
        item = out.next_.item
    again = get_next.sync("ada", client=client)
    assert isinstance(again, NextResponse) and again.next_[0].item == item  # the same choice

    state = get_state.sync("ada", client=client)
    assert isinstance(state, StateResponse) and state.answers == 5
    assert {s.skill_id for s in state.skills} >= {"es.greetings"}
    progress = get_progress.sync("ada", client=client)
    assert isinstance(progress, ProgressResponse) and progress.course == course
    assert progress.total == 6 and 0 <= progress.mastered <= 6 and progress.complete is False
    history = get_history.sync("ada", client=client, limit=2)
    assert [e.seq for e in history.events] == [1, 2] and history.next_after == 2

    skills = get_skills.sync(client=client, course=course)
    assert {s.id for s in skills.skills} == set(get_course.sync(course, client=client).skills)
    items = get_items.sync(client=client, skill="es.greetings", limit=5)
    assert len(items.items) == 5 and items.next_after == items.items[-1].id

    missing = get_state.sync("nobody", client=client)
    assert isinstance(missing, ErrorResponse) and missing.error.code == "not_found"
    wrong = get_next.sync("ada", client=client, course="no.such.course")
    assert isinstance(wrong, ErrorResponse) and wrong.error.code == "not_found"


def test_undeclared_methods_get_405_with_every_method_of_the_path(tmp_path: Path) -> None:
    """A method the document does not declare for a path is 405 with ``Allow`` naming the
    methods it does declare. The error handler used to drop Starlette's ``Allow``, which also
    named only the first of the path's routes (``/placement`` has two: GET and POST)."""
    from fastapi.testclient import TestClient

    backend = _sqlite_backend(tmp_path)
    t = make_tenant_on(backend.engine)
    app = create_app(backend.settings())
    headers = {"Authorization": f"Bearer {t.key}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for path, ops in SPEC["paths"].items():
            url = path.replace("{learner_id}", "ada").replace("{name}", "x") \
                .replace("{course_id}", "c").replace("{skill_id}", "s").replace("{item_id}", "i")
            declared = {m.upper() for m in ops}
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - declared:
                r = client.request(method, url, headers=headers)
                assert r.status_code == 405, (method, path, r.status_code, r.text)
                assert r.json()["error"]["code"] == "method_not_allowed"
                allowed = {m.strip() for m in r.headers["allow"].split(",")}
                assert allowed - {"HEAD"} == declared, (method, path, allowed)
    app.state.service.engine.dispose()
