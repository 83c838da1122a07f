"""xAPI statements, recorded as answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.openapi import documented
from api.render import JSON
from api.responses import StatementsResponse
from api.routes.deps import Auth, FairRoute, service
from api.schemas import Statements, XapiStatement
from api.threads import run
from api.xapi import statement_answers

router = APIRouter(prefix="/v1/xapi", tags=["xapi"], default_response_class=JSON,
                   route_class=FairRoute)


@router.post("/statements", responses=documented(
    StatementsResponse, "Every statement recorded (or already: `duplicate`), each with its "
    "answer's response.", 400, 404, 409))
async def post_statements(request: Request, body: XapiStatement | Statements,
                          t: Auth) -> Any:
    """Record xAPI ``answered`` statements (one or a list), each like an answer; a list is
    all or nothing: every statement is checked first, and an error names the first bad one
    (index and id)."""
    statements = body if isinstance(body, list) else [body]
    tutor = service(request)
    items = (await run(tutor.runtimes.get, t, tenant=t.id)).catalog.items
    answers = statement_answers(statements, items)
    response: StatementsResponse = {
        "ids": [str(s.id) for s in statements],
        "results": await tutor.answer_batch_async(t, answers, what="statement")}
    return response
