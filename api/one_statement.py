"""PostgreSQL's one-statement answer, run on the event loop.

A learner's answers usually find the learner's state current in the cache. The server then
computes the new state, the response and the event row first, and writes them with one
autocommitted statement (:func:`statement`; a new learner's first answer, which has no cached
state, creates the learner in the same way: :func:`first_statement`): one database round trip,
where the locked path takes four (BEGIN, upsert, insert, COMMIT). The statement runs on an
asyncio psycopg pool, so the request needs no worker thread (no thread hop, no contention of
threads for the interpreter lock).

The statement writes nothing when anything moved since the cache entry was written (another
answer got in first, the learner was erased, the event id is already in the log, or a learner
without a cache entry exists after all); the caller then takes the locked path, which decides
as it always has.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import CTE, Engine, Select, bindparam, cast, insert, select, update
from sqlalchemy.dialects import postgresql

from api.db import events, learners

#: seconds an answer waits for a pooled connection before taking the locked path instead
POOL_WAIT_S = 5.0
#: one-statement answers a worker runs at once (and connections in its pool); the others wait
#: for a slot. Measured with bench/load.py's client on 2 cores, 2 workers: 2 held 750
#: answers/s (p99 29 ms) and reached 775/s when offered 1,000/s, where 10 reached only 640/s:
#: more at once only add PostgreSQL backends and Redis connections contending for the cores
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
    """
    bumped = (update(learners)
              .where(learners.c.tenant_id == bindparam("t"),
                     learners.c.learner_id == bindparam("l"),
                     learners.c.last_seq == bindparam("expected"),
                     learners.c.created_at == bindparam("epoch"))
              .values(last_seq=learners.c.last_seq + 1, last_seen=bindparam("v_received_at"))
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
                       last_seq=1)
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
    """:func:`statement` and :func:`first_statement`, compiled once for PostgreSQL, on their
    own asyncio connection pool.

    The pool is opened and closed by the app's lifespan (:meth:`open`, :meth:`close`): it
    belongs to the event loop that opened it, and each lifespan gets a new one.
    """

    def __init__(self, engine: Engine, size: int = POOL_SIZE) -> None:
        compiled = [stmt.compile(dialect=engine.dialect)
                    for stmt in (first_statement(), statement())]
        self._first_sql, self._sql = (str(c) for c in compiled)
        # constants the statements bind (last_seq's first value, its increment); the rest come
        # per answer
        self._constants = {k: v for c in compiled for k, v in c.params.items() if v is not None}
        self._url = engine.url.set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._size = size
        self._pool: AsyncConnectionPool | None = None
        self._slots: asyncio.Semaphore | None = None

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @property
    def slot(self) -> asyncio.Semaphore:
        """Held for a whole one-statement answer (cache read, statement, cache write), so a
        worker under a burst queues answers here instead of opening ever more connections to
        Redis and reading states that go stale while they wait for the database."""
        if self._slots is None:
            raise RuntimeError("the one-statement pool is not open (the app's lifespan opens it)")
        return self._slots

    async def open(self) -> None:
        # prepared on first use: the server plans the statement once per connection
        pool = AsyncConnectionPool(self._url, min_size=self._size, max_size=self._size, open=False,
                                   timeout=POOL_WAIT_S,
                                   kwargs={"autocommit": True, "prepare_threshold": 0})
        await pool.open()
        self._pool, self._slots = pool, asyncio.Semaphore(self._size)

    async def close(self) -> None:
        pool, self._pool, self._slots = self._pool, None, None
        if pool is not None:
            await pool.close()

    async def apply(self, row: dict[str, Any], *, expected: int, epoch: datetime) -> bool:
        """Append the event ``row`` (the events table's columns) if the learner's ``last_seq``
        is still ``expected`` in the incarnation created at ``epoch``; whether it was.
        ``expected`` 0 is a new learner's first answer, which creates the learner at ``epoch``.

        ``False`` means nothing was written, and also covers a database that cannot be
        reached now: the locked path then tries, and reports the error if it persists. (Were
        the connection lost after the commit, the locked path finds the event id in the log
        and answers with the stored response.)
        """
        params = {**self._constants, **{f"v_{k}": v for k, v in row.items()},
                  "v_skills": json.dumps(row["skills"]), "t": row["tenant_id"],
                  "l": row["learner_id"], "expected": expected, "epoch": epoch}
        if self._pool is None:
            raise RuntimeError("the one-statement pool is not open (the app's lifespan opens it)")
        try:
            async with self._pool.connection() as conn:
                cursor = await conn.execute(self._sql if expected else self._first_sql, params)
                return await cursor.fetchone() is not None
        except (psycopg.errors.UniqueViolation, psycopg.OperationalError, PoolTimeout):
            return False
