"""Content packs: a set of skills, items and courses in one JSON file (format in packs/README.md).

:func:`load_pack` / :func:`parse_pack` validate a pack completely, so whatever is wrong comes back
as one :class:`~engine.catalog.ContentError` naming the file, the JSON path and the fix, e.g.
``math.json: skills[3].bkt.guess: must be between 0 and 1, got 1.4``. Each pack is
self-contained (its items and prerequisites only name its own skills); :func:`catalog_from_packs`
merges packs into one :class:`~engine.catalog.Catalog`, refusing ids defined by two packs.

Validation is table-driven: each JSON object is a table of keys and checkers (functions of the
value and its JSON path that return the converted value or raise), each carrying the JSON
Schema of its rule: :func:`pack_json_schema` is assembled from the same tables, so what the
API documents for a pack is what the loader checks.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import operator
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.catalog import BKTSkillParams, Catalog, ContentError, Course, Item, Skill, path_text
from engine.catalog import Path as PathType
from engine.ids import ID_PATTERN, MAX_ID_LENGTH, id_problem
from engine.tracing.bkt_params import DEFAULT_CLASS

PACK_FORMAT = "tutor-content-pack"
PACK_VERSION = 1
BUNDLED_PACKS_DIR = Path(__file__).resolve().parent / "packs"

_BKT_FIELDS = ("prior", "learn", "guess", "slip", "forget")
_IRT_FIELDS = ("difficulty", "discrimination", "guessing", "guess", "slip")
_HOISTED = ("prompt", "answer")  # item keys kept in Item.metadata


@dataclass(frozen=True, slots=True)
class Pack:
    """One validated pack; ``source`` (the file it came from) is not part of its value."""

    name: str
    title: str
    skills: tuple[Skill, ...]
    items: tuple[Item, ...]
    courses: tuple[Course, ...] = ()
    language: str | None = None
    description: str = ""
    source: str = field(default="<pack>", compare=False)

    def to_document(self) -> dict[str, Any]:
        """The pack as a JSON-ready dict that :func:`parse_pack` reads back to an equal pack."""
        doc: dict[str, Any] = {"format": PACK_FORMAT, "version": PACK_VERSION,
                               "name": self.name, "title": self.title}
        if self.language is not None:
            doc["language"] = self.language
        if self.description:
            doc["description"] = self.description
        doc["skills"] = [_skill_document(s) for s in self.skills]
        doc["items"] = [_item_document(i) for i in self.items]
        if self.courses:
            doc["courses"] = [{"id": c.id, "name": c.name, "skills": list(c.skills)}
                              for c in self.courses]
        return doc


def load_pack(path: str | os.PathLike[str]) -> Pack:
    """Read and validate the pack in ``path`` (UTF-8 JSON)."""
    source = str(path)
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"),
                              object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ContentError(f"{source}: line {e.lineno} column {e.colno}",
                           f"not valid JSON: {e.msg}") from None
    except UnicodeDecodeError:
        raise ContentError(source, "not UTF-8 text") from None
    except _Invalid as e:
        raise ContentError(source, e.message) from None
    return parse_pack(document, source)


def parse_pack(document: Mapping[str, Any], source: str = "<pack>") -> Pack:
    """Validate a pack already parsed from JSON; errors name ``source`` and the JSON path.

    This module checks each value on its own (keys, types, ids, the parameters' ranges: what
    :func:`pack_json_schema` states); what holds between values (guess + slip, references,
    unique ids, an acyclic prerequisite graph) is checked by the catalog's own types and
    :meth:`Catalog.build`, whose error paths become JSON paths here.
    """
    try:
        _check_header(document)
        doc = _PACK(document, "")
    except _Invalid as e:
        raise ContentError(f"{source}: {e.at}" if e.at else source, e.message) from None
    try:
        skills = tuple(_at(("skills", i), _skill, d) for i, d in enumerate(doc["skills"]))
        items = tuple(_at(("items", i), _item, d) for i, d in enumerate(doc["items"]))
        courses = tuple(Course(d["id"], d["name"], d["skills"]) for d in doc.get("courses", ()))
        Catalog.build(skills, items, courses)
    except ContentError as e:
        raise ContentError(f"{source}: {_json_path(e, document)}", e.message) from None
    return Pack(name=doc["name"], title=doc["title"], skills=skills, items=items, courses=courses,
                language=doc.get("language"), description=doc.get("description", ""),
                source=source)


#: what a pack must also satisfy, beyond what JSON Schema can state (:func:`pack_json_schema`)
_BEYOND_THE_SCHEMA = (
    "Checked by the server, not stated by this schema (a pack breaking one is refused with "
    "422 `invalid_content` naming its JSON path): a skill's `bkt.guess` + `bkt.slip` is below "
    "1, and so is an item's `guess` + `slip` with each of its skills' (the item's own where it "
    "gives them); skill ids, item ids and course ids are each unique in the pack; every skill "
    "named in `requires`, an item's `skills`/`skill` or a course's `skills` is a skill of the "
    "pack, and a skill does not require itself; prerequisites form no cycle; no skill, item or "
    "course id is also defined by another of the tenant's packs (a pack of the same name is "
    "replaced); the tenant's content then holds at most `TUTOR_MAX_CONTENT_ITEMS` items; a "
    "model the tenant registered (if any) was fitted on every skill of that content; numbers "
    "fit a double (at most about 1.8e308 in size).")


def pack_json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12, no ``$ref``: it can be embedded anywhere, e.g. in an OpenAPI
    document) of a pack document, made from the loader's own declarations (``_PACK``), so it
    states exactly the rules :func:`parse_pack` checks on each value; a document it refuses,
    the loader refuses. The rules between values that JSON Schema cannot state are listed in
    its ``description``."""
    schema = copy.deepcopy(dict(_PACK.schema))
    return {"title": "Content pack",
            "description": "A content pack document (format in content/packs/README.md). "
                           + _BEYOND_THE_SCHEMA, **schema}


def _at(prefix: PathType, make: Callable[[dict[str, Any]], Any], d: dict[str, Any]) -> Any:
    """``make(d)``, its errors' paths put under ``prefix``."""
    try:
        return make(d)
    except ContentError as e:
        raise ContentError(e.where, e.message, (*prefix, *e.path)) from None


def _json_path(error: ContentError, document: Mapping[str, Any]) -> str:
    """Where ``error`` is, as a JSON path in ``document`` (an item's one ``skill`` key where
    it used that instead of ``skills``)."""
    path = error.path
    if not path:
        return error.where
    if (len(path) == 4 and path[0] == "items" and path[2] == "skills"
            and "skill" in document["items"][path[1]]):
        path = (*path[:2], "skill")
    return path_text(path)


def catalog_from_packs(packs: Iterable[Pack]) -> Catalog:
    """One catalog serving all ``packs``; an id defined by two packs is an error naming both."""
    packs = tuple(packs)
    by_name: dict[str, Pack] = {}
    owner: dict[tuple[str, str], Pack] = {}
    for pack in packs:
        if pack.name in by_name:
            raise ContentError(f"pack {pack.name!r}", f"given twice ({by_name[pack.name].source} "
                                                      f"and {pack.source})")
        by_name[pack.name] = pack
        for kind, things in (("skill", pack.skills), ("item", pack.items),
                             ("course", pack.courses)):
            for thing in things:
                first = owner.setdefault((kind, thing.id), pack)
                if first is not pack:
                    raise ContentError(
                        f"pack {pack.name!r}",
                        f"{kind} id {thing.id!r} is also defined by pack {first.name!r}; ids "
                        "must be unique across packs served together (prefix them per pack)")
    return Catalog.build([s for p in packs for s in p.skills], [i for p in packs for i in p.items],
                         [c for p in packs for c in p.courses])


def bundled_packs() -> dict[str, Path]:
    """The packs shipped in :data:`BUNDLED_PACKS_DIR`: pack name -> file."""
    out: dict[str, Path] = {}
    for path in sorted(BUNDLED_PACKS_DIR.glob("*.json")):
        name = json.loads(path.read_text(encoding="utf-8")).get("name")
        name = name if isinstance(name, str) else path.stem
        if name in out:
            raise ContentError(str(path), f"pack name {name!r} is also used by {out[name]}")
        out[name] = path
    return out


# ====================================================================== checkers
class _Invalid(Exception):
    """A validation failure at JSON path ``at``, turned into a ContentError naming the source."""

    def __init__(self, at: str, message: str) -> None:
        super().__init__(at, message)
        self.at = at
        self.message = message


@dataclass(frozen=True, slots=True)
class _Rule:
    """A checker of one JSON value together with the JSON Schema of the same rule.

    ``check(value, at)`` returns the converted value or raises :class:`_Invalid` (``at`` is the
    value's JSON path); ``schema`` states that rule for other tools. The loader runs the checks
    and :func:`pack_json_schema` assembles the schemas from the same declarations, so the
    document the API publishes cannot drift from what the loader accepts.
    """

    check: Callable[[Any, str], Any]
    schema: Mapping[str, Any]

    def __call__(self, value: Any, at: str) -> Any:
        return self.check(value, at)


#: how :func:`_show` names a JSON object or array too long to quote
_CONTAINERS: dict[type, str] = {dict: "an object", list: "an array"}


def _show(value: Any) -> str:
    """A value as the JSON the author wrote, shortened; long objects and arrays by their type."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return type(value).__name__
    if len(text) <= 60:
        return text
    return _CONTAINERS.get(type(value), text[:56] + " ...")


def _expect(ok: bool, at: str, what: str, value: Any) -> None:
    if not ok:
        raise _Invalid(at, f"must be {what}, got {_show(value)}")


def _is_number(value: Any) -> bool:
    """A JSON number a double holds (not a bool, not an integer literal beyond 1.8e308)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float: JSON allows it, the engine cannot
        return False


#: a bound of :func:`_number`: its keyword, its words, its JSON Schema keyword, its test
_BOUNDS: tuple[tuple[str, str, str, Callable[[float, float], bool]], ...] = (
    ("ge", "at least", "minimum", operator.ge), ("gt", "above", "exclusiveMinimum", operator.gt),
    ("le", "at most", "maximum", operator.le), ("lt", "below", "exclusiveMaximum", operator.lt))


def _number(*, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None) -> _Rule:
    """A number within the given bounds (none: any number a double holds); the bounds of the
    catalog's parameters (:mod:`engine.catalog`) are stated here, so a pack gets them checked
    with its JSON path and the schema states them."""
    given = {"ge": ge, "gt": gt, "le": le, "lt": lt}
    bounds = [(words, key, bound, holds) for name, words, key, holds in _BOUNDS
              if (bound := given[name]) is not None]
    if ge is not None and le is not None and len(bounds) == 2:
        words = f"between {ge:g} and {le:g}"
    else:
        words = " and ".join(f"{word} {bound:g}" for word, _, bound, _ in bounds)

    def check(value: Any, at: str) -> float:
        _expect(_is_number(value), at, "a number", value)
        number = float(value)
        if not all(holds(number, bound) for _, _, bound, holds in bounds):
            raise _Invalid(at, f"must be {words}, got {_show(value)}")
        return number
    return _Rule(check, {"type": "number"} | {key: bound for _, key, bound, _ in bounds})


def _const(expected: str | int) -> _Rule:
    """Exactly ``expected`` (a number equal to it for a number: ``1.0`` is ``1`` in JSON)."""
    def check(value: Any, at: str) -> Any:
        same_type = _is_number(value) if isinstance(expected, int) else isinstance(value, str)
        _expect(same_type and value == expected, at, json.dumps(expected), value)
        return value
    return _Rule(check, {"const": expected})


def _check_string(value: Any, at: str) -> str:
    _expect(isinstance(value, str), at, "a string", value)
    return value


_string = _Rule(_check_string, {"type": "string"})

#: the characters :meth:`str.strip` removes (those for which :meth:`str.isspace` holds), as a
#: regular-expression class body; tests/test_content.py derives it again from Python
_WHITESPACE = ("\\u0009-\\u000d\\u001c-\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028"
               "\\u2029\\u202f\\u205f\\u3000")


def _check_text(value: Any, at: str) -> str:
    _expect(isinstance(value, str) and value.strip() != "", at, "a non-empty string", value)
    return value


#: a string with a character other than whitespace (a JSON Schema pattern is not anchored)
_text = _Rule(_check_text, {"type": "string", "pattern": f"[^{_WHITESPACE}]"})


def _check_id(value: Any, at: str) -> str:
    _expect(isinstance(value, str), at, "a string id", value)
    problem = id_problem(value)
    if problem:
        raise _Invalid(at, f"{problem} (got {_show(value)})")
    return value


_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH,
              "pattern": ID_PATTERN}
_id = _Rule(_check_id, _ID_SCHEMA)


def _id_except(reserved: str, why: str) -> _Rule:
    """An id other than ``reserved`` (``why`` says what it names)."""
    def check(value: Any, at: str) -> str:
        if _check_id(value, at) == reserved:
            raise _Invalid(at, f"{reserved!r} is reserved ({why})")
        return value
    return _Rule(check, _ID_SCHEMA | {"not": {"const": reserved}})


def _ids(*, at_least_one: str | None = None) -> _Rule:
    """An array of distinct ids; ``at_least_one``: the message when it must not be empty."""
    def check(value: Any, at: str) -> tuple[str, ...]:
        hint = f' (write [{_show(value)}] for one)' if isinstance(value, str) else ""
        _expect(isinstance(value, list), at, "an array of ids" + hint, value)
        out = tuple(_check_id(v, f"{at}[{i}]") for i, v in enumerate(value))
        for i, v in enumerate(out):
            if v in out[:i]:
                raise _Invalid(f"{at}[{i}]", f"{v!r} is listed twice")
        if at_least_one is not None and not out:
            raise _Invalid(at, at_least_one)
        return out
    schema = {"type": "array", "items": _ID_SCHEMA, "uniqueItems": True}
    return _Rule(check, schema | ({"minItems": 1} if at_least_one is not None else {}))


def _check_answer(value: Any, at: str) -> str | list[str]:
    ok = isinstance(value, str) or (isinstance(value, list) and bool(value)
                                    and all(isinstance(v, str) for v in value))
    _expect(ok, at, "a string or a non-empty array of accepted answers (strings)", value)
    return value if isinstance(value, str) else list(value)


_answer = _Rule(_check_answer, {"anyOf": [
    {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]})


def _check_metadata(value: Any, at: str) -> dict[str, Any]:
    _expect(isinstance(value, dict), at, "an object", value)
    try:  # a deep copy that is sure to be plain JSON
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise _Invalid(at, f"must hold JSON data only ({e})") from None


_metadata = _Rule(_check_metadata, {"type": "object"})


def _array(of: _Rule) -> _Rule:
    def check(value: Any, at: str) -> tuple[Any, ...]:
        _expect(isinstance(value, list), at, "an array", value)
        return tuple(of(v, f"{at}[{i}]") for i, v in enumerate(value))
    return _Rule(check, {"type": "array", "items": of.schema})


def _object(required: Mapping[str, _Rule], optional: Mapping[str, _Rule],
            *together: _Rule) -> _Rule:
    """An object with these keys and no others; each of ``together`` then checks the object
    (its converted values) as a whole."""
    allowed = {**required, **optional}

    def check(value: Any, at: str) -> dict[str, Any]:
        _expect(isinstance(value, dict), at, "an object", value)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise _Invalid(at, f"unknown key {key!r}{hint}; allowed keys: "
                                   + ", ".join(allowed))
        for key in required:
            if key not in value:
                raise _Invalid(at, f"missing required key {key!r}")
        out = {k: allowed[k](v, f"{at}.{k}" if at else k) for k, v in value.items()}
        for rule in together:
            rule(out, at)
        return out
    schema: dict[str, Any] = {
        "type": "object", "properties": {k: rule.schema for k, rule in allowed.items()},
        "required": list(required), "additionalProperties": False}
    if together:
        schema["allOf"] = [rule.schema for rule in together]
    return _Rule(check, schema)


def _one_of(*keys: str, what: str) -> _Rule:
    """Exactly one of ``keys`` in an object (``what`` describes them)."""
    def check(obj: dict[str, Any], at: str) -> None:
        if sum(key in obj for key in keys) != 1:
            raise _Invalid(at, f"needs exactly one of {what}")
    return _Rule(check, {"oneOf": [{"required": [key]} for key in keys]})


def _not_also_in(key: str, inner: str) -> _Rule:
    """``key`` not given both in the object and in its object ``inner``."""
    def check(obj: dict[str, Any], at: str) -> None:
        if key in obj and key in obj.get(inner, {}):
            raise _Invalid(at, f"{key!r} is given both as a key and in {inner!r}; keep one")
    return _Rule(check, {"not": {"required": [key, inner],
                                 "properties": {inner: {"required": [key]}}}})


_PROBABILITY = _number(ge=0, le=1)
_BKT = _object({k: _PROBABILITY for k in _BKT_FIELDS[:4]}, {"forget": _PROBABILITY})
_SKILL = _object({"id": _id, "name": _text},
                 {"description": _string, "requires": _ids(), "bkt": _BKT})
_ITEM = _object(
    {"id": _id_except(DEFAULT_CLASS, "it names each skill's default guess/slip class")},
    {"skills": _ids(at_least_one="must list at least one skill"), "skill": _id, "kind": _id,
     "difficulty": _number(), "discrimination": _number(gt=0), "guessing": _number(ge=0, lt=1),
     "guess": _PROBABILITY, "slip": _PROBABILITY,
     "prompt": _string, "answer": _answer, "metadata": _metadata},
    _one_of("skills", "skill", what="'skills' (an array of skill ids) or 'skill' (one skill "
                                    "id)"),
    *(_not_also_in(key, "metadata") for key in _HOISTED))
_COURSE = _object({"id": _id, "name": _text, "skills": _ids()}, {})
_PACK = _object({"format": _const(PACK_FORMAT), "version": _const(PACK_VERSION), "name": _id,
                 "title": _text, "skills": _array(_SKILL), "items": _array(_ITEM)},
                {"language": _text, "description": _string, "courses": _array(_COURSE)})


def _check_header(document: Any) -> None:
    """Format and version first: a newer pack should say so, not fail on its new keys."""
    _expect(isinstance(document, dict), "", "a JSON object", document)
    if document.get("format") != PACK_FORMAT:
        got = _show(document["format"]) if "format" in document else "no 'format' key"
        raise _Invalid("format", f'must be "{PACK_FORMAT}", got {got} (is this a content pack?)')
    version = document.get("version")
    if not (_is_number(version) and version == PACK_VERSION):
        raise _Invalid("version", f"this engine reads version {PACK_VERSION} packs, got "
                                  f"{_show(version) if 'version' in document else 'none'}")


# ====================================================================== conversion
def _skill(d: dict[str, Any]) -> Skill:
    return Skill(id=d["id"], name=d["name"],
                 bkt=_at(("bkt",), lambda bkt: BKTSkillParams(**bkt), d["bkt"]) if "bkt" in d
                 else BKTSkillParams(),
                 requires=d.get("requires", ()), description=d.get("description", ""))


def _item(d: dict[str, Any]) -> Item:
    metadata = {k: d[k] for k in _HOISTED if k in d} | d.get("metadata", {})
    skills = d["skills"] if "skills" in d else (d["skill"],)
    return Item(id=d["id"], skills=skills, kind=d.get("kind", "exercise"),
                metadata=metadata, **{k: d.get(k) for k in _IRT_FIELDS})


def _skill_document(s: Skill) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": s.id, "name": s.name}
    if s.description:
        doc["description"] = s.description
    if s.requires:
        doc["requires"] = list(s.requires)
    doc["bkt"] = {k: getattr(s.bkt, k) for k in _BKT_FIELDS if k != "forget" or s.bkt.forget}
    return doc


def _item_document(item: Item) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": item.id, "skills": list(item.skills), "kind": item.kind}
    doc |= {k: getattr(item, k) for k in _IRT_FIELDS if getattr(item, k) is not None}
    metadata = json.loads(json.dumps(dict(item.metadata)))
    for key, check in (("prompt", _string), ("answer", _answer)):
        try:
            doc[key] = check(metadata[key], key)
            del metadata[key]
        except (KeyError, _Invalid):
            pass
    if metadata:
        doc["metadata"] = metadata
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Invalid("", f"not valid JSON for a pack: key {key!r} appears twice in one "
                               "object")
        out[key] = value
    return out


def _no_constant(name: str) -> None:
    raise _Invalid("", f"not valid JSON: {name} is not a number")
