"""The one error type for malformed answer-log files.

Research logs are large and hand-edited; a bad cell deep in a file must be found without a
debugger, so every reader reports the file, the 1-based line and the field, like a compiler does.
"""

from __future__ import annotations

import os

__all__ = ["LogFormatError"]


class LogFormatError(ValueError):
    """A malformed answer-log file: ``path:line: field 'name': problem``.

    ``line`` is the 1-based line in the file (None where the format has no lines, e.g. Parquet,
    which gives the 0-based data ``row`` instead); ``field`` is the column or line kind at fault
    (None when the problem is the file's structure rather than one value).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        line: int | None,
        field: str | None,
        problem: str,
        *,
        row: int | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.row = row
        if line is not None:
            where = f"{path}:{line}"
        elif row is not None:
            where = f"{path}: row {row}"
        else:
            where = str(path)
        detail = problem if field is None else f"field {field!r}: {problem}"
        super().__init__(f"{where}: {detail}")
