"""xAPI ``answered`` statements as answers."""

from __future__ import annotations

import re
from collections.abc import Container, Sequence

from api.errors import ApiError
from api.schemas import MAX_RESPONSE_MS, XAPI_ANSWERED, XAPI_DURATION_PATTERN, XapiStatement
from api.service import Answer

ANSWERED = XAPI_ANSWERED
_DURATION = re.compile(XAPI_DURATION_PATTERN)  # the document's pattern: whole string (fullmatch)


def statement_answer(statement: XapiStatement, items: Container[str]) -> Answer:
    """An xAPI statement as an :class:`Answer`; the object IRI's last segment may be the item
    (when the whole IRI is not one of ``items``)."""
    if statement.verb.id != ANSWERED:
        raise ApiError(422, "unsupported_verb", f"only {ANSWERED} statements are accepted, "
                       f"got {statement.verb.id!r}")
    item_id = statement.object.id
    if item_id not in items:
        item_id = re.split(r"[/#]", item_id.rstrip("/"))[-1]
    response_ms = None
    if statement.result.duration is not None:
        match = _DURATION.fullmatch(statement.result.duration)
        if match is None:
            raise ApiError(422, "validation_error", "result.duration: expected an ISO 8601 "
                           f"duration like PT5.4S, got {statement.result.duration!r}")
        h, m, s = (float(g) if g else 0.0 for g in match.groups())
        response_ms = (h * 3600 + m * 60 + s) * 1000
        if response_ms > MAX_RESPONSE_MS:
            raise ApiError(422, "validation_error", "result.duration: longer than a day, got "
                           f"{statement.result.duration!r}")
    return Answer(item_id=item_id, correct=statement.result.success, event_id=str(statement.id),
                  answered_at=statement.timestamp, response_ms=response_ms)


def statement_answers(statements: Sequence[XapiStatement],
                      items: Container[str]) -> list[tuple[str, Answer]]:
    """Each statement as its learner and :class:`Answer`; an error names the statement by index
    and id (message and ``details``)."""
    answers = []
    for i, statement in enumerate(statements):
        try:
            answers.append((statement.actor.account.name, statement_answer(statement, items)))
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, f"statement {i} (id {statement.id}): "
                           f"{exc.message}", {"index": i, "id": str(statement.id)}) from None
    return answers
