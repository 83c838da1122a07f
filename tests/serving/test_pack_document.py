"""``POST /v1/content/packs``: the OpenAPI document states the pack loader's own rules (the
schema is made from the loader's checkers: content.packs.pack_json_schema), and the loader
gets the body exactly as the client sent it.

schemathesis' positive_data_acceptance check failed here: the document stated only `format`,
`version` and `name`, so `{"format": "tutor-content-pack", "name": "000", "version": 1}` was
a valid body by it, and the server rightly refused it (no `title`, `skills`, `items`).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from api.app import create_app
from api.settings import Settings
from content.packs import pack_json_schema

from .conftest import MINI_PACK, error_of, pack_document

SPEC = create_app(Settings(database_url="sqlite://")).openapi()


def _resolved(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = SPEC["components"]["schemas"][name]
    return node


def _body_schema() -> dict[str, Any]:
    body = SPEC["paths"]["/v1/content/packs"]["post"]["requestBody"]
    return _resolved(body["content"]["application/json"]["schema"])


def test_the_document_states_the_loaders_schema_for_a_pack() -> None:
    schema = _body_schema()
    assert schema == pack_json_schema()
    validator = jsonschema_rs.validator_for(schema)  # it compiles where schemathesis checks
    assert validator.is_valid(MINI_PACK)
    assert not validator.is_valid({"format": "tutor-content-pack", "name": "000", "version": 1})


def test_a_body_the_document_refuses_the_server_refuses(client, make_tenant) -> None:
    t = make_tenant(packs=())
    body = {"format": "tutor-content-pack", "name": "000", "version": 1}
    assert not jsonschema_rs.validator_for(_body_schema()).is_valid(body)
    err = error_of(client.post("/v1/content/packs", headers=t.headers, json=body), 422,
                   "invalid_content")
    assert "missing required key 'title'" in err["message"]


def test_the_loader_reads_the_body_as_sent_not_as_pydantic_reads_it(client, make_tenant) -> None:
    """``"version": true`` was 1 to PackIn's field and the loader got PackIn's dump (version
    1), so a pack the loader and the document both refuse was imported (200)."""
    t = make_tenant(packs=())
    pack = pack_document("mini") | {"version": True}
    err = error_of(client.post("/v1/content/packs", headers=t.headers, json=pack), 422,
                   "invalid_content")
    assert "version 1 packs, got true" in err["message"]
    assert client.get("/v1/content/packs", headers=t.headers).json() == {"packs": []}
    # 1.0 is 1 to JSON, the document and the loader: imported
    r = client.post("/v1/content/packs", headers=t.headers, json=pack | {"version": 1.0})
    assert r.status_code == 200, r.text


def test_a_number_too_large_for_a_double_is_a_422_not_a_500(client, make_tenant) -> None:
    t = make_tenant(packs=())
    pack = pack_document("mini")
    pack["items"][0]["difficulty"] = 10**400
    err = error_of(client.post("/v1/content/packs", headers=t.headers, json=pack), 422,
                   "invalid_content")
    assert "items[0].difficulty: must be a number" in err["message"]
    assert client.get("/v1/content/packs", headers=t.headers).json() == {"packs": []}
