"""The one rule for ids of learners, items, skills, courses and packs.

An id is a name that apps, packs, logs and URLs pass around, so it must survive all of them
unchanged: 1 to 128 characters, all printable (no control or invisible characters, which also
keeps the state store's separator out of keys), and no whitespace at either end (``"ada "``
and ``"ada"`` would otherwise be two learners that nobody can tell apart).

Every id must also be addressable as one segment of a URL path (``/v1/learners/{id}/export``):
an id that was accepted in a body or an xAPI statement but cannot be named in a path could
never be read, exported or erased. So no ``/`` (it splits the segment, also percent-encoded:
servers decode ``%2F`` before routing), and not ``.`` or ``..`` (URLs resolve them as steps up
the path). Any other character travels percent-encoded. Nor U+FFFD, the replacement character:
it is what a lossy decoding leaves, so ``%FF``, ``%C3`` and ``%80`` would all name it.

Every entry point (content packs, request bodies and paths, xAPI statements, tenant names)
checks ids with :func:`id_problem`.
"""

from __future__ import annotations

MAX_ID_LENGTH = 128  #: longest id, in characters (the database columns are this wide)


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an id (a phrase to follow "id ..."), or None if valid."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters long, not {len(value)}"
    if not value.isprintable():
        return "must not contain control or invisible characters"
    if value != value.strip():
        return "must not start or end with whitespace"
    if "/" in value:
        return "must not contain '/' (an id must fit in one URL path segment)"
    if value in (".", ".."):
        return "must not be '.' or '..' (URLs resolve them as steps up the path)"
    if "\ufffd" in value:
        return ("must not contain U+FFFD, the replacement character (what text decoded "
                "lossily leaves)")
    return None


def check_id(value: str) -> str:
    """``value`` if it is a valid id, else a ValueError saying why (a pydantic validator)."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"id {problem} (got {value!r})")
    return value
