"""What the service logs must never hold: API keys or their hashes, learners' data, SQL
parameters.

The logging calls themselves name no learner, key or value (routes are logged by their
template, ``/v1/learners/{learner_id}/answers``), and the engines are created with
``hide_parameters`` (:func:`api.db.make_engine`), so SQLAlchemy's error messages hold the
statement without its values. What remains is the database's own message: PostgreSQL's
``DETAIL`` (``Key (tenant_id, event_id)=(3, ...) already exists``) and ``CONTEXT`` lines quote
values. :class:`Redact` drops those lines (and any ``[parameters: ...]`` dump of an engine made
elsewhere) from the message and the traceback of every record of the loggers it is installed
on (:func:`install`: the service's and uvicorn's error loggers).
"""

from __future__ import annotations

import logging
import re

#: lines of an error message that quote values: PostgreSQL's DETAIL and CONTEXT, SQLAlchemy's
#: parameter dump
_QUOTING = re.compile(r"^[ \t]*(?:DETAIL|CONTEXT):.*$|^[ \t]*\[parameters: .*$", re.MULTILINE)
#: the loggers that may log an exception of a request
LOGGERS = ("tutor.api", "tutor.store", "uvicorn.error")


def redact(text: str) -> str:
    """``text`` without the lines that quote values."""
    return _QUOTING.sub("[a line quoting values was removed]", text)


class Redact(logging.Filter):
    """Remove the lines that quote values from a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _QUOTING.search(message):
            record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


REDACT = Redact()


def install() -> None:
    """Put :data:`REDACT` on the service's loggers (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if REDACT not in logger.filters:
            logger.addFilter(REDACT)
