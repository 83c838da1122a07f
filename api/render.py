"""How the API renders JSON: with orjson, for every route and every error."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


class JSON(Response):
    """JSON rendered by orjson (datetimes as ISO 8601)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
