"""How the API renders JSON: with orjson, for every route and every error."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse


class JSON(JSONResponse):
    """JSON rendered by orjson (datetimes as ISO 8601). A ``JSONResponse``, so that the OpenAPI
    document gives a route's response the schema the route documents, not a string's."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
