"""The one rule for ids of learners, items, skills, courses and packs.

An id is a name that apps, packs, logs and URLs pass around, so it must survive all of them
unchanged: 1 to 128 characters, none of them a control or invisible character (Unicode's
controls, format characters, surrogates, line and paragraph separators, and spaces other than
U+0020: :data:`FORBIDDEN`; this also keeps the state store's separator out of keys), and no
space at either end (``"ada "`` and ``"ada"`` would otherwise be two learners that nobody can
tell apart).

Every id must also be addressable as one segment of a URL path (``/v1/learners/{id}/export``):
an id that was accepted in a body or an xAPI statement but cannot be named in a path could
never be read, exported or erased. So no ``/`` (it splits the segment, also percent-encoded:
servers decode ``%2F`` before routing), and not ``.`` or ``..`` (URLs resolve them as steps up
the path). Any other character travels percent-encoded. Nor U+FFFD, the replacement character:
it is what a lossy decoding leaves, so ``%FF``, ``%C3`` and ``%80`` would all name it.

Every entry point (content packs, request bodies and paths, xAPI statements, tenant names)
checks ids with :func:`id_problem`, and the API states the same rule as :data:`ID_PATTERN`
(a regular expression that holds exactly for the valid ids, shorter than 129 characters).
"""

from __future__ import annotations

import re

MAX_ID_LENGTH = 128  #: longest id, in characters (the database columns are this wide)

#: the characters no id may contain, as a regular-expression class body: Unicode (14.0)
#: categories Cc, Cf, Cs, Zl, Zp and Zs but U+0020, then "/" and U+FFFD (the module's
#: docstring says why); tests/test_content.py derives it again from :mod:`unicodedata`
_SURROGATES = "\\ud800-\\udfff"  # category Cs
_FORBIDDEN_TEXT = ("\\u0000-\\u001f\\u002f\\u007f-\\u00a0\\u00ad\\u0600-\\u0605\\u061c\\u06dd"
                   "\\u070f\\u0890-\\u0891\\u08e2\\u1680\\u180e\\u2000-\\u200f\\u2028-\\u202f"
                   "\\u205f-\\u2064\\u2066-\\u206f\\u3000\\ufeff\\ufff9-\\ufffb\\ufffd"
                   "\U000110bd\U000110cd\U00013430-\U00013438\U0001bca0-\U0001bca3"
                   "\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f")
FORBIDDEN = _FORBIDDEN_TEXT + _SURROGATES
# The pattern is stated over text, Unicode scalar values, so without the surrogates: JSON
# strings are text, and validators built on Rust's regex (jsonschema-rs, which schemathesis
# checks its data with) refuse a class naming surrogates and drop the whole pattern. A lone
# surrogate (a "\ud800" escape in a JSON body) is still refused by id_problem.
_OK, _END = f"[^{_FORBIDDEN_TEXT}]", f"[^{_FORBIDDEN_TEXT} ]"
#: a valid id's characters, as a pattern without look-arounds (JSON Schema generators take
#: it): one character but "." ; two, not ".." ; or more, no space at either end. It holds
#: exactly for the valid ids made of Unicode scalar values (surrogates are not text)
ID_PATTERN = (f"^(?:[^{_FORBIDDEN_TEXT} .]|[^{_FORBIDDEN_TEXT} .]{_END}"
              f"|\\.[^{_FORBIDDEN_TEXT} .]|{_END}{_OK}+{_END})$")
_FORBIDDEN_CHARACTER = re.compile(f"[{FORBIDDEN}]")


def id_problem(value: str) -> str | None:
    """What is wrong with ``value`` as an id (a phrase to follow "id ..."), or None if valid."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters long, not {len(value)}"
    if "/" in value:
        return "must not contain '/' (an id must fit in one URL path segment)"
    if "\ufffd" in value:
        return ("must not contain U+FFFD, the replacement character (what text decoded "
                "lossily leaves)")
    if _FORBIDDEN_CHARACTER.search(value):
        return "must not contain control or invisible characters"
    if value != value.strip(" "):
        return "must not start or end with whitespace"
    if value in (".", ".."):
        return "must not be '.' or '..' (URLs resolve them as steps up the path)"
    return None


def check_id(value: str) -> str:
    """``value`` if it is a valid id, else a ValueError saying why (a pydantic validator)."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"id {problem} (got {value!r})")
    return value
