"""PostgreSQL's one-statement answer, run on the event loop.

A learner's answers usually find the learner's state current in the cache. The server then
computes the new state, the response and the event row first, and writes them with one
autocommitted statement (:func:`statement`; a new learner's first answer, which has no cached
state, creates the learner in the same way: :func:`first_statement`): one database round trip,
where the locked path takes four (BEGIN, upsert, insert, COMMIT). The statement runs on asyncpg
connections of the event loop, so the request needs no worker thread (no thread hop, no
contention of threads for the interpreter lock).

The statement writes nothing when anything moved since the cache entry was written (another
answer got in first, the learner was erased, the event id is already in the log, or a learner
without a cache entry exists after all); the caller then takes the locked path, which decides
as it always has.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import CTE, Engine, Select, bindparam, cast, false, insert, select, true, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg

from api.db import events, learners

log = logging.getLogger("tutor.api")

#: seconds to connect before an answer takes the locked path instead
CONNECT_TIMEOUT_S = 5.0
#: one-statement answers a worker runs at once (and its connections); the others wait for a
#: slot. Measured with bench/load.py's client on 2 cores, 2 workers (on a psycopg pool, before
#: asyncpg): 2 held 750 answers/s (p99 29 ms) and reached 775/s when offered 1,000/s, where 10
#: reached only 640/s: more at once only add PostgreSQL backends and Redis connections
#: contending for the cores
POOL_SIZE = 2


def statement() -> Select[tuple[int]]:
    """Advance the learner from seq ``expected`` and append the event, or do nothing.

    One statement: the UPDATE waits for the learner's row lock like the locked path's upsert,
    then re-checks ``last_seq`` on the newest row version (READ COMMITTED), so of two
    concurrent answers from the same cached version only the first is applied. The learner
    row's ``created_at`` must be the cached epoch, so a learner erased and created again is
    not written to through an entry of its earlier self. A reused event id fails the INSERT,
    which undoes the UPDATE with it. The event's values are bound as ``v_<column>``
    (SQLAlchemy would add a parameter named like a learners column to the UPDATE's SET).

    The learner must not have opted out of personalization (the server chose the next item
    with the tenant's default policy). The learner's course must still be ``course_was``, the
    one the server chose the next item in (another worker may have changed it, unseen); the
    answer sets it to ``k_course``.

    The learner's log digest must still be ``d_was``, the cached state's, so a state cached
    from a log that is no longer the learner's (the database restored to an earlier point, and
    as many answers since) is never taken for it: the learner's row records the digest with
    the answer chained in, ``d_now`` (:func:`api.store.chain`). One more equality on the row
    the UPDATE reads anyway: no round trip more.
    """
    bumped = (update(learners)
              .where(learners.c.tenant_id == bindparam("t"),
                     learners.c.learner_id == bindparam("l"),
                     learners.c.last_seq == bindparam("expected"),
                     learners.c.created_at == bindparam("epoch"),
                     learners.c.log_digest == bindparam("d_was"),
                     learners.c.course.is_not_distinct_from(bindparam("course_was")),
                     # a learner who opted out of personalization is served the fixed
                     # curriculum, which the locked path chooses (api.experiments)
                     learners.c.personalization.is_(true()),
                     # a placement test's answers are checked against its item (api.placement)
                     learners.c.in_placement.is_(false()))
              .values(last_seq=learners.c.last_seq + 1, last_seen=bindparam("v_received_at"),
                      course=bindparam("k_course"), log_digest=bindparam("d_now"))
              .returning(learners.c.last_seq).cte("bumped"))
    return _append_after(bumped)


def first_statement() -> Select[tuple[int]]:
    """Create the learner, created at ``epoch``, with its first answer, or do nothing.

    A learner with no cached state is usually new. If the row exists after all (a flushed
    cache, or a concurrent first answer that got in first: the INSERT waits for it on the
    unique key), nothing is written and the locked path rebuilds the state from the log.
    """
    created = (postgresql.insert(learners)
               .values(tenant_id=bindparam("t"), learner_id=bindparam("l"),
                       created_at=bindparam("epoch"), last_seen=bindparam("v_received_at"),
                       last_seq=1, course=bindparam("k_course"), log_digest=bindparam("d_now"))
               .on_conflict_do_nothing(index_elements=["tenant_id", "learner_id"])
               .returning(learners.c.last_seq).cte("created"))
    return _append_after(created)


def _append_after(learner_row: CTE) -> Select[tuple[int]]:
    """Append the event (bound as ``v_<column>``) once per row of ``learner_row``: once if the
    learner's row was written, never if not."""
    columns = [c for c in events.c if c.name != "id"]
    appended = (insert(events)
                .from_select([c.name for c in columns],
                             select(*(cast(bindparam(f"v_{c.name}", type_=c.type), c.type)
                                      for c in columns))
                             .select_from(learner_row))
                .returning(events.c.id).cte("appended"))
    return select(appended.c.id)


class OneStatement:
    """:func:`statement` and :func:`first_statement`, compiled once for asyncpg, on
    :data:`POOL_SIZE` connections of the event loop, one per :attr:`slot`.

    asyncpg, not the engine's psycopg: measured alone on this statement, 176 µs of client CPU
    per answer against psycopg's 307 (asyncpg encodes parameters in C). No connection pool
    either: the slots already bound how many answers run at once, so a slot simply takes an
    idle connection (asyncpg's pool, even without its reset query, costs about 70 µs per
    checkout). Connections open on first use and are replaced after an error.

    :meth:`open` and :meth:`close` are called by the app's lifespan: connections belong to the
    event loop that opened them, and each lifespan gets new ones.
    """

    def __init__(self, engine: Engine, size: int = POOL_SIZE) -> None:
        compiled = [stmt.compile(dialect=PGDialect_asyncpg())
                    for stmt in (first_statement(), statement())]
        # the statements' positional parameters ($1, $2, ...) by name, and the constants they
        # bind (last_seq's first value, its increment); the rest come per answer
        (self._first_sql, self._first_names), (self._sql, self._names) = (
            (str(c), c.positiontup or []) for c in compiled)
        self._constants = {k: v for c in compiled for k, v in c.params.items() if v is not None}
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._size = size
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[asyncpg.Connection | None] = []  # None: to be connected

    @property
    def is_open(self) -> bool:
        return self._slots is not None

    @property
    def slot(self) -> asyncio.Semaphore:
        """Held for a whole one-statement answer (cache read, statement, cache write), so a
        worker under a burst queues answers here instead of opening ever more connections to
        Redis and reading states that go stale while they wait for the database. Whoever
        holds it may run :meth:`apply`."""
        if self._slots is None:
            raise RuntimeError("the one-statement connections are not open (the app's lifespan "
                               "opens them)")
        return self._slots

    async def open(self) -> None:
        self._slots, self._idle = asyncio.Semaphore(self._size), [None] * self._size

    async def close(self) -> None:
        idle, self._idle, self._slots = self._idle, [], None
        for conn in idle:
            if conn is not None:
                await conn.close()

    async def apply(self, row: dict[str, Any], *, expected: int, epoch: datetime,
                    course: str | None = None, course_was: str | None = None,
                    digest: int = 0, new_digest: int = 0) -> bool:
        """Append the event ``row`` (the events table's columns) if the learner's ``last_seq``
        is still ``expected`` in the incarnation created at ``epoch``, its course still
        ``course_was`` and its log digest still ``digest``; whether it was. The learner's
        course becomes ``course``, its log digest ``new_digest``. ``expected`` 0 is a new
        learner's first answer, which creates the learner at ``epoch``.
        Call it while holding :attr:`slot`.

        ``False`` means nothing was written, and also covers a database that cannot be
        reached now: the locked path then tries, and reports the error if it persists. (Were
        the connection lost after the commit, the locked path finds the event id in the log
        and answers with the stored response.)
        """
        if not self._idle:
            raise RuntimeError("apply() needs a slot: hold `slot` (opened by the app's lifespan)")
        params = {**self._constants, **{f"v_{k}": v for k, v in row.items()},
                  "v_skills": json.dumps(row["skills"]), "t": row["tenant_id"],
                  "l": row["learner_id"], "expected": expected, "epoch": epoch,
                  "k_course": course, "course_was": course_was, "d_was": digest,
                  "d_now": new_digest}
        sql, names = (self._sql, self._names) if expected else (self._first_sql,
                                                                 self._first_names)
        conn = self._idle.pop()
        try:
            if conn is None or conn.is_closed():
                conn = await asyncpg.connect(self._url, timeout=CONNECT_TIMEOUT_S)
            # prepared on first use (asyncpg's statement cache): planned once per connection
            return await conn.fetchrow(sql, *(params[n] for n in names)) is not None
        except asyncpg.UniqueViolationError:
            return False
        except Exception as exc:
            # the connection is gone or going (OSError, a timeout, AdminShutdown and the other
            # PostgresConnectionErrors, InterfaceError, or InternalClientError from a protocol
            # cut off mid-statement), or the statement failed: it wrote nothing (else the
            # locked path finds the event id and answers with the stored response). A new
            # connection next time, in a known state
            if not isinstance(exc, _CONNECTION_LOST):
                log.warning("the one-statement answer failed (%s); the locked path answers",
                            type(exc).__name__)  # (its message may quote values: not logged)
            _discard(conn)
            conn = None
            return False
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            _discard(conn)
            conn = None
            raise
        finally:
            self._idle.append(conn)


#: errors that say a one-statement connection was lost, or is being closed by the server
_CONNECTION_LOST = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError,
                    asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


def _discard(conn: asyncpg.Connection | None) -> None:
    """Close ``conn`` at once, without waiting for the server (it may be gone)."""
    if conn is not None:
        conn.terminate()
