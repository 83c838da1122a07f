"""Content packs: a set of skills, items and courses in one JSON file (format in packs/README.md).

:func:`load_pack` / :func:`parse_pack` validate a pack completely, so whatever is wrong comes back
as one :class:`~engine.catalog.ContentError` naming the file, the JSON path and the fix, e.g.
``math.json: skills[3].bkt.guess: must be between 0 and 1, got 1.4``. Each pack is
self-contained (its items and prerequisites only name its own skills); :func:`catalog_from_packs`
merges packs into one :class:`~engine.catalog.Catalog`, refusing ids defined by two packs.

Validation is table-driven: each JSON object is a table of keys and checkers (functions of the
value and its JSON path that return the converted value or raise).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.catalog import BKTSkillParams, Catalog, ContentError, Course, Item, Skill, path_text
from engine.catalog import Path as PathType
from engine.ids import id_problem

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

    This module checks the JSON's shape (keys, types); what the content means (ids, references,
    parameter ranges, an acyclic prerequisite graph) is checked once, by the catalog's own
    types and :meth:`Catalog.build`, whose error paths become JSON paths here.
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


Check = Callable[[Any, str], Any]


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
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _number(value: Any, at: str) -> float:
    _expect(_is_number(value), at, "a number", value)
    return float(value)


def _string(value: Any, at: str) -> str:
    _expect(isinstance(value, str), at, "a string", value)
    return value


def _text(value: Any, at: str) -> str:
    _expect(isinstance(value, str) and value.strip() != "", at, "a non-empty string", value)
    return value


def _id(value: Any, at: str) -> str:
    _expect(isinstance(value, str), at, "a string id", value)
    problem = id_problem(value)
    if problem:
        raise _Invalid(at, f"{problem} (got {_show(value)})")
    return value


def _ids(value: Any, at: str) -> tuple[str, ...]:
    hint = f' (write [{_show(value)}] for one)' if isinstance(value, str) else ""
    _expect(isinstance(value, list), at, "an array of ids" + hint, value)
    out = tuple(_id(v, f"{at}[{i}]") for i, v in enumerate(value))
    for i, v in enumerate(out):
        if v in out[:i]:
            raise _Invalid(f"{at}[{i}]", f"{v!r} is listed twice")
    return out


def _answer(value: Any, at: str) -> str | list[str]:
    ok = isinstance(value, str) or (isinstance(value, list) and bool(value)
                                    and all(isinstance(v, str) for v in value))
    _expect(ok, at, "a string or a non-empty array of accepted answers (strings)", value)
    return value if isinstance(value, str) else list(value)


def _metadata(value: Any, at: str) -> dict[str, Any]:
    _expect(isinstance(value, dict), at, "an object", value)
    try:  # a deep copy that is sure to be plain JSON
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise _Invalid(at, f"must hold JSON data only ({e})") from None


def _array(of: Check) -> Check:
    def check(value: Any, at: str) -> tuple[Any, ...]:
        _expect(isinstance(value, list), at, "an array", value)
        return tuple(of(v, f"{at}[{i}]") for i, v in enumerate(value))
    return check


def _object(required: Mapping[str, Check], optional: Mapping[str, Check],
            after: Callable[[dict[str, Any], str], None] | None = None) -> Check:
    """An object with these keys; ``after`` checks the converted values together."""
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
        if after is not None:
            after(out, at)
        return out
    return check


def _item_keys(obj: dict[str, Any], at: str) -> None:
    if ("skill" in obj) == ("skills" in obj):
        raise _Invalid(at, "needs exactly one of 'skills' (an array of skill ids) or 'skill' "
                           "(one skill id)")
    if "skill" in obj:
        obj["skills"] = (obj.pop("skill"),)
    for key in _HOISTED:
        if key in obj and key in obj.get("metadata", {}):
            raise _Invalid(at, f"{key!r} is given both as a key and in 'metadata'; keep one")


_BKT = _object({k: _number for k in _BKT_FIELDS[:4]}, {"forget": _number})
_SKILL = _object({"id": _id, "name": _text},
                 {"description": _string, "requires": _ids, "bkt": _BKT})
_ITEM = _object({"id": _id}, {
    "skills": _ids, "skill": _id, "kind": _id,
    "difficulty": _number, "discrimination": _number, "guessing": _number,
    "guess": _number, "slip": _number,
    "prompt": _string, "answer": _answer, "metadata": _metadata,
}, _item_keys)
_COURSE = _object({"id": _id, "name": _text, "skills": _ids}, {})
_PACK = _object({"format": _string, "version": _number, "name": _id, "title": _text,
                 "skills": _array(_SKILL), "items": _array(_ITEM)},
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
    return Item(id=d["id"], skills=d["skills"], kind=d.get("kind", "exercise"),
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
