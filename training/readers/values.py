"""Vectorised parsing of raw cells into AnswerLog columns, one function per kind of value.

Cells arrive as pandas Series: strings from CSV files, native types from Parquet; every parser
accepts both, so CSV and Parquet files obey the same rules. A cell that does not parse raises
:class:`BadValue` with its position; the caller knows the file, line and column and turns it into a
:class:`~training.readers.errors.LogFormatError`, so no parser needs to know where cells came from.
Blank cells are missing values: NaN, -1 or None as AnswerLog defines, or errors where required.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api import types

from engine.events import NO_TIMESTAMP

__all__ = [
    "BadValue", "binary", "count", "ids", "number", "optional_text", "order", "skill_lists",
    "text", "timestamp_ns",
]

_MAX_MS = np.iinfo(np.int64).max // 1_000_000  # epoch milliseconds that still fit int64 ns
_INT32_MAX = np.iinfo(np.int32).max


class BadValue(Exception):
    """Cell ``position`` (0-based, in the Series parsed) is malformed: ``problem`` says how."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(problem)
        self.position = position
        self.problem = problem


def text(values: pd.Series) -> pd.Series:
    """The cells as strings, missing ones as ``""``."""
    if types.is_string_dtype(values.dtype) and not values.hasnans:
        return values
    return values.astype(object).where(values.notna(), "").astype(str)


def _blank(values: pd.Series) -> np.ndarray:
    if types.is_string_dtype(values.dtype):
        return text(values).str.strip().eq("").to_numpy()
    return values.isna().to_numpy()


def _fail(values: pd.Series, bad: np.ndarray, expected: str) -> None:
    if np.any(bad):
        position = int(np.flatnonzero(bad)[0])
        raise BadValue(position, f"expected {expected}, got {str(text(values).iloc[position])!r}")


def _numbers(values: pd.Series) -> np.ndarray:
    """Cells as float64, NaN where blank or not a number."""
    if types.is_numeric_dtype(values.dtype):  # Parquet numbers and booleans
        return values.to_numpy(dtype=float, na_value=np.nan)
    cells = text(values).str.strip()
    try:  # arrow's cast is ~30x faster than pandas.to_numeric, but all-or-nothing
        arrow = pa.array(cells)
        return pc.cast(pc.if_else(pc.equal(arrow, ""), None, arrow), pa.float64()).to_numpy(
            zero_copy_only=False)
    except pa.ArrowInvalid:  # some cell is not a number: find which
        return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def ids(values: pd.Series) -> np.ndarray:
    """Required ids, as an object array of strings."""
    _fail(values, _blank(values), "a non-empty id")
    return text(values).to_numpy(dtype=object)


def optional_text(values: pd.Series) -> np.ndarray:
    """Optional strings (session, event id): None where blank."""
    out = text(values).to_numpy(dtype=object)
    out[_blank(values)] = None
    return out


def binary(values: pd.Series) -> np.ndarray:
    """Required 0/1 flags (correctness) as int8; ``1.0`` and booleans count too."""
    if types.is_string_dtype(values.dtype) and values.isin(["0", "1"]).all():
        return values.eq("1").to_numpy().astype(np.int8)
    numbers = _numbers(values)
    _fail(values, ~np.isin(numbers, (0, 1)), "0 or 1")
    return numbers.astype(np.int8)


def count(values: pd.Series) -> np.ndarray:
    """Optional non-negative integers (attempts, hints) as int32; -1 where blank."""
    numbers = _numbers(values)
    blank = _blank(values)
    with np.errstate(invalid="ignore"):
        bad = ~blank & ~((numbers >= 0) & (numbers <= _INT32_MAX) & (numbers % 1 == 0))
    _fail(values, bad, "a non-negative integer")
    return np.where(blank, -1, numbers).astype(np.int32)


def number(values: pd.Series) -> np.ndarray:
    """Optional numbers (response times) as float64; NaN where blank."""
    numbers = _numbers(values)
    _fail(values, ~_blank(values) & np.isnan(numbers), "a number")
    return numbers


def order(values: pd.Series) -> np.ndarray:
    """Required sort keys (order ids, row numbers) as float64."""
    numbers = _numbers(values)
    _fail(values, np.isnan(numbers), "a number to order answers by")
    return numbers


def timestamp_ns(values: pd.Series) -> np.ndarray:
    """Optional times as int64 ns since the epoch (UTC); :data:`NO_TIMESTAMP` where blank.

    A column is either ISO 8601 text (naive times are UTC) or integer epoch milliseconds, the two
    conventions of research logs; a column mixing them is malformed.
    """
    if types.is_datetime64_any_dtype(values.dtype):
        stamps = pd.DatetimeIndex(values)
        stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps.tz_convert("UTC")
        return stamps.as_unit("ns").asi8.copy()
    blank = _blank(values)
    cells = text(values)
    if types.is_numeric_dtype(values.dtype) or cells[~blank].str.fullmatch(r"-?[0-9]{1,18}").all():
        ms = _numbers(values)
        with np.errstate(invalid="ignore"):
            bad = ~blank & ~((np.abs(ms) <= _MAX_MS) & (ms % 1 == 0))
        _fail(values, bad, "integer epoch milliseconds within years 1678-2262")
        # milliseconds in range are exact in float64 (< 2**53); nanoseconds need int64
        out = np.full(len(values), NO_TIMESTAMP, dtype=np.int64)
        out[~blank] = ms[~blank].astype(np.int64) * 1_000_000
        return out
    parsed = pd.to_datetime(cells.where(~blank), format="ISO8601", utc=True, errors="coerce")
    _fail(values, ~blank & parsed.isna().to_numpy(), "an ISO 8601 time or epoch milliseconds")
    return pd.DatetimeIndex(parsed).as_unit("ns").asi8.copy()


def skill_lists(values: np.ndarray, sep: str | None) -> list[tuple[str, ...]]:
    """Skill ids per row: each cell split on ``sep`` (if any), each skill once, in cell order."""
    if sep is None or not any(sep in cell for cell in values):
        return [(cell,) for cell in values]
    out = []
    for position, cell in enumerate(values):
        parts = cell.split(sep)
        if not all(part.strip() for part in parts):
            raise BadValue(position, f"expected skill ids separated by {sep!r}, got {cell!r}")
        out.append(tuple(dict.fromkeys(parts)))
    return out
