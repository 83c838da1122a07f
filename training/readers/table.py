"""Tabular answer-log files (CSV, Parquet) as raw cells that can point back at their file lines.

CSV files are parsed by pyarrow's reader into a pandas frame of Arrow-backed strings: about ten
times faster than pandas' own parser on string columns, and unlike it, it rejects rows with too
few fields instead of padding them silently. Every cell is kept as text, so ids such as ``007``
or ``NA`` survive and each parser in :mod:`training.readers.values` sees the file's own spelling.

File line numbers are needed only for error messages, so they are found lazily, by re-reading
the file with the :mod:`csv` module (quoted fields may span lines, so row + 2 is not enough).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from training.readers.errors import LogFormatError

__all__ = ["MAPPING_KEYS", "Columns", "Table", "read_csv_table", "read_parquet_table",
           "resolve_columns"]

# AnswerEvent's fields, plus "order", the column that sorts a learner's answers
MAPPING_KEYS = ("learner", "item", "skills", "correct", "order", "timestamp", "response_ms",
                "attempt", "hints", "session", "event_id")

# field -> the columns holding it (several only for an item named by problem and step)
Columns = dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Table:
    """A file's cells in file order; ``encoding`` is set for CSV files, whose lines can be named."""

    path: Path
    frame: pd.DataFrame
    encoding: str | None = None

    def error(self, row: int | None, field: str | None, problem: str) -> LogFormatError:
        """The error for data row ``row`` (0-based; None for the header) of this file."""
        if self.encoding is None:
            return LogFormatError(self.path, None, field, problem, row=row)
        wanted = 0 if row is None else row + 1  # record 0 is the header
        line = next(line for k, (line, _) in enumerate(_records(self.path, self.encoding))
                    if k == wanted)
        return LogFormatError(self.path, line, field, problem)


def read_csv_table(path: Path) -> Table:
    """Every cell of a CSV file as text; UTF-8 (with or without BOM), else latin-1.

    ASSISTments exports are often latin-1; a file that is not valid UTF-8 is read as latin-1,
    which never fails and maps every byte to one character.
    """
    encoding = _encoding(path)
    first = next(_records(path, encoding), None)
    if first is None:
        raise LogFormatError(path, None, None, "empty file: expected a header line of column names")
    header_line, header = first
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise LogFormatError(path, header_line, None, f"duplicate column names {duplicated}")
    try:
        arrow = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig"
                                           else encoding),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                strings_can_be_null=False, quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise _structure_error(path, encoding, len(header), exc) from None
    return Table(path, arrow.to_pandas(), encoding)


def read_parquet_table(path: Path) -> Table:
    """A Parquet file's columns with their stored types (no lines: errors name the row)."""
    try:
        frame = pd.read_parquet(path)
    except (pa.ArrowException, OSError) as exc:
        raise LogFormatError(path, None, None, f"not a readable Parquet file ({exc})") from None
    return Table(path, frame.reset_index(drop=True))


def resolve_columns(
    table: Table,
    detected: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str] | None,
    required: Sequence[str],
) -> Columns:
    """The columns to read each field from: ``detected`` ones, overridden by ``mapping``.

    Every column named must exist and every ``required`` field must have one; the errors list the
    file's columns, since the usual cause is a spelling or convention mismatch.
    """
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        raise ValueError(f"unknown mapping key(s) {unknown}; valid keys: {', '.join(MAPPING_KEYS)}")
    columns = {**detected, **{field: (column,) for field, column in mapping.items()}}
    found = ", ".join(map(str, table.frame.columns))
    absent = [(name, field) for field, names in columns.items() for name in names
              if name not in table.frame.columns]
    if absent:
        listed = ", ".join(f"{name!r} (for {field!r})" for name, field in absent)
        raise table.error(None, absent[0][0], f"not in the file: {listed}; columns found: {found}")
    missing = [field for field in required if field not in columns]
    if missing:
        raise table.error(None, None, f"no column for {missing}; columns found: {found}")
    return columns


def _encoding(path: Path) -> str:
    """``utf-8-sig`` if the whole file decodes as UTF-8, else ``latin-1``; read in chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8-sig"


def _records(path: Path, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(1-based first line, fields) of each non-blank CSV record, header first, as pyarrow
    counts them (it skips blank lines too)."""
    with path.open(newline="", encoding=encoding) as file:
        reader = csv.reader(file)
        start = 1
        for fields in reader:
            if fields:
                yield start, fields
            start = reader.line_num + 1


def _structure_error(path: Path, encoding: str, n_fields: int,
                     exc: pa.ArrowInvalid) -> LogFormatError:
    """Name the first record whose field count differs from the header's."""
    for line, fields in _records(path, encoding):
        if len(fields) != n_fields:
            return LogFormatError(path, line, None, f"expected {n_fields} fields as in the header, "
                                                    f"got {len(fields)}")
    return LogFormatError(path, None, None, f"unreadable CSV ({exc})")
