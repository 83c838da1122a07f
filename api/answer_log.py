"""The answer log's SQL, for SQLite and PostgreSQL: every statement the service runs on the
``events`` and ``learners`` tables (the one-statement answer aside: :mod:`api.one_statement`).

Statements are built once (building SQLAlchemy constructs per request costs more than running
them) and run on a connection the caller holds: the caller decides the transactions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    bindparam,
    delete,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from api.db import events, learners
from api.store import DIGEST_MODULUS
from engine.events import AnswerEvent

#: a row of the events table, every column
EventRow = Row[*tuple[Any, ...]]
#: a logged answer to check a retry against: event_id, learner_id, item_id, correct,
#: answered_at, received_at, response_ms, response
LoggedAnswer = Row[str, str, str, bool, datetime, datetime, float | None, str]
#: a learner's last_seq, created_at, last_seen, current course and log digest
LearnerRow = Row[int, datetime, datetime, str | None, int]

_TENANT = events.c.tenant_id == bindparam("t")
_EVENTS_OF_LEARNER = (_TENANT, events.c.learner_id == bindparam("l"))
_LEARNER = (learners.c.tenant_id == bindparam("t"), learners.c.learner_id == bindparam("l"))


class NextSeq(NamedTuple):
    """What an answer reads of its learner's row, as :meth:`AnswerLog.next_seq` leaves it."""

    seq: int
    created_at: datetime
    course: str | None
    digest: int
    personalization: bool
    experiment_consent: bool | None
    in_placement: bool

    @property
    def consent(self) -> tuple[bool, bool | None]:
        """(personalization, experiment_consent), as :meth:`api.experiments.
        ExperimentServing.served` takes them."""
        return self.personalization, self.experiment_consent


class AnswerLog:
    """The log's statements for ``engine``'s dialect."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        #: held by whoever writes the log: SQLite has one writer at a time and makes the others
        #: sleep in its busy handler (milliseconds at a time); queueing this process's writers on
        #: a lock is much faster
        self.writer: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.postgres else threading.Lock())
        dialect_insert = postgresql.insert if self.postgres else sqlite.insert
        # take the learner's next seq: creates the learner if new and locks its row until the
        # transaction ends (a retry found later rolls the increment back); a course given
        # becomes the learner's current course, and the current course is returned; the
        # answer's link is chained into the log digest (api.store.chain, in SQL)
        upsert = dialect_insert(learners).values(
            tenant_id=bindparam("t"), learner_id=bindparam("l"), created_at=bindparam("now"),
            last_seen=bindparam("now"), last_seq=1, course=bindparam("course"),
            log_digest=bindparam("link"))
        self._next_seq = upsert.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id"],
            set_={"last_seen": upsert.excluded.last_seen, "last_seq": learners.c.last_seq + 1,
                  "course": func.coalesce(upsert.excluded.course, learners.c.course),
                  "log_digest": (learners.c.log_digest * 2 + upsert.excluded.log_digest)
                  % literal_column(str(DIGEST_MODULUS))},
        ).returning(learners.c.last_seq, learners.c.created_at, learners.c.course,
                    learners.c.log_digest, learners.c.personalization,
                    learners.c.experiment_consent, learners.c.in_placement)
        # GET /next?course=: the learner's current course, set (a new learner is created,
        # without answers); returns last_seq and created_at
        enrol = dialect_insert(learners).values(
            tenant_id=bindparam("t"), learner_id=bindparam("l"), created_at=bindparam("now"),
            last_seen=bindparam("now"), last_seq=0, course=bindparam("course"))
        self._set_course = enrol.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id"],
            set_={"course": enrol.excluded.course},
        ).returning(learners.c.last_seq, learners.c.created_at, learners.c.log_digest)
        # a retry is recognised by its event id, unique per tenant, when it is appended
        self._append = dialect_insert(events).on_conflict_do_nothing(
            index_elements=["tenant_id", "event_id"]).returning(events.c.id)
        self._find = select(events.c.event_id, events.c.learner_id, events.c.item_id,
                            events.c.correct, events.c.answered_at, events.c.received_at,
                            events.c.response_ms, events.c.response).where(_TENANT)
        self._find_all = self._find.where(events.c.event_id.in_(bindparam("es", expanding=True)))
        self._find = self._find.where(events.c.event_id == bindparam("e"))
        self._answers = (select(events.c.item_id, events.c.skills, events.c.correct,
                                events.c.answered_at, events.c.response_ms, events.c.event_id)
                         .where(*_EVENTS_OF_LEARNER, events.c.seq <= bindparam("last_seq"))
                         .order_by(events.c.seq))
        self._answered_after = select(events.c.seq).where(
            *_EVENTS_OF_LEARNER, events.c.answered_at > bindparam("at")).limit(1)
        self._events = select(events).where(*_EVENTS_OF_LEARNER).order_by(events.c.seq)
        self._page = self._events.where(events.c.seq > bindparam("after")).limit(bindparam("n"))
        self._learner = select(learners.c.last_seq, learners.c.created_at,
                               learners.c.last_seen, learners.c.course,
                               learners.c.log_digest).where(*_LEARNER)
        self._learners = select(learners.c.learner_id, learners.c.last_seq,
                                learners.c.created_at, learners.c.log_digest).where(
            learners.c.tenant_id == bindparam("t"))
        # a learner's answers and last answer per skill, counted by the database (the skill
        # ids of each event unnested from its JSON array)
        skill = (func.json_array_elements_text if self.postgres else func.json_each)(
            events.c.skills).table_valued("value", name="skill")
        self._per_skill = (
            select(skill.c.value, func.count(), func.max(events.c.answered_at))
            .select_from(events).join(skill, true())
            .where(*_EVENTS_OF_LEARNER)
            .group_by(skill.c.value))
        self._erase_learner = delete(learners).where(*_LEARNER).returning(learners.c.created_at)
        self._erase_events = delete(events).where(*_EVENTS_OF_LEARNER)

    # ------------------------------------------------------------------ writing
    def next_seq(self, conn: Connection, tenant_id: int, learner_id: str, now: datetime,
                 course: str | None = None, link: int = 0) -> NextSeq:
        """The learner's next seq, creation time, current course (``course``, when given,
        becomes it), log digest with ``link`` chained in (:func:`api.store.chain`), consent and
        placement flags; creates the learner (at ``now``) if new, and locks its row until the
        transaction ends. (One statement reads all an answer needs of the learner's row.)"""
        row = conn.execute(self._next_seq, {"t": tenant_id, "l": learner_id, "now": now,
                                            "course": course, "link": link}).one()
        return NextSeq(*row)

    def set_course(self, conn: Connection, tenant_id: int, learner_id: str, course: str,
                   now: datetime) -> tuple[int, datetime, int]:
        """Make ``course`` the learner's current course, creating the learner (at ``now``,
        without answers) if new; the learner's last_seq, creation time and log digest."""
        last_seq, created_at, digest = conn.execute(
            self._set_course, {"t": tenant_id, "l": learner_id, "now": now,
                               "course": course}).one()
        return last_seq, created_at, digest

    def append(self, conn: Connection, row: dict[str, Any]) -> bool:
        """Append the event ``row`` (the events table's columns); False, writing nothing, when
        its event id is in the log already."""
        return conn.execute(self._append, row).first() is not None

    def erase(self, conn: Connection, tenant_id: int, learner_id: str) -> datetime | None:
        """Delete the learner's row and events; when it was created (None: no such learner)."""
        created_at: datetime | None = conn.execute(
            self._erase_learner, {"t": tenant_id, "l": learner_id}).scalar_one_or_none()
        if created_at is not None:
            conn.execute(self._erase_events, {"t": tenant_id, "l": learner_id})
        return created_at

    def scrub(self) -> None:
        """After an erasure on SQLite, move the write-ahead log into the database file and
        empty it (``wal_checkpoint(TRUNCATE)``): the WAL still holds every page the erased rows
        were ever on, until it is reset. (The database file itself is clean: connections run
        with ``secure_delete``, see :func:`api.db.make_engine`.) Nothing to do on PostgreSQL,
        whose dead rows ``tutor db purge-erased`` removes. Call it outside a transaction,
        holding :attr:`writer`."""
        if self.postgres:
            return
        with self.engine.connect() as conn:
            # on the driver's connection: SQLAlchemy would begin a transaction first, and a
            # checkpoint cannot reset the log from inside one
            dbapi = conn.connection.driver_connection
            assert dbapi is not None
            busy, _, _ = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # a reader (another process) held on to the log past the busy timeout
            logging.getLogger("tutor.api").warning(
                "the write-ahead log could not be emptied after an erasure (busy); the next "
                "erasure or `tutor db purge-erased` will")

    # ------------------------------------------------------------------ reading
    def find(self, conn: Connection, tenant_id: int, event_id: str) -> LoggedAnswer:
        """The logged answer with ``event_id``."""
        return conn.execute(self._find, {"t": tenant_id, "e": event_id}).one()

    def find_all(self, conn: Connection, tenant_id: int,
                 event_ids: Sequence[str]) -> dict[str, LoggedAnswer]:
        """The logged answers among ``event_ids``, by event id."""
        return {row.event_id: row for row in conn.execute(
            self._find_all, {"t": tenant_id, "es": list(event_ids)})}

    def answers(self, conn: Connection, tenant_id: int, learner_id: str,
                last_seq: int) -> list[AnswerEvent]:
        """The learner's answers up to ``last_seq``, in order (what its state folds), with
        the fields the online update saw: the time-aware models need the times."""
        rows = conn.execute(self._answers, {"t": tenant_id, "l": learner_id,
                                            "last_seq": last_seq})
        return [AnswerEvent(learner_id, item_id, tuple(skills), bool(correct),
                            timestamp=answered_at, response_ms=response_ms, event_id=event_id)
                for item_id, skills, correct, answered_at, response_ms, event_id in rows]

    def answered_after(self, conn: Connection, tenant_id: int, learner_id: str,
                       at: datetime) -> bool:
        """Whether the learner has an answer given after ``at`` (its ``answered_at``): a read
        of the learner as of ``at`` cannot then use the state of every answer."""
        return conn.execute(self._answered_after, {"t": tenant_id, "l": learner_id,
                                                   "at": at}).first() is not None

    def events(self, conn: Connection, tenant_id: int, learner_id: str) -> Sequence[EventRow]:
        """The learner's events, in order."""
        return conn.execute(self._events, {"t": tenant_id, "l": learner_id}).all()

    def page(self, conn: Connection, tenant_id: int, learner_id: str, after: int,
             limit: int) -> Sequence[EventRow]:
        """Up to ``limit`` of :meth:`events`, those after seq ``after``."""
        return conn.execute(self._page, {"t": tenant_id, "l": learner_id, "after": after,
                                         "n": limit}).all()

    def learner(self, conn: Connection, tenant_id: int, learner_id: str) -> LearnerRow | None:
        """The learner's row (None: no such learner)."""
        return conn.execute(self._learner, {"t": tenant_id, "l": learner_id}).first()

    def learners(self, conn: Connection,
                 tenant_id: int) -> Sequence[Row[str, int, datetime, int]]:
        """Every learner of the tenant: learner_id, last_seq, created_at and log digest."""
        return conn.execute(self._learners, {"t": tenant_id}).all()

    def per_skill(self, conn: Connection, tenant_id: int,
                  learner_id: str) -> Sequence[Row[str, int, datetime]]:
        """Per skill the learner answered: the skill id, the answers and the last answer's
        time."""
        return conn.execute(self._per_skill, {"t": tenant_id, "l": learner_id}).all()
