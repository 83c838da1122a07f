"""The app's OpenAPI document: what every route returns, errors included, and the bearer
scheme that every ``/v1`` route requires.

Routes return plain JSON (no response model, which would validate every response again), so
each names its success shape and the errors it raises in ``responses=`` (:func:`documented`),
which FastAPI documents without checking. :class:`TutorApi` adds what holds for many routes
at once: the API key (the routes read it from the request themselves, see
:mod:`api.routes.deps`, so FastAPI does not know of the scheme) and its 401; 400 for a path,
a query string or a body that does not decode (:class:`api.middleware.PathEncoding`; FastAPI);
413 for a body too large (:class:`api.middleware.BodyLimit`); 503 for a database that cannot be
reached (:mod:`api.errors`); and the one error shape for 422 instead of FastAPI's
``HTTPValidationError``, which the server never sends (:mod:`api.errors`).

A body too large to parse on the event loop without holding up every tenant's requests (a
content pack of thousands of items) is read by its route in a worker thread instead
(:func:`parse_body`); :func:`body_of` documents it as FastAPI would have.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, TypeAdapter, ValidationError

from api.responses import ErrorResponse

#: OpenAPI's name for the scheme every /v1 route requires
API_KEY = "apiKey"
#: what each error status means, in the documentation of every route that returns it
ERRORS: dict[int, str] = {
    400: "Bad request: the message says what (e.g. a body that is not JSON in UTF-8, a path "
         "or query string whose percent-encoding is not UTF-8).",
    401: "No API key, or an unknown one: send `Authorization: Bearer <api key>`.",
    404: "Not found: the learner, item, skill, course or pack named is not this tenant's (the "
         "message says which).",
    409: "Conflict: e.g. an `event_id` already used for a different answer.",
    413: "The body is larger than the server accepts (`TUTOR_MAX_BODY_BYTES`; "
         "`TUTOR_MAX_PACK_BYTES` for content).",
    422: "The request does not validate: `details` lists each problem (`loc`, `message`, "
         "`type`).",
    503: "A dependency (the database or the state store) cannot be reached now: nothing was "
         "done; retry.",
}
_ERROR_SCHEMA = "ErrorResponse"
_Model = TypeVar("_Model", bound=BaseModel)
#: the models of the bodies routes read themselves (body_of), for the document's components
_READ_BY_ROUTES: dict[str, type[BaseModel]] = {}


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra=`` for a route that reads its body itself (:func:`parse_body`): the
    body is a ``model``, as if the route had taken it as a parameter."""
    _READ_BY_ROUTES[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def parse_body(model: type[_Model], raw: bytes) -> _Model:
    """``raw`` as a ``model``, with the errors FastAPI gives for a body parameter (422)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:  # (UnicodeDecodeError too)
        raise RequestValidationError([{
            "type": "json_invalid", "loc": ("body", getattr(exc, "pos", 0)),
            "msg": "JSON decode error", "input": {},
            "ctx": {"error": getattr(exc, "msg", str(exc))}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)],
            body=data) from None


def documented(model: Any, description: str, *errors: int,
               status: int = 200) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: ``model`` (documented, never validated) for ``status``,
    and the one error shape for ``errors``, the statuses the route itself returns (those
    :class:`TutorApi` adds need not be named)."""
    success: dict[str, Any] = {"description": description}
    if model is not None:
        success["model"] = model
    return {status: success,
            **{code: {"model": ErrorResponse, "description": ERRORS[code]} for code in errors}}


class TutorApi(FastAPI):
    """FastAPI, with the bearer scheme in its schema."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()  # built once, kept in self.openapi_schema
        components = schema.setdefault("components", {})
        components["securitySchemes"] = {API_KEY: {
            "type": "http", "scheme": "bearer",
            "description": "An API key from `tutor tenant create NAME`."}}
        schemas = components.setdefault("schemas", {})
        for name, model in _READ_BY_ROUTES.items():
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(found.pop("$defs", {}), **{name: found})
        if _ERROR_SCHEMA not in schemas:  # no route names an error itself: added here
            error = TypeAdapter(ErrorResponse).json_schema(
                ref_template="#/components/schemas/{model}")
            schemas.update(error.pop("$defs", {}), **{_ERROR_SCHEMA: error})
        # each operation's id is its route's name (`post_answer`): what generated clients call
        # their functions (FastAPI's ids also spell out the path and method)
        names = {(route.path, method.lower()): route.name for route in self.routes
                 if isinstance(route, APIRoute) for method in route.methods or ()}
        repeated = {name for name, n in Counter(names.values()).items() if n > 1}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                if names.get((path, method), "") not in repeated | {""}:
                    operation["operationId"] = names[(path, method)]
                responses = operation.setdefault("responses", {})
                implied = [422] if "422" in responses else []  # FastAPI's: replaced
                if path.startswith("/v1/"):  # (every /v1 route reads the database)
                    operation["security"] = [{API_KEY: []}]
                    implied += [401, 503]
                body = "requestBody" in operation
                if body or any(p.get("in") in ("path", "query")
                               for p in operation.get("parameters", ())):
                    implied.append(400)
                if body:
                    implied.append(413)
                for code in implied:
                    responses[str(code)] = {"description": ERRORS[code], "content": {
                        "application/json": {"schema": {
                            "$ref": f"#/components/schemas/{_ERROR_SCHEMA}"}}}}
                operation["responses"] = dict(sorted(responses.items()))
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return schema
