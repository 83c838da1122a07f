"""The rules /openapi.json states are usable by the validators and generators that read it.

A ``pattern`` that a JSON Schema validator cannot compile is not a rule for it: jsonschema-rs
(Rust's regex engine, the validator schemathesis checks its generated data with) refuses one
that names surrogate code points, so schemathesis dropped the id pattern and sent ids the
server rightly refuses (21 operations reported as "schema-valid request rejected"). JSON
strings are text, sequences of Unicode scalar values, so the pattern is stated over those;
a lone surrogate smuggled in through a ``\\ud800`` escape is still refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from api.app import create_app
from api.settings import Settings
from engine.ids import ID_PATTERN, id_problem

from .conftest import error_of

SPEC = create_app(Settings(database_url="sqlite://")).openapi()


def _patterns(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """Every (location, pattern) in the document."""
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield where, node["pattern"]
        for key, value in node.items():
            yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for k, value in enumerate(node):
            yield from _patterns(value, f"{where}/{k}")


PATTERNS = sorted(set(_patterns(SPEC)))


def test_the_document_states_patterns() -> None:
    assert any(p == ID_PATTERN for _, p in PATTERNS)  # the id rule is among them


@pytest.mark.parametrize(("where", "pattern"), PATTERNS, ids=[w for w, _ in PATTERNS])
def test_every_pattern_compiles_in_a_rust_regex_validator(where: str, pattern: str) -> None:
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    assert validator.is_valid("x") == bool(re.search(pattern, "x")), where


@pytest.mark.parametrize("value", ["ada", "a b", "é", "x" * 128, ".a", "a.", "...",
                                   " a", "a ", ".", "..", "a/b", "a\x00", "a\u200b", "\ufffd",
                                   "\U000e0001", "a\u2028b"])
def test_the_validator_reads_the_id_pattern_as_the_rule(value: str) -> None:
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": ID_PATTERN})
    assert validator.is_valid(value) == (id_problem(value) is None), repr(value)


def test_a_lone_surrogate_in_an_id_is_still_refused(client, make_tenant) -> None:
    """The pattern leaves surrogates out: they are not text, and a body naming one is refused
    (pydantic's JSON parser reads a lone surrogate as invalid Unicode; id_problem too)."""
    t = make_tenant()
    body = b'{"item_id": "mini.a.easy\\ud800", "correct": true}'
    r = client.post("/v1/learners/ada/answers", content=body,
                    headers={**t.headers, "Content-Type": "application/json"})
    err = error_of(r, 422, "validation_error")
    assert "item_id" in err["message"], err
    assert id_problem("a\ud800") is not None


def _schema(name: str) -> dict[str, Any]:
    return SPEC["components"]["schemas"][name]  # type: ignore[no-any-return]


def test_the_xapi_verb_is_stated_as_the_one_accepted(client, make_tenant) -> None:
    """Only ``answered`` statements are taken (422 ``unsupported_verb`` otherwise): the
    document says so (schemathesis' valid-looking statements with any verb were refused)."""
    verb = _schema("XapiVerb")["properties"]["id"]
    assert verb["const"] == "http://adlnet.gov/expapi/verbs/answered"
    t = make_tenant()
    statement = {"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                 "actor": {"account": {"name": "ada"}}, "verb": {"id": "urn:other"},
                 "object": {"id": "mini.a.easy"}, "result": {"success": True}}
    error_of(client.post("/v1/xapi/statements", headers=t.headers, json=[statement]), 422,
             "unsupported_verb")


@pytest.mark.parametrize(("duration", "valid"), [
    ("PT5.4S", True), ("PT1H2M3S", True), ("PT2M", True), ("PT", True), ("PT0.5H", True),
    ("5.4", False), ("P1D", False), ("PT5,4S", False), ("pt5s", False), ("PT5S ", False),
    ("PT1H.5S", False), ("", False), ("PT5S\n", False)])
def test_the_xapi_duration_pattern_is_the_one_read(client, make_tenant, duration: str,
                                                   valid: bool) -> None:
    """``result.duration`` is an ISO 8601 duration of hours, minutes and seconds (the server
    refuses any other, 422): the document states the pattern it reads."""
    pattern = _schema("XapiResult")["properties"]["duration"]["anyOf"][0]["pattern"]
    assert bool(re.fullmatch(pattern, duration)) == valid
    assert jsonschema_rs.validator_for({"type": "string", "pattern": pattern}) \
        .is_valid(duration) == valid
    t = make_tenant()
    statement = {"id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                 "actor": {"account": {"name": "ada"}},
                 "verb": {"id": "http://adlnet.gov/expapi/verbs/answered"},
                 "object": {"id": "mini.a.easy"},
                 "result": {"success": True, "duration": duration}}
    r = client.post("/v1/xapi/statements", headers=t.headers, json=[statement])
    assert (r.status_code == 200) == valid, r.text
