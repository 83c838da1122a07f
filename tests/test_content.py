"""Content packs and the catalog: bundled packs load, round trips, one test per validation error,
BKT parameter classes and prerequisite order."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from content.packs import (
    BUNDLED_PACKS_DIR,
    Pack,
    bundled_packs,
    catalog_from_packs,
    load_pack,
    parse_pack,
)
from engine.catalog import BKTSkillParams, Catalog, ContentError, Item, Skill

BUNDLED = bundled_packs()


def _doc() -> dict[str, Any]:
    """A small valid pack: a <- b <- c, items on each, one multi-skill item, one course."""
    return {
        "format": "tutor-content-pack", "version": 1, "name": "mini", "title": "Mini",
        "language": "en", "description": "test pack",
        "skills": [
            {"id": "a", "name": "A"},
            {"id": "b", "name": "B", "requires": ["a"],
             "bkt": {"prior": 0.1, "learn": 0.2, "guess": 0.25, "slip": 0.05, "forget": 0.01}},
            {"id": "c", "name": "C", "requires": ["b"], "description": "third"},
        ],
        "items": [
            {"id": "i1", "skill": "a", "prompt": "1 + 1 = ?", "answer": "2", "difficulty": -1.5},
            {"id": "i2", "skills": ["a", "b"], "kind": "multiple-choice", "guess": 0.3,
             "prompt": "?", "answer": ["x", "X"], "metadata": {"choices": ["x", "y"]}},
            {"id": "i3", "skills": ["c"], "discrimination": 1.2, "guessing": 0.1, "slip": 0.2},
        ],
        "courses": [{"id": "course", "name": "Course", "skills": ["a", "b", "c"]}],
    }


def _error(doc: dict[str, Any], source: str = "mini.json") -> str:
    with pytest.raises(ContentError) as info:
        parse_pack(doc, source)
    return str(info.value)


def _mutated(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    doc = copy.deepcopy(_doc())
    change(doc)
    return doc


# ============================================================================ bundled packs
def test_bundled_packs_are_found() -> None:
    assert set(BUNDLED) == {"math-basics", "spanish-vocab-a1"}
    assert all(p.parent == BUNDLED_PACKS_DIR for p in BUNDLED.values())


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_pack_loads_and_builds_a_catalog(name: str) -> None:
    pack = load_pack(BUNDLED[name])
    assert pack.name == name
    catalog = catalog_from_packs([pack])
    assert len(catalog.skills) >= 10 and len(catalog.items) >= 150 and catalog.courses
    assert any(s.requires for s in pack.skills)  # a real prerequisite graph
    assert any(len(i.skills) > 1 for i in pack.items)  # some multi-skill items
    for skill in catalog.skills:
        assert len(catalog.items_for(skill)) >= 5, skill
    for item in pack.items:
        assert item.metadata["prompt"] and item.metadata["answer"], item.id
        assert item.difficulty is not None, item.id
        if "choices" in item.metadata:
            assert item.metadata["answer"] in item.metadata["choices"], item.id
    catalog.bkt_params()  # valid BKT parameters, per-item classes included


def test_bundled_packs_merge_into_one_catalog() -> None:
    packs = [load_pack(p) for p in BUNDLED.values()]
    catalog = catalog_from_packs(packs)
    assert len(catalog.items) == sum(len(p.items) for p in packs)


def test_harder_math_skills_start_less_known() -> None:
    skills = {s.id: s for s in load_pack(BUNDLED["math-basics"]).skills}
    easy, hard = skills["math.counting"].bkt, skills["math.add-fractions-unlike"].bkt
    assert hard.prior < easy.prior and hard.learn < easy.learn


# ============================================================================ round trip
@pytest.mark.parametrize("name", [*sorted(BUNDLED), "mini"])
def test_to_document_round_trips(name: str) -> None:
    pack = parse_pack(_doc()) if name == "mini" else load_pack(BUNDLED[name])
    document = json.loads(json.dumps(pack.to_document()))  # JSON-ready
    again = parse_pack(document, "again")
    assert again == pack
    assert again.to_document() == document


def test_mini_pack_fields() -> None:
    pack = parse_pack(_doc(), "mini.json")
    assert isinstance(pack, Pack) and pack.source == "mini.json"
    assert pack.language == "en" and pack.description == "test pack"
    i1, i2, i3 = pack.items
    assert i1.skills == ("a",) and i1.kind == "exercise" and i1.difficulty == -1.5
    assert i1.metadata == {"prompt": "1 + 1 = ?", "answer": "2"}
    assert i2.metadata == {"prompt": "?", "answer": ["x", "X"], "choices": ["x", "y"]}
    assert (i3.discrimination, i3.guessing, i3.guess, i3.slip) == (1.2, 0.1, None, 0.2)
    assert pack.skills[0].bkt == BKTSkillParams()
    assert pack.skills[1].bkt == BKTSkillParams(0.1, 0.2, 0.25, 0.05, 0.01)


def test_load_pack_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mini.json"
    path.write_text(json.dumps(_doc()), encoding="utf-8")
    assert load_pack(path) == parse_pack(_doc())


# ============================================================================ validation errors
@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(format="tutor-bkt"), 'format: must be "tutor-content-pack"'),
    (lambda d: d.pop("format"), "format: must be"),
    (lambda d: d.update(version=2), "version: this engine reads version 1 packs, got 2"),
    (lambda d: d.update(version="1"), "version:"),
], ids=["format", "no-format", "version", "version-string"])
def test_bad_format_or_version(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    assert expected in _error(_mutated(change))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d.update(titel="x"), "mini.json: unknown key 'titel' (did you mean 'title'?)"),
    (lambda d: d["skills"][1].update(requries=["a"]),
     "skills[1]: unknown key 'requries' (did you mean 'requires'?); allowed keys: id, name"),
    (lambda d: d["skills"][1]["bkt"].update(forgett=0.1), "skills[1].bkt: unknown key 'forgett'"),
    (lambda d: d["items"][0].update(promt="x"), "items[0]: unknown key 'promt'"),
    (lambda d: d["courses"][0].update(extra=1), "courses[0]: unknown key 'extra'"),
], ids=["top", "skill", "bkt", "item", "course"])
def test_unknown_key(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    message = _error(_mutated(change))
    assert expected in message and "allowed keys" in message


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["skills"][1].update(requires="a"),
     'skills[1].requires: must be an array of ids (write ["a"] for one), got "a"'),
    (lambda d: d.update(skills={}), "skills: must be an array, got {}"),
    (lambda d: d["skills"].append("d"), 'skills[3]: must be an object, got "d"'),
    (lambda d: d["skills"][0].update(name=3), "skills[0].name: must be a non-empty string"),
    (lambda d: d["skills"][1]["bkt"].update(prior="0.1"),
     'skills[1].bkt.prior: must be a number, got "0.1"'),
    (lambda d: d["items"][0].update(difficulty=True), "items[0].difficulty: must be a number"),
    (lambda d: d["items"][0].update(answer=[]), "items[0].answer: must be a string or"),
    (lambda d: d["items"][0].update(metadata=[]), "items[0].metadata: must be an object"),
    (lambda d: d["items"][0].update(discrimination=0), "items[0].discrimination: must be above 0"),
    (lambda d: d["skills"][1]["bkt"].pop("slip"), "skills[1].bkt: missing required key 'slip'"),
    (lambda d: d["items"][0].update(skills=["a"]), "items[0]: needs exactly one of 'skills'"),
], ids=["requires-string", "skills-object", "skill-string", "name-number", "prior-string",
        "difficulty-bool", "answer-empty", "metadata-array", "discrimination", "missing-key",
        "skill-and-skills"])
def test_wrong_type_or_shape(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    assert expected in _error(_mutated(change))


@pytest.mark.parametrize(("where", "key"), [(("skills", 1, "bkt"), "guess"),
                                            (("skills", 1, "bkt"), "forget"),
                                            (("items", 1), "guess"), (("items", 2), "slip"),
                                            (("items", 2), "guessing")])
def test_out_of_range_probability(where: tuple[Any, ...], key: str) -> None:
    doc = _doc()
    obj = doc
    for step in where:
        obj = obj[step]
    obj[key] = 1.4
    path = f"{where[0]}[{where[1]}]" + "".join(f".{s}" for s in where[2:])
    message = _error(doc)
    assert message.startswith(f"mini.json: {path}.{key}: must be ")
    assert message.endswith("got 1.4")


def test_out_of_range_message_matches_the_documented_example() -> None:
    doc = _doc()
    doc["skills"][1]["bkt"]["guess"] = 1.4
    assert _error(doc, "math.json") == ("math.json: skills[1].bkt.guess: must be between 0 "
                                        "and 1, got 1.4")


def test_guess_plus_slip_must_stay_below_one() -> None:
    doc = _mutated(lambda d: d["skills"][1]["bkt"].update(guess=0.6, slip=0.4))
    assert "skills[1].bkt: guess + slip must be below 1, got 0.6 + 0.4" in _error(doc)
    # an item's own guess with its skill's slip (skill a: default slip 0.1)
    doc = _mutated(lambda d: d["items"][0].update(guess=0.95))
    assert ("items[0]: guess + slip must be below 1 (with skill 'a'), got 0.95 + 0.1"
            in _error(doc))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["items"][2].update(skills=["c", "fractoins"]),
     "items[2].skills[1]: unknown skill 'fractoins'"),
    (lambda d: d["items"][0].update(skill="cc"),
     "items[0].skill: unknown skill 'cc' (did you mean 'c'?)"),
    (lambda d: d["skills"][2].update(requires=["zz"]), "skills[2].requires[0]: unknown skill 'zz'"),
    (lambda d: d["courses"][0].update(skills=["a", "q"]),
     "courses[0].skills[1]: unknown skill 'q'"),
], ids=["item", "item-single", "requires", "course"])
def test_unknown_skill_reference(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    assert expected in _error(_mutated(change))


@pytest.mark.parametrize(("kind", "extra"), [
    ("skills", {"id": "a", "name": "Again"}),
    ("items", {"id": "i2", "skill": "a"}),
    ("courses", {"id": "course", "name": "Again", "skills": ["a"]}),
])
def test_duplicate_id_within_a_pack(kind: str, extra: dict[str, Any]) -> None:
    doc = _doc()
    doc[kind].append(extra)
    n = len(doc[kind]) - 1
    assert f"{kind}[{n}].id: duplicate {kind[:-1]} id {extra['id']!r} (first defined at" \
        in _error(doc)


def test_duplicate_id_across_packs_names_both_packs() -> None:
    first = parse_pack(_doc(), "one.json")
    other = _doc()
    other["name"] = "other"
    for kind in ("skills", "items", "courses"):
        for thing in other[kind]:
            if kind != "skills" or thing["id"] != "b":
                thing["id"] += "-2"
    for thing in [*other["skills"], *other["items"], *other["courses"]]:
        for key in ("requires", "skills"):
            if key in thing:
                thing[key] = [s if s == "b" else s + "-2" for s in thing[key]]
        if "skill" in thing:
            thing["skill"] += "-2"
    second = parse_pack(other, "two.json")
    with pytest.raises(ContentError) as info:
        catalog_from_packs([first, second])
    assert str(info.value) == ("pack 'other': skill id 'b' is also defined by pack 'mini'; ids "
                               "must be unique across packs served together (prefix them per pack)")
    with pytest.raises(ContentError, match="given twice"):
        catalog_from_packs([first, first])


def test_cycle_is_named() -> None:
    doc = _mutated(lambda d: d["skills"][0].update(requires=["c"]))
    message = _error(doc)
    assert message.startswith("mini.json: prerequisites: cycle ")
    assert "'a' -> 'c' -> 'b' -> 'a'" in message
    doc = _mutated(lambda d: d["skills"][0].update(requires=["a"]))
    assert "skills[0].requires: skill 'a' cannot require itself" in _error(doc)


@pytest.mark.parametrize(("bad", "expected"), [
    ("", "must not be empty"),
    ("a\x00b", "must not contain control or invisible characters"),
    ("x" * 129, "must be at most 128 characters"),
    (" a", "must not start or end with whitespace"),
    (7, "must be a string id, got 7"),
])
def test_bad_id(bad: Any, expected: str) -> None:
    assert f"skills[0].id: {expected}" in _error(_mutated(lambda d: d["skills"][0].update(id=bad)))
    assert f"items[1].id: {expected}" in _error(_mutated(lambda d: d["items"][1].update(id=bad)))


def test_id_of_128_characters_is_fine() -> None:
    parse_pack(_mutated(lambda d: d["courses"][0].update(id="c" * 128)))


def test_prompt_given_twice_and_reserved_item_id() -> None:
    doc = _mutated(lambda d: d["items"][0].update(metadata={"prompt": "other"}))
    assert "items[0]: 'prompt' is given both as a key and in 'metadata'" in _error(doc)
    doc = _mutated(lambda d: d["items"][0].update(id="default"))
    assert "items[0].id: 'default' is reserved" in _error(doc)


@pytest.mark.parametrize(("text", "expected"), [
    ('{"format": "tutor-content-pack",}', "bad.json: line 1 column 33: not valid JSON"),
    ('{"a": 1, "a": 2}', "key 'a' appears twice"),
    ('{"a": NaN}', "NaN is not a number"),
    ('[1, 2]', "bad.json: must be a JSON object, got [1, 2]"),
])
def test_load_pack_rejects_bad_json(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ContentError) as info:
        load_pack(path)
    assert expected in str(info.value)


# ============================================================================ catalog
def test_bkt_params_item_with_own_guess_gets_its_own_class() -> None:
    catalog = Catalog.build(
        [Skill("a", "A", BKTSkillParams(prior=0.3, learn=0.2, guess=0.2, slip=0.1)),
         Skill("b", "B", BKTSkillParams(prior=0.1, learn=0.05, guess=0.25, slip=0.05,
                                        forget=0.02), requires=("a",))],
        [Item("i1", ("a",), guess=0.3), Item("i2", ("a",)), Item("i3", ("b",), slip=0.2),
         Item("i4", ("a", "b"))])
    p = catalog.bkt_params()
    assert p.skills == ("a", "b")
    assert p.gs_names == ("i1", "default", "i3", "default")
    assert p.gs_ptr.tolist() == [0, 2, 4]
    np.testing.assert_allclose(p.guess, [0.3, 0.2, 0.25, 0.25])  # i3 keeps its skill's guess
    np.testing.assert_allclose(p.slip, [0.1, 0.1, 0.2, 0.05])  # i1 keeps its skill's slip
    np.testing.assert_allclose(p.prior, [0.3, 0.1])
    np.testing.assert_allclose(p.learn, [0.2, 0.05])
    np.testing.assert_allclose(p.forget, [0.0, 0.02])
    assert p.default_class.tolist() == [1, 3]


def test_order_puts_prerequisites_first() -> None:
    skills = [Skill("frac", "Fractions", requires=("div", "mult")), Skill("div", "Division",
              requires=("mult",)), Skill("mult", "Multiplication", requires=("add",)),
              Skill("add", "Addition")]
    order = Catalog.build(skills, [Item("x", ("add",))]).order
    assert order == ("add", "mult", "div", "frac")
    for name in BUNDLED:
        catalog = catalog_from_packs([load_pack(BUNDLED[name])])
        position = {s: k for k, s in enumerate(catalog.order)}
        assert sorted(position) == sorted(catalog.skills)
        for skill in catalog.skills.values():
            assert all(position[r] < position[skill.id] for r in skill.requires), skill.id


def test_the_forbidden_id_characters_are_unicodes_controls_and_invisible_ones() -> None:
    """:data:`engine.ids.FORBIDDEN` (stated in the OpenAPI document as part of the id
    pattern) is derived again here from Python's Unicode database."""
    import re
    import sys
    import unicodedata

    from engine.ids import FORBIDDEN

    forbidden = re.compile(f"[{FORBIDDEN}]")
    if unicodedata.unidata_version != "14.0.0":
        pytest.skip(f"FORBIDDEN is of Unicode 14.0.0; this Python has "
                    f"{unicodedata.unidata_version}")
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        category = unicodedata.category(ch)
        want = (category in {"Cc", "Cf", "Cs", "Zl", "Zp"} or (category == "Zs" and ch != " ")
                or ch in "/\ufffd")
        assert bool(forbidden.match(ch)) == want, (hex(code), category)


@given(st.text(st.characters(codec="utf-8"), min_size=0, max_size=6)
       | st.sampled_from([".", "..", "...", " a", "a ", "a b", ".a", "a.", "\u200b", "é"]))
@settings(max_examples=3000, deadline=None)
def test_the_id_pattern_holds_exactly_for_valid_ids(value: str) -> None:
    """The id rule (:func:`engine.ids.id_problem`) and the pattern the API states agree on
    text (Unicode scalar values: the pattern names no surrogates, which id_problem refuses)."""
    import re

    from engine.ids import ID_PATTERN, id_problem

    assert (id_problem(value) is None) == bool(re.fullmatch(ID_PATTERN, value)), repr(value)


# ============================================================== the pack's JSON Schema
def _schema_validator() -> Any:
    import jsonschema_rs

    from content.packs import pack_json_schema

    return jsonschema_rs.validator_for(pack_json_schema())


def _loader_refuses(doc: Any) -> str | None:
    """The loader's message for ``doc``, or None if it accepts it."""
    try:
        parse_pack(doc, "mini.json")
    except ContentError as e:
        return str(e)
    return None


#: what the loader refuses that JSON Schema cannot state (the schema's description lists them)
_BEYOND_THE_SCHEMA = ("guess + slip must be below 1", "duplicate skill id", "duplicate item id",
                      "duplicate course id", "unknown skill", "cannot require itself",
                      "prerequisites: cycle")


def test_every_bundled_pack_is_valid_by_the_schema() -> None:
    validator = _schema_validator()
    for name, path in BUNDLED.items():
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert [e.message for e in validator.iter_errors(doc)] == [], name
    assert validator.is_valid(_doc())
    assert validator.is_valid(_doc() | {"version": 1.0})  # the loader's reading of 1 too


@pytest.mark.parametrize(("change", "loader_says"), [
    (lambda d: d.pop("title"), "missing required key 'title'"),
    (lambda d: d.pop("skills"), "missing required key 'skills'"),
    (lambda d: d.update(title=" \u3000\n"), "title: must be a non-empty string"),
    (lambda d: d.update(titel="x"), "unknown key 'titel'"),
    (lambda d: d.update(version=2), "version 1 packs, got 2"),
    (lambda d: d.update(version=True), "version 1 packs, got true"),
    (lambda d: d.update(format="other"), 'format: must be "tutor-content-pack"'),
    (lambda d: d.update(name="a/b"), "name: must not contain '/'"),
    (lambda d: d.update(skills={}), "skills: must be an array"),
    (lambda d: d["skills"][0].update(name=3), "skills[0].name: must be a non-empty string"),
    (lambda d: d["skills"][0].update(id="x" * 129), "must be at most 128 characters"),
    (lambda d: d["skills"][1].update(requires=["a", "a"]), "'a' is listed twice"),
    (lambda d: d["skills"][1]["bkt"].pop("slip"), "missing required key 'slip'"),
    (lambda d: d["skills"][1]["bkt"].update(prior=-0.1), "prior: must be between 0 and 1"),
    (lambda d: d["skills"][1]["bkt"].update(forget="0"), "forget: must be a number"),
    (lambda d: d["items"][0].update(skills=["a"]), "needs exactly one of 'skills'"),
    (lambda d: d["items"][0].pop("skill"), "needs exactly one of 'skills'"),
    (lambda d: d["items"][1].update(skills=[]), "items[1].skills: must list at least one"),
    (lambda d: d["items"][0].update(id="default"), "items[0].id: 'default' is reserved"),
    (lambda d: d["items"][0].update(kind=""), "kind: must not be empty"),
    (lambda d: d["items"][0].update(difficulty=True), "difficulty: must be a number"),
    (lambda d: d["items"][2].update(discrimination=0), "discrimination: must be above 0"),
    (lambda d: d["items"][2].update(guessing=1), "guessing: must be at least 0 and below 1"),
    (lambda d: d["items"][1].update(guess=1.01), "items[1].guess: must be between 0 and 1"),
    (lambda d: d["items"][0].update(answer=[]), "answer: must be a string or"),
    (lambda d: d["items"][0].update(answer=["x", 1]), "answer: must be a string or"),
    (lambda d: d["items"][0].update(metadata=[]), "metadata: must be an object"),
    (lambda d: d["items"][0].update(metadata={"answer": "3"}), "'answer' is given both"),
    (lambda d: d["items"][0].update(promt="x"), "unknown key 'promt'"),
    (lambda d: d["courses"][0].update(extra=1), "courses[0]: unknown key 'extra'"),
    (lambda d: d["courses"][0].update(skills="a"), "must be an array of ids"),
], ids=lambda v: "" if callable(v) else v)
def test_a_pack_the_loader_refuses_for_its_shape_the_schema_refuses(
        change: Callable[[dict[str, Any]], Any], loader_says: str) -> None:
    """The schema the API publishes for a pack states the loader's rules on each value: a
    document refused for one of them is refused by the schema too (and valid before)."""
    doc = _mutated(change)
    message = _loader_refuses(doc)
    assert message is not None and loader_says in message, message
    assert not _schema_validator().is_valid(doc)


@pytest.mark.parametrize("change", [
    lambda d: d["skills"][2].update(bkt={"prior": 0, "learn": 1, "guess": 0, "slip": 0.999,
                                         "forget": 1}),
    lambda d: d["items"][2].update(discrimination=1e-300, guessing=0),
    lambda d: d["items"][0].update(difficulty=-1e308, answer=["2"], metadata={"x": [None]}),
    lambda d: d["courses"][0].update(name="\u00a0x\u00a0", id="é " + "x" * 126),
    lambda d: d.pop("courses"),
], ids=["probabilities-at-their-bounds", "irt-at-bounds", "difficulty", "text", "no-courses"])
def test_a_pack_at_the_bounds_is_valid_for_both(change: Callable[[dict[str, Any]], Any]) -> None:
    doc = _mutated(change)
    assert _loader_refuses(doc) is None
    assert _schema_validator().is_valid(doc)


@pytest.mark.parametrize(("change", "loader_says"), [
    (lambda d: d["skills"][1]["bkt"].update(guess=0.5, slip=0.5), "guess + slip must be below"),
    (lambda d: d["items"][0].update(guess=0.9), "guess + slip must be below 1 (with skill"),
    (lambda d: d["skills"][1].update(id="a"), "duplicate skill id 'a'"),
    (lambda d: d["items"][1].update(id="i1"), "duplicate item id 'i1'"),
    (lambda d: d["items"][0].update(skill="z"), "items[0].skill: unknown skill 'z'"),
    (lambda d: d["skills"][0].update(requires=["a"]), "cannot require itself"),
    (lambda d: d["skills"][0].update(requires=["c"]), "prerequisites: cycle"),
    (lambda d: d["courses"][0].update(skills=["q"]), "unknown skill 'q'"),
], ids=["bkt", "item-with-skill", "skill-id", "item-id", "item-skill", "self", "cycle",
        "course"])
def test_the_rules_between_values_are_the_servers_alone(
        change: Callable[[dict[str, Any]], Any], loader_says: str) -> None:
    """What JSON Schema cannot state (arithmetic, references, uniqueness of ids in objects,
    cycles) the schema accepts, names in its description, and the loader refuses."""
    from content.packs import pack_json_schema

    doc = _mutated(change)
    message = _loader_refuses(doc)
    assert message is not None and loader_says in message, message
    assert any(rule in message for rule in _BEYOND_THE_SCHEMA)
    assert _schema_validator().is_valid(doc)
    description = pack_json_schema()["description"]
    for words in ("guess` + `bkt.slip` is below 1", "unique", "is a skill of the pack",
                  "does not require itself", "no cycle", "another of the tenant's packs",
                  "TUTOR_MAX_CONTENT_ITEMS"):
        assert words in description


def test_a_number_beyond_a_double_is_refused_not_a_crash() -> None:
    """A JSON integer literal of 400 digits is a number to JSON, not to the engine: it was an
    OverflowError (a 500 from the API) where the loader checked it was finite."""
    doc = _mutated(lambda d: d["items"][0].update(difficulty=10**400))
    message = _loader_refuses(doc)
    assert message is not None and "items[0].difficulty: must be a number" in message


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4)
    | st.sampled_from(["", " ", "\u3000", "a", "b", "i1", "default", ".", "a/b", "x" * 129,
                       "tutor-content-pack", 0, 1, 1.0, 0.5, 0.95, -1.0]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=3) | st.sampled_from(
        ["id", "name", "skill", "skills", "requires", "bkt", "prompt", "answer", "metadata",
         "guess", "slip", "prior", "learn", "forget", "courses", "title"]), inner, max_size=3),
    max_leaves=5)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document, the document itself first."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for k, value in enumerate(node):
            out += _paths(value, (*path, k))
    return out


@given(st.data())
@settings(max_examples=400, deadline=None)
def test_the_schema_and_the_loader_agree_on_damaged_packs(data: st.DataObject) -> None:
    """A valid pack with one value replaced, removed, added or repeated in its array: the
    loader accepts it only if the schema does, and refuses a schema-valid one only for a rule
    between values."""
    doc = _doc()
    path = data.draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    action = data.draw(st.sampled_from(["replace", "remove", "add", "repeat"]))
    if action == "remove":
        del parent[path[-1]]
    elif action == "repeat" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[path[-1]]))
    elif action == "add" and isinstance(parent, dict):
        key = data.draw(st.sampled_from(["name", "skill", "skills", "kind", "bkt", "forget",
                                         "language", "courses", "metadata", "prompt", "x"]))
        parent[key] = data.draw(JSON_VALUES)
    else:
        parent[path[-1]] = data.draw(JSON_VALUES)
    valid = _schema_validator().is_valid(doc)
    message = _loader_refuses(doc)
    if message is None:
        assert valid, doc
    elif valid:
        assert any(rule in message for rule in _BEYOND_THE_SCHEMA), message


def test_the_whitespace_the_text_pattern_names_is_what_strip_removes() -> None:
    """``_text`` (a non-empty string after :meth:`str.strip`) is stated as a pattern naming
    Python's whitespace; derived again here over every code point, and read the same by
    jsonschema-rs (the validator schemathesis uses)."""
    import re
    import sys

    import jsonschema_rs

    from content.packs import _WHITESPACE, pack_json_schema

    space = re.compile(f"[{_WHITESPACE}]")
    for code in range(sys.maxunicode + 1):
        assert bool(space.fullmatch(chr(code))) == chr(code).isspace(), hex(code)
    pattern = pack_json_schema()["properties"]["title"]["pattern"]
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    for text in ["a", " a ", "", " ", "\u3000\u2028\x1c", "\u200b", "\t\n"]:
        assert validator.is_valid(text) == (text.strip() != ""), repr(text)
