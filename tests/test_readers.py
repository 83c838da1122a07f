"""Answer-log readers: round trips, hand-written files per format, one test per malformed input."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engine.events import AnswerEvent, AnswerLog
from training.readers import (
    FORMATS,
    LogFormatError,
    read_log,
    write_csv,
    write_dkt3,
    write_parquet,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _file(tmp_path: Path, text: str, name: str = "log.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _bad(path: Path, fmt: str, line: int | None, field: str | None, match: str) -> LogFormatError:
    """Reading must fail naming the file, the line and the field."""
    with pytest.raises(LogFormatError, match=match) as info:
        read_log(path, fmt)
    error = info.value
    assert (error.path, error.line, error.field) == (path, line, field)
    location = f"{path}:{line}: " if line is not None else f"{path}: "
    assert str(error).startswith(location)
    if field is not None:
        assert f"field {field!r}" in str(error)
    return error


# --------------------------------------------------------------------------- round trips
def _rich_log() -> AnswerLog:
    """Every field, missing values, awkward ids, multi-skill answers, interleaved learners."""
    t0 = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    events = [
        AnswerEvent("learner, one", "007", ("frac", "neg"), True, timestamp=t0,
                    response_ms=0.1 + 0.2, attempt=1, hints=0, session="s1", event_id="e1"),
        AnswerEvent("NA", "item 2", ("frac",), False),
        AnswerEvent("learner, one", "007", ("neg",), False,
                    timestamp=datetime(2041, 1, 2, 3, 4, 5, 999999, tzinfo=UTC),
                    response_ms=1500.0, attempt=2, hints=3, session="s1", event_id="e3"),
        AnswerEvent("NA", "é-item", ("ünï",), True, timestamp=t0, attempt=0, session="s\"2"),
    ]
    return AnswerLog.from_events(events)


def test_dkt3_round_trip(tmp_path: Path) -> None:
    log = AnswerLog.from_events(
        AnswerEvent(learner, skill, (skill,), correct)
        for learner, skill, correct in [("0", "3", True), ("0", "12", False), ("1", "3", False),
                                        ("2", "-4", True)]
    )
    write_dkt3(log, tmp_path / "out.txt")
    assert list(read_log(tmp_path / "out.txt", "dkt3").events()) == list(log.events())


def test_dkt3_writer_rejects_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one id per answer"):
        write_dkt3(_rich_log(), tmp_path / "out.txt")
    single = AnswerLog.from_events([AnswerEvent("a", "i", ("add",), True)])
    with pytest.raises(ValueError, match="'add' is not an integer"):
        write_dkt3(single, tmp_path / "out.txt")


@pytest.mark.parametrize(("fmt", "write"), [("csv", write_csv), ("parquet", write_parquet)])
def test_generic_round_trip(tmp_path: Path, fmt: str, write) -> None:
    log = _rich_log()
    path = tmp_path / f"log.{fmt}"
    write(log, path)
    back = read_log(path, fmt)
    assert list(back.events()) == list(log.events())
    np.testing.assert_array_equal(back.timestamp_ns, log.timestamp_ns)


@pytest.mark.parametrize(("fmt", "write"), [("csv", write_csv), ("parquet", write_parquet)])
def test_generic_round_trip_keeps_nanoseconds(tmp_path: Path, fmt: str, write) -> None:
    stamps = np.array([1_700_000_000_123_456_789, np.iinfo(np.int64).min], dtype=np.int64)
    log = AnswerLog.from_columns(["a", "b"], ["i", "j"], ["s", "t"], [1, 0], timestamp_ns=stamps)
    write(log, tmp_path / f"log.{fmt}")
    np.testing.assert_array_equal(read_log(tmp_path / f"log.{fmt}", fmt).timestamp_ns, stamps)


# --------------------------------------------------------------------------- dkt3
def test_dkt3_tolerates_trailing_commas_crlf_and_blank_lines(tmp_path: Path) -> None:
    path = _file(tmp_path, "2\r\n5,7,\r\n1,0,\r\n\r\n1\r\n5\r\n0\r\n\r\n\r\n")
    log = read_log(path, "dkt3")
    assert [(e.learner, e.item, e.skills, e.correct) for e in log] == [
        ("0", "5", ("5",), True), ("0", "7", ("7",), False), ("1", "5", ("5",), False),
    ]


def test_dkt3_learner_ids_are_block_indices_not_lengths(tmp_path: Path) -> None:
    log = read_log(_file(tmp_path, "1\n4\n1\n0\n\n\n1\n4\n1\n"), "dkt3")
    assert [e.learner for e in log] == ["0", "2"]  # the empty second block keeps its index


@pytest.mark.parametrize(
    ("text", "line", "field", "match"),
    [
        ("2\n1,2\n1,0\nx\n1\n1\n", 4, "count", "expected the number of answers"),
        ("3\n1,2\n1,0\n", 2, "ids", "says 3 answers but this line has 2 ids"),
        ("2\n1,2\n1\n", 3, "correct", "2 ids but 1 correctness values"),
        ("2\n1,2\n1,2\n", 3, "correct", "expected 0 or 1, got '2'"),
        ("1\n1\n1\n2\n1,a\n1,0\n", 5, "ids", "expected an integer id, got 'a'"),
        ("1\n1\n1\n2\n1,2\n", 4, "correct", "truncated block"),
        ("1\n1\n1\n2\n", 4, "ids", "truncated block"),
    ],
    ids=["count", "count-vs-ids", "ids-vs-correct", "correct-not-01", "id-not-int", "truncated",
         "truncated-after-count"],
)
def test_dkt3_malformed(tmp_path: Path, text: str, line: int, field: str, match: str) -> None:
    _bad(_file(tmp_path, text), "dkt3", line, field, match)


# --------------------------------------------------------------------------- pybkt
ASSIST_PYBKT = (
    "order_id,user_id,problem_id,skill_name,correct,ms_first_response,attempt_count,hint_count\n"
) + """30,u1,p2,Addition,1,1200,1,0
10,u1,p1,Addition,0,5400,2,1
20,u2,p1,,1,800,1,0
15,u2,p3,Subtraction,1,,1,0
12,u1,p4,Subtraction,1,700,1,0
"""


def test_pybkt_assistments_names_order_and_empty_skill_drop(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="dropped 1 of 5 rows with an empty 'skill_name'"):
        log = read_log(_file(tmp_path, ASSIST_PYBKT), "pybkt")
    assert [(e.learner, e.item, e.skills, e.correct, e.response_ms, e.attempt, e.hints)
            for e in log] == [
        ("u1", "p1", ("Addition",), False, 5400.0, 2, 1),
        ("u1", "p4", ("Subtraction",), True, 700.0, 1, 0),
        ("u1", "p2", ("Addition",), True, 1200.0, 1, 0),
        ("u2", "p3", ("Subtraction",), True, None, 1, 0),
    ]


def test_pybkt_latin1_file(tmp_path: Path) -> None:
    text = "user_id,skill_name,correct\nu1,Équations,1\nu1,Fractions décimales,0\n"
    log = read_log(_file(tmp_path, text, encoding="latin-1"), "pybkt")
    assert [e.skills for e in log] == [("Équations",), ("Fractions décimales",)]
    assert [e.item for e in log] == ["Équations", "Fractions décimales"]  # no item column


KDD = (
    "Row,Anon Student Id,Problem Name,Step Name,First Transaction Time,Correct First Attempt,"
    "Problem View,Hints,KC(Default)\n"
) + """3,s1,P1,x=2,2005-09-09 12:25:00.0,1,1,0,A~~B
1,s1,P1,x+1=3,2005-09-09 12:24:35.0,0,1,2,A
4,s2,P2,y=2,2005-09-10 08:01:00.0,1,2,0,B~~B
"""


def test_pybkt_kdd_names_multi_skill_and_problem_step_items(tmp_path: Path) -> None:
    log = read_log(_file(tmp_path, KDD), "pybkt")
    assert [(e.learner, e.item, e.skills, e.correct, e.attempt, e.hints) for e in log] == [
        ("s1", "P1;x+1=3", ("A",), False, 1, 2),
        ("s1", "P1;x=2", ("A", "B"), True, 1, 0),
        ("s2", "P2;y=2", ("B",), True, 2, 0),
    ]
    assert log[0].timestamp == datetime(2005, 9, 9, 12, 24, 35, tzinfo=UTC)


def test_pybkt_mapping_overrides_detection(tmp_path: Path) -> None:
    path = _file(tmp_path, "student,kc,ok,when\na,k1,1,1700000000000\na,k2,0,1700000001500\n")
    log = read_log(path, "pybkt", mapping={"learner": "student", "skills": "kc", "correct": "ok",
                                           "timestamp": "when"})
    assert [(e.learner, e.item, e.skills, e.correct) for e in log] == [
        ("a", "k1", ("k1",), True), ("a", "k2", ("k2",), False)]
    assert log[1].timestamp == datetime(2023, 11, 14, 22, 13, 21, 500000, tzinfo=UTC)


def test_pybkt_unknown_convention_lists_columns(tmp_path: Path) -> None:
    error = _bad(_file(tmp_path, "student,kc,ok\na,k,1\n"), "pybkt", 1, None,
                 "unknown column convention")
    assert "student, kc, ok" in str(error) and "Anon Student Id" in str(error)


def test_pybkt_missing_mapped_column_lists_columns(tmp_path: Path) -> None:
    path = _file(tmp_path, "student,kc,ok\na,k,1\n")
    with pytest.raises(LogFormatError, match=r"'correct_answer'.*columns found: student, kc, ok"):
        read_log(path, "pybkt", mapping={"learner": "student", "skills": "kc",
                                         "correct": "correct_answer"})


@pytest.mark.parametrize(
    ("row", "line", "field", "match"),
    [
        ("31,u1,p2,Addition,2,1200,1,0", 3, "correct", "expected 0 or 1, got '2'"),
        ("x,u1,p2,Addition,1,1200,1,0", 3, "order_id", "expected a number"),
        ("31,u1,p2,Addition,1,fast,1,0", 3, "ms_first_response", "expected a number"),
        ("31,u1,p2,Addition,1,1200,-1,0", 3, "attempt_count", "non-negative integer"),
        ("31,,p2,Addition,1,1200,1,0", 3, "user_id", "non-empty id"),
        ("31,u1,p2,Addition,1,1200,1", 3, None, "expected 8 fields as in the header, got 7"),
    ],
    ids=["correct", "order", "response-ms", "attempt", "learner", "short-row"],
)
def test_pybkt_malformed(tmp_path: Path, row: str, line: int, field: str | None,
                         match: str) -> None:
    header, first = ASSIST_PYBKT.splitlines()[:2]
    _bad(_file(tmp_path, f"{header}\n{first}\n{row}\n"), "pybkt", line, field, match)


def test_error_line_counts_quoted_newlines(tmp_path: Path) -> None:
    text = 'user_id,skill_name,correct\nu1,"two\nline skill",1\n\nu1,s,x\n'
    _bad(_file(tmp_path, text), "pybkt", 5, "correct", "expected 0 or 1, got 'x'")


# --------------------------------------------------------------------------- assistments
ASSIST_COLUMNS = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,"
    "ms_first_response,tutor_mode,answer_type,sequence_id,student_class_id,position,type,"
    "base_sequence_id,skill_id,skill_name,teacher_id,school_id,hint_count,hint_total,"
    "overlap_time,template_id,answer_id,answer_text,first_action,bottom_hint,opportunity,"
    "opportunity_original"
)


def _assist_row(order: int, user: str, problem: str, skill: str, correct: str,
                assignment: str = "a1") -> str:
    cells = dict.fromkeys(ASSIST_COLUMNS.split(","), "")
    cells.update(order_id=str(order), assignment_id=assignment, user_id=user, problem_id=problem,
                 correct=correct, attempt_count="1", ms_first_response="3000", skill_id=skill,
                 skill_name=f"skill {skill}", hint_count="0", answer_text="4, maybe")
    return ",".join(f'"{v}"' if "," in v else v for v in cells.values())


def test_assistments_merges_multi_skill_rows(tmp_path: Path) -> None:
    rows = [
        _assist_row(7, "u1", "p9", "10", "1"),
        _assist_row(5, "u1", "p8", "10", "0", assignment="a0"),
        _assist_row(6, "u2", "p8", "", "1"),
        _assist_row(7, "u1", "p9", "11", "1"),  # same answer, second skill, not adjacent
        _assist_row(7, "u1", "p9", "10", "1"),  # duplicated row: skill kept once
    ]
    path = _file(tmp_path, "\n".join([ASSIST_COLUMNS, *rows]) + "\n")
    with pytest.warns(UserWarning, match="dropped 1 of 5 rows"):
        log = read_log(path, "assistments")
    assert [(e.learner, e.item, e.skills, e.correct, e.session, e.response_ms, e.attempt,
             e.hints) for e in log] == [
        ("u1", "p8", ("10",), False, "a0", 3000.0, 1, 0),
        ("u1", "p9", ("10", "11"), True, "a1", 3000.0, 1, 0),
    ]


def test_assistments_malformed_correct(tmp_path: Path) -> None:
    rows = [_assist_row(1, "u1", "p1", "10", "1"), _assist_row(2, "u1", "p1", "10", "0.5")]
    path = _file(tmp_path, "\n".join([ASSIST_COLUMNS, *rows]) + "\n")
    _bad(path, "assistments", 3, "correct", "expected 0 or 1, got '0.5'")


def test_assistments_rows_of_one_answer_must_agree(tmp_path: Path) -> None:
    rows = [_assist_row(1, "u1", "p1", "10", "1"), _assist_row(1, "u1", "p1", "11", "0")]
    path = _file(tmp_path, "\n".join([ASSIST_COLUMNS, *rows]) + "\n")
    _bad(path, "assistments", 3, "correct", "order_id '1' are one answer but disagree")


def test_assistments_missing_column(tmp_path: Path) -> None:
    error = _bad(_file(tmp_path, "user_id,skill_id,correct\nu,1,1\n"), "assistments", 1,
                 "problem_id", "not in the file: 'problem_id' \\(for 'item'\\)")
    assert "'order_id' (for 'order')" in str(error)
    assert "columns found: user_id, skill_id, correct" in str(error)


# --------------------------------------------------------------------------- pykt
PYKT = """fold,uid,questions,concepts,responses,timestamps,usetimes,selectmasks,is_repeat
0,u1,"1,1,2","5,6,5","1,1,0","1000,1000,2000","300,300,400","1,1,1","0,1,0"
0,u1,"3,-1,-1","7,-1,-1","0,-1,-1","3000,-1,-1","500,-1,-1","1,-1,-1","0,-1,-1"
1,u2,"2,-1,-1","5,-1,-1","1,-1,-1","4000,-1,-1","600,-1,-1","1,-1,-1","0,-1,-1"
"""


def test_pykt_joins_windows_drops_padding_and_merges_repeats(tmp_path: Path) -> None:
    log = read_log(_file(tmp_path, PYKT), "pykt")
    assert [(e.learner, e.item, e.skills, e.correct, e.response_ms) for e in log] == [
        ("u1", "1", ("5", "6"), True, 300.0),
        ("u1", "2", ("5",), False, 400.0),
        ("u1", "3", ("7",), False, 500.0),
        ("u2", "2", ("5",), True, 600.0),
    ]
    assert log[2].timestamp == datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC)


def test_pykt_na_questions_use_concepts(tmp_path: Path) -> None:
    path = _file(tmp_path, 'uid,questions,concepts,responses\nu,NA,"4,9,-1","1,0,-1"\n')
    assert [(e.item, e.skills) for e in read_log(path, "pykt")] == [("4", ("4",)), ("9", ("9",))]


@pytest.mark.parametrize(
    ("row", "field", "match"),
    [
        ('u,"1","5,6","1"', "concepts", "2 entries but 'responses' has 1"),
        ('u,"1,2","5,6","1,2"', "responses", "entry 2: expected 0 or 1, got '2'"),
    ],
    ids=["ragged", "response"],
)
def test_pykt_malformed(tmp_path: Path, row: str, field: str, match: str) -> None:
    text = f'uid,questions,concepts,responses\nu,"1","5","1"\n{row}\n'
    _bad(_file(tmp_path, text), "pykt", 3, field, match)


# --------------------------------------------------------------------------- generic csv / parquet
def test_csv_mapping_and_epoch_ms(tmp_path: Path) -> None:
    path = _file(tmp_path, "who,what,kcs,ok,timestamp\na,q1,x;y,1,1700000000000\na,q2,x,0,\n")
    log = read_log(path, "csv", mapping={"learner": "who", "item": "what", "skills": "kcs",
                                         "correct": "ok"})
    assert [(e.item, e.skills, e.correct, e.timestamp) for e in log] == [
        ("q1", ("x", "y"), True, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("q2", ("x",), False, None),
    ]


def _generic(rows: int, bad: str) -> str:
    good = [f"l{k},i{k},s,1,2024-01-01T00:00:00Z" for k in range(rows)]
    return "\n".join(["learner,item,skills,correct,timestamp", *good, bad]) + "\n"


@pytest.mark.parametrize(
    ("bad", "field", "match"),
    [
        ("l,i,s,2,", "correct", "expected 0 or 1, got '2'"),
        ("l,i,s,1,yesterday", "timestamp", "ISO 8601 time or epoch milliseconds"),
        ("l,i,,1,", "skills", "non-empty id"),
        ("l,i,a;;b,1,", "skills", "skill ids separated by ';'"),
        ("l,,s,1,", "item", "non-empty id"),
    ],
    ids=["correct", "timestamp", "empty-skills", "empty-skill-part", "item"],
)
def test_csv_malformed(tmp_path: Path, bad: str, field: str, match: str) -> None:
    _bad(_file(tmp_path, _generic(15, bad), name="x.csv"), "csv", 17, field, match)


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "log.parquet"
    pd.DataFrame({"learner": ["a", "b"], "item": ["i", "j"], "skills": ["s", "t"],
                  "correct": [1, 3]}).to_parquet(path)
    error = _bad(path, "parquet", None, "correct", "expected 0 or 1, got '3'")
    assert error.row == 1


# --------------------------------------------------------------------------- read_log
def test_read_log_rejects_unknown_format_missing_file_and_stray_mapping(tmp_path: Path) -> None:
    path = _file(tmp_path, "1\n1\n1\n")
    with pytest.raises(ValueError, match=", ".join(FORMATS)):
        read_log(path, "xlsx")
    with pytest.raises(FileNotFoundError, match=r"answer log not found: .*nope\.csv"):
        read_log(tmp_path / "nope.csv", "dkt3")
    with pytest.raises(ValueError, match="mapping applies only to pybkt, csv, parquet"):
        read_log(path, "dkt3", mapping={"learner": "x"})
    with pytest.raises(ValueError, match="unknown mapping key"):
        read_log(_file(tmp_path, KDD, "kdd.csv"), "pybkt", mapping={"student": "x"})


# --------------------------------------------------------------------------- shared data
@pytest.mark.shared_data
def test_assist2009_dkt_train_split() -> None:
    path = SHARED_DATA / "assist2009-dkt" / "builder_train.csv"
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found: {SHARED_DATA} (public datasets live outside the "
                    "repository)")
    log = read_log(path, "dkt3")
    assert (log.n_learners, len(log), len(log.skill_ids)) == (3361, 407967, 123)
    assert log.learner_ids[0] == "0" and log.learner_ids[-1] == "3360"
    assert int(log.correct.sum()) == 276147
