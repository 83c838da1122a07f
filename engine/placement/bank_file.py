"""Item-bank files: tab-separated, one item a line, under a header naming the columns.

The layout is tcals's (``a b c d Group``, the bank catsim's authors published); ``c``, ``d``,
``Group`` and ``item`` (an id) may be left out (0, 1, one group ``all``, the line's item number)
and other columns are ignored, so a calibration's output (:mod:`engine.placement.calibrate`,
which adds ids and standard errors) reads back as a bank. A bank is either read completely or
not at all: every problem names the file, the line and the field.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from engine.placement.irt import ItemBank

__all__ = ["BankFileError", "read_bank", "write_bank"]

_NUMBERS = ("a", "b", "c", "d")
_DEFAULTS = {"c": 0.0, "d": 1.0}


class BankFileError(ValueError):
    """A bank file that cannot be used; the message names file, line and field."""

    def __init__(self, path: Path, line: int, field: str | None, message: str) -> None:
        where = f"{path}:{line}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")
        self.path, self.line, self.field = path, line, field


def read_bank(path: str | os.PathLike[str]) -> ItemBank:
    """The :class:`ItemBank` in the file at ``path`` (:class:`BankFileError` if malformed)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BankFileError(path, 0, None, "no such file") from None
    except UnicodeDecodeError as e:
        raise BankFileError(path, 0, None, f"not UTF-8 text ({e.reason})") from None
    if not lines or not lines[0].strip():
        raise BankFileError(path, 1, None, "empty: expected a header such as 'a\\tb\\tc\\td\\t"
                                            "Group'")
    header = lines[0].rstrip("\r").split("\t")
    for name in ("a", "b"):
        if name not in header:
            raise BankFileError(path, 1, name, f"missing column (header has {header})")
    column = {name: header.index(name) for name in header}
    values: dict[str, list[float]] = {name: [] for name in _NUMBERS}
    groups: list[str] = []
    ids: list[str] = []
    for number, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        cells = raw.rstrip("\r").split("\t")
        if len(cells) != len(header):
            raise BankFileError(path, number, None, f"{len(cells)} tab-separated fields, the "
                                                    f"header has {len(header)}")
        for name in _NUMBERS:
            if name not in column:
                values[name].append(_DEFAULTS[name])
                continue
            text = cells[column[name]].strip()
            try:
                value = float(text)
            except ValueError:
                raise BankFileError(path, number, name, f"not a number: {text!r}") from None
            if not math.isfinite(value):
                raise BankFileError(path, number, name, f"not a finite number: {text!r}")
            values[name].append(value)
        groups.append(cells[column["Group"]].strip() if "Group" in column else "all")
        ids.append(cells[column["item"]].strip() if "item" in column else str(len(ids) + 1))
        _check_item(path, number, {name: v[-1] for name, v in values.items()})
    if not ids:
        raise BankFileError(path, 2, None, "no items under the header")
    try:
        return ItemBank.build(values["a"], values["b"], values["c"], values["d"], groups=groups,
                              ids=ids)
    except ValueError as e:  # duplicate ids: the rows themselves were checked above
        raise BankFileError(path, 0, "item", str(e)) from None


def _check_item(path: Path, line: int, p: dict[str, float]) -> None:
    if p["a"] <= 0:
        raise BankFileError(path, line, "a", f"discrimination must be above 0, got {p['a']}")
    if not 0 <= p["c"] < 1:
        raise BankFileError(path, line, "c", f"guessing must be in [0, 1), got {p['c']}")
    if not p["c"] < p["d"] <= 1:
        raise BankFileError(path, line, "d", f"upper asymptote must be above c ({p['c']}) and "
                                             f"at most 1, got {p['d']}")


def write_bank(bank: ItemBank, path: str | os.PathLike[str],
               extra: dict[str, list[str]] | None = None) -> None:
    """Write ``bank`` as :func:`read_bank` reads it, with ``extra`` columns (name: one text per
    item) after the parameters."""
    extra = extra or {}
    header = ["item", "a", "b", "c", "d", "Group", *extra]
    rows = ["\t".join(header)]
    for i, item in enumerate(bank.ids):
        rows.append("\t".join([item, *(f"{getattr(bank, n)[i]:.6g}" for n in _NUMBERS),
                               bank.groups[i], *(extra[name][i] for name in extra)]))
    Path(path).write_text("\n".join(rows) + "\n", encoding="utf-8")
