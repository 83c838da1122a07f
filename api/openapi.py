"""The app's OpenAPI schema documents the bearer scheme that every ``/v1`` route requires.

The routes read the API key from the request themselves (see :mod:`api.routes.deps`), so
FastAPI does not know of the scheme: :class:`TutorApi` adds it to the schema it builds.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

#: OpenAPI's name for the scheme every /v1 route requires
API_KEY = "apiKey"


class TutorApi(FastAPI):
    """FastAPI, with the bearer scheme in its schema."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        schema = super().openapi()  # built once, kept in self.openapi_schema
        schema.setdefault("components", {})["securitySchemes"] = {API_KEY: {
            "type": "http", "scheme": "bearer",
            "description": "An API key from `tutor tenant create NAME`."}}
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{API_KEY: []}]
        return schema
