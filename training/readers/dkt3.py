"""The 3-line format of the DKT paper (Piech et al. 2015), read and written.

Per learner, three lines: the number of answers; comma-separated integer ids; comma-separated 0/1
correctness. Lines may end with a trailing comma and use Windows line endings; blank lines may
separate blocks. The format has no learner ids, so a learner's id is its block's 0-based index:
a real per-learner id (pyBKT's example conversion puts the sequence *length* in ``user_id``, which
merges different learners). The id on each answer is both the item and its one skill.

The reference split (assist2009, 408k answers) must load in well under a second, so values are
validated with one regular expression over all lines joined and converted by numpy; only when that
fails are lines checked one by one, to name the bad line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from engine.events import AnswerLog
from training.readers.errors import LogFormatError

__all__ = ["read_dkt3", "write_dkt3"]

_ID = r"-?[0-9]{1,18}"  # 18 digits always fit int64, so numpy never saturates silently
_COUNT = re.compile(r"[0-9]+")
# per line kind: (one value, a whole line of them, what a value must be)
_VALUES = {
    kind: (re.compile(value), re.compile(rf"{value}(?:,{value})*"), expected)
    for kind, value, expected in (("ids", _ID, "an integer id"), ("correct", "[01]", "0 or 1"))
}


@dataclass(frozen=True, slots=True)
class _Block:
    """One learner's three lines; ``line`` is the 1-based line of the count."""

    line: int
    count: int
    ids: str
    correct: str


def read_dkt3(path: Path) -> AnswerLog:
    """Read a 3-line file; raises :class:`LogFormatError` naming the line of any malformed value."""
    blocks = _blocks(path, _lines(path))
    answered = [b for b in blocks if b.count]
    joined_ids = _joined(path, answered, "ids")
    ids = (np.fromstring(joined_ids, dtype=np.int64, sep=",") if joined_ids
           else np.empty(0, np.int64))
    bits = _joined(path, answered, "correct")
    correct = (np.frombuffer(bits.encode("ascii"), np.uint8)[0::2] - ord("0")).astype(np.int8)

    # pandas.factorize numbers values in order of first appearance, as AnswerLog.from_columns
    # does, without first turning 408k integers into strings.
    codes, vocab = pd.factorize(ids)
    vocab_ids = np.array([str(v) for v in vocab], dtype=object)
    counts = np.array([b.count for b in answered], dtype=np.int64)
    learner_ids = np.array([str(k) for k, b in enumerate(blocks) if b.count], dtype=object)
    return AnswerLog(
        learner_ids=learner_ids,
        item_ids=vocab_ids,
        skill_ids=vocab_ids,
        learner=np.repeat(np.arange(len(answered), dtype=np.int32), counts),
        item=codes.astype(np.int32),
        correct=correct,
        skill_ptr=np.arange(len(ids) + 1, dtype=np.int64),
        skill_codes=codes.astype(np.int32),
    )


def write_dkt3(log: AnswerLog, path: str | Path) -> None:
    """Write ``log`` as a 3-line file: one block per learner, the skill id on each answer.

    The format holds only learner order, one integer id per answer and correctness: learners
    become their block index, items and optional fields are not written. Raises ``ValueError`` for
    multi-skill answers or non-integer skill ids, which the format cannot hold.
    """
    n_skills = np.diff(log.skill_ptr)
    if np.any(n_skills != 1):
        row = int(np.flatnonzero(n_skills != 1)[0])
        raise ValueError(
            f"write_dkt3: answer {row} has skills {log.skills_of(row)}; the 3-line format "
            "holds exactly one id per answer"
        )
    for skill in log.skill_ids:
        if not re.fullmatch(_ID, skill) or str(int(skill)) != skill:
            raise ValueError(
                f"write_dkt3: skill id {skill!r} is not an integer; the 3-line format holds "
                "integer ids only"
            )
    rank, _ = pd.factorize(log.learner)
    order = np.argsort(rank, kind="stable")
    skills = log.skill_ids[log.skill_codes[order]]
    correct = log.correct[order].astype(str)
    bounds = np.flatnonzero(np.diff(rank[order])) + 1
    lines = []
    for block_skills, block_correct in zip(
        np.split(skills, bounds), np.split(correct, bounds), strict=True
    ):
        if len(block_skills):
            lines += [str(len(block_skills)), ",".join(block_skills), ",".join(block_correct)]
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="ascii")


def _lines(path: Path) -> list[str]:
    """The file's lines, stripped of whitespace, line endings and one trailing comma."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise LogFormatError(path, line, None, "not UTF-8 text") from None
    lines = [line.strip().removesuffix(",") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _blocks(path: Path, lines: list[str]) -> list[_Block]:
    """Cut the lines into learner blocks, checking every count against its lines."""
    blocks: list[_Block] = []
    i = 0
    while i < len(lines):
        if not lines[i]:
            i += 1
            continue
        if not _COUNT.fullmatch(lines[i]):
            raise LogFormatError(
                path, i + 1, "count",
                f"expected the number of answers (a non-negative integer), got {lines[i]!r}",
            )
        count = int(lines[i])
        if count and i + 2 >= len(lines):
            missing = "ids" if i + 1 >= len(lines) else "correct"
            raise LogFormatError(
                path, i + 1, missing,
                f"truncated block: the file ends before this learner's {missing} line",
            )
        # a last learner with no answers may omit its two empty lines
        ids = lines[i + 1] if i + 1 < len(lines) else ""
        correct = lines[i + 2] if i + 2 < len(lines) else ""
        if _n_values(ids) != count:
            raise LogFormatError(
                path, i + 2, "ids",
                f"the count line says {count} answers but this line has {_n_values(ids)} ids",
            )
        if _n_values(correct) != count:
            raise LogFormatError(
                path, i + 3, "correct",
                f"{count} ids but {_n_values(correct)} correctness values",
            )
        blocks.append(_Block(i + 1, count, ids, correct))
        i += 3
    return blocks


def _n_values(line: str) -> int:
    return line.count(",") + 1 if line else 0


def _joined(path: Path, blocks: list[_Block], kind: str) -> str:
    """All ``kind`` lines joined by commas, once every value is valid; else the first bad one.

    The joined string is validated in one pass (fast); a failure is rare, so finding its line
    and value by looking at each line in turn costs nothing in the normal case.
    """
    one, many, expected = _VALUES[kind]
    joined = ",".join(getattr(b, kind) for b in blocks)
    if not joined or many.fullmatch(joined):
        return joined
    line, value = next(
        (block.line + (1 if kind == "ids" else 2), value)
        for block in blocks
        for value in getattr(block, kind).split(",")
        if not one.fullmatch(value)
    )
    raise LogFormatError(path, line, kind, f"expected {expected}, got {value!r}")
