"""Schemathesis hooks of ``bench/schemathesis_all.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

One hook, ``filter_failure``, accounts for the failures of a check that assumes more than
JSON Schema can say. Each rule below is narrow (one check, one operation, one status, one error
message) and every failure it drops is written to ``$TUTOR_ST_DROPPED`` (JSON lines), so the
runner reports how many it dropped and why: nothing is hidden, and a failure of any other kind,
on any other operation, or with any other message still fails the run. bench/README.md says
why each rule is a false positive.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import schemathesis


@dataclass(frozen=True)
class Inexpressible:
    """A rule the server enforces that no JSON Schema keyword states."""

    name: str
    operation: str  # "METHOD /path"
    status: int
    message: re.Pattern[str]  # the error's message, from the one error shape


RULES = [
    # "uniqueItems" compares whole objects: "names unique in the list" is not expressible
    Inexpressible("unique arm names", "POST /v1/experiments", 422,
                  re.compile(r"^body\.arms: Value error, arm .* is named twice$")),
    # one field compared with another and with the clock: no keyword compares two values, and
    # a schema is static while "now" moves (a generated stop of "now" is already past)
    Inexpressible("a stop later than the start and than now", "POST /v1/experiments", 422,
                  re.compile(r"^stops_at must be later than starts_at and than now$")),
    # a pack's ids refer to each other, and to the tenant's other packs; values of different
    # entities are compared (content.packs.pack_json_schema's description lists these)
    Inexpressible("a pack's references, unique ids and parameters taken together",
                  "POST /v1/content/packs", 422, re.compile(
                      r"^pack '[^']*': (?:skills|items|courses)\[\d+\]"
                      r"(?:\.(?:requires|skills|skill|id|bkt))?(?:\[\d+\])?: "
                      r"(?:unknown skill |duplicate (?:skill|item|course) id |"
                      r"guess \+ slip must be below 1|skill '.*' cannot require itself)")),
    Inexpressible("ids defined by another of the tenant's packs, its model, its item limit",
                  "POST /v1/content/packs", 422, re.compile(
                      r"^pack '[^']*': (?:(?:skill|item|course) id '.*' is also defined by pack"
                      r"|the registered model was not fitted on |the tenant's content would "
                      r"hold \d+ items)")),
    Inexpressible("prerequisite cycles", "POST /v1/content/packs", 422,
                  re.compile(r"^pack '[^']*': prerequisites: cycle ")),
    # two fields of one body taken together (issue 21): the policy's need for memory is a
    # property of the policy class, the tracer's memory one of the tracer class; the document
    # states each field's values, not which pairs of them go together
    Inexpressible("a policy that needs memory with a tracer without", "PUT /v1/tenant/defaults",
                  422, re.compile(r"^the default policy: policy '[^']*' needs a tracer with "
                                  r"memory ")),
    Inexpressible("a theta test takes no confidence", "POST /v1/learners/{learner_id}/placement",
                  422, re.compile(r"^body: Value error, confidence is the stop of a `skills` "
                                  r"test: a `theta` test has none")),
    # a sum of hours, minutes and seconds compared with a day: no pattern states it
    Inexpressible("a response time of at most a day", "POST /v1/xapi/statements", 422,
                  re.compile(r"^statement \d+ \(id [^)]*\): result\.duration: longer than a "
                             r"day, got ")),
]


def _error_message(response: Any) -> str | None:
    try:
        body = json.loads(response.content)
    except (ValueError, TypeError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


def matching_rule(code: str, operation: str, status: int, message: str | None) -> str | None:
    """The name of the rule that accounts for this failure, or None (it stays a failure)."""
    if code != "ST202" or message is None:  # only "schema-valid request rejected"
        return None
    for rule in RULES:
        if rule.operation == operation and rule.status == status \
                and rule.message.match(message):
            return rule.name
    return None


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    operation = f"{case.method.upper()} {case.operation.path}"
    rule = matching_rule(getattr(failure, "code", ""), operation, response.status_code,
                         _error_message(response))
    if rule is None:
        return True
    path = os.environ.get("TUTOR_ST_DROPPED")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"rule": rule, "operation": operation,
                                  "status": response.status_code,
                                  "message": _error_message(response)}) + "\n")
    return False
