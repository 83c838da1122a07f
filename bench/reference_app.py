"""The load benchmark's reference: the API's answer endpoint with all of the engine taken out.

``POST /v1/learners/{learner_id}/answers`` validates its path and body exactly as the real
endpoint does (the same path id and pydantic model, ``api.schemas.PathId`` and ``AnswerIn``)
and returns a constant JSON body the size of a real answer's response. Everything else is the real
service's stack: FastAPI, uvicorn with the same options as ``tutor serve`` (uvloop and httptools
when installed, no access log), and an ``async def`` handler run on the event loop like the
real answer endpoint (whose one-statement answers never leave the loop). What separates the
two setups in ``bench/load.py`` is therefore the engine's own work per answer
(authentication, the database transaction, the state store, tracing, selection), not the
framework or the server, so "saturation >= 50% of the reference's" reads as "the engine
costs at most as much as the HTTP stack under it".

Run: ``.venv/bin/python bench/reference_app.py --port 8100 --workers 2`` (``--help``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import uvicorn
from fastapi import FastAPI, Response

from api.schemas import AnswerIn, PathId

# a real response to an answer (one skill's mastery and the next exercise), serialised once
RESPONSE = orjson.dumps({
    "learner_id": "load-00042", "event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "seq": 7,
    "correct": True, "mastery": {"math.counting": 0.912345},
    "next": {"item": "math.counting.02", "skills": ["math.counting"], "p_correct": 0.751234,
             "reason": "closest to the target success rate"},
    "duplicate": False,
})

app = FastAPI(title="Load benchmark reference", docs_url=None, redoc_url=None)


@app.post("/v1/learners/{learner_id}/answers")
async def post_answer(learner_id: PathId, body: AnswerIn) -> Response:
    """Validate like the real endpoint, then answer a constant."""
    return Response(RESPONSE, media_type="application/json")


@app.get("/readyz")
def readyz() -> dict[str, str]:
    """Same readiness probe path as the real service, so the benchmark starts both alike."""
    return {"status": "ready"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # the options of `tutor serve` (api/cli.py); an import string, as workers > 1 requires
    uvicorn.run("reference_app:app", app_dir=str(Path(__file__).resolve().parent),
                host=args.host, port=args.port, workers=args.workers, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
