"""The one rule for ids of learners, items, skills, courses and packs.

An id is a name that apps, packs, logs and URLs pass around, so it must survive all of them
unchanged: 1 to 128 characters, all printable (no control or invisible characters, which also
keeps the state store's separator out of keys), and no whitespace at either end (``"ada "``
and ``"ada"`` would otherwise be two learners that nobody can tell apart). Every entry point
(content packs, request bodies and paths, xAPI statements) checks ids with :func:`id_problem`.
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
    return None


def check_id(value: str) -> str:
    """``value`` if it is a valid id, else a ValueError saying why (a pydantic validator)."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"id {problem} (got {value!r})")
    return value
