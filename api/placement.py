"""Placement tests in the API: an adaptive test (:mod:`engine.placement`) over a course's
calibrated items that sets a new learner's starting state, per skill (method ``skills``, the
default) or through one ability (``theta``): :mod:`api.placement_tests` builds and shows them.

**What is stored.** A placement is a row of ``placements`` (course, method, seed, stopping
rule, the item it gives now and the estimates so far, and once it has ended its result) and
the learner's first answers in the answer log: nothing lives only in memory. Any worker, after
any restart, restores the session from the row and the log in one step (``restore`` of
:class:`engine.placement.SkillPlacement` and :class:`engine.placement.Placement`: no selection
is replayed); a read (``GET /placement``, ``GET /next``, the export) is the row itself. An
answer costs one selection over the course's bank, whose tables (and the course's knowledge
model) are built once per worker and content version and kept in a cache bounded in bytes
(:class:`api.placement_tests.TablesCache`, ``TUTOR_PLACEMENT_CACHE_BYTES``); a course of
more calibrated items than ``TUTOR_MAX_PLACEMENT_ITEMS`` cannot be placed in. While a test
runs, the learner's row has ``in_placement`` set, so the one-statement answer
(:mod:`api.one_statement`) leaves its answers to the locked path, which checks each one
against the test's item and gives the next one.

**Who can take one.** A learner without answers (new, or created by ``GET /next``): a
placement is where practice starts, so its answers are always the learner's first ones (seq 1
to ``answers``), and a learner who skips it starts from the prior as before. One per learner.

**Placement answers are counted once.** They are answers like any other for the tracer: while
the test runs, each updates the state (the answer's ``mastery`` is the tracer's). When the
test ends, the mastery of every skill it estimates is set to the placement's (a ``skills``
test: every skill of the course, its P(known); a ``theta`` test: the skills its items practise,
:func:`engine.placement.starting_mastery`), through :meth:`engine.tracing.base.Tracer.
with_mastery`, which replaces what those answers had told the tracer: the evidence of the
placement answers is in the state once, as the placement's estimate. The state of a placed
learner is therefore

    with_mastery(fold(first ``answers`` answers), mastery), then the later answers folded on

(:meth:`Placements.fold`), which a rebuild from the log (``tutor rebuild-state``) reproduces
exactly. A model that cannot take masteries (DKT) is refused at the start; should the tenant
change to such a model later, its learners' states fold from the log without the placement.

Stopping early ends the test with what it has (no answer: no result, the prior); it changes
the learner's state without an answer, so it chains a link into the learner's log digest
(:func:`api.store.chain`), which makes every state cached before it stale.

**A test that can no longer run is abandoned**, at the learner's next request (``GET
/placement``, ``GET /next`` or an answer), which then goes on as if no test ran: status
``abandoned``, its ``reason``, no result (the learner's state is what the answers told the
tracer, which it already is: nothing to invalidate). That is when its course or its items left
the tenant's content (a pack removed or replaced), or the learner opted out of personalization
(``PUT /consent``): an adaptive test is personalization. The export never resumes or changes a
test: it shows the row as stored.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    false,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from api.answer_log import AnswerLog
from api.db import learners, placements, retry_if_disconnected
from api.experiments import Served
from api.placement_tests import (
    PlacementConflict,
    PlacementLimits,
    PlacementNotFound,
    PlacementTests,
    Session,
    placeable,
    progress,
    result,
    session_choice,
    utc,
    view,
)
from api.responses import NextResponse, PlacementResponse
from api.runtimes import Runtime, Runtimes
from api.store import DIGEST_MODULUS, link
from api.tenants import Tenant
from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.selection import Choice, SelectionContext
from engine.tracing import Tracer

__all__ = ["Advanced", "PlacementConflict", "PlacementItem", "PlacementLimits",
           "PlacementNotFound", "Placements"]


@dataclass(frozen=True, slots=True)
class Advanced:
    """An answer's effect on the running test: who serves the answer's ``next`` (the test's
    next item), or, when the answer ends the test, the starting masteries, which the caller
    writes into the learner's state (its ``next`` is then chosen as usual)."""

    served: Served | None
    mastery: dict[str, float] | None


@dataclass(frozen=True, slots=True)
class PlacementItem:
    """The selection policy of an answer given during a placement: the test's next item."""

    choice: Choice

    def choose(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
               context: SelectionContext) -> list[Choice]:
        return [self.choice]

    def explain_empty(self, tracer: Tracer[Any], state: Any, catalog: Catalog,
                      context: SelectionContext) -> str | None:
        return None


class Placements:
    """The placement tests of every tenant: their SQL, their sessions, their result."""

    def __init__(self, engine: Engine, log: AnswerLog, runtimes: Runtimes,
                 limits: PlacementLimits | None = None) -> None:
        self.engine = engine
        self.log = log
        self.runtimes = runtimes
        self.limits = limits or PlacementLimits()
        self.tests = PlacementTests(self.limits)
        insert_ = postgresql.insert if log.postgres else sqlite.insert
        # a learner starts a placement: created if new (without answers), flagged, locked
        enrol = insert_(learners).values(
            tenant_id=bindparam("t"), learner_id=bindparam("l"), created_at=bindparam("now"),
            last_seen=bindparam("now"), last_seq=0, course=bindparam("course"), in_placement=True)
        self._enrol = enrol.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id"],
            set_={"in_placement": true(),
                  "course": func.coalesce(enrol.excluded.course, learners.c.course)},
        ).returning(learners.c.last_seq, learners.c.course, learners.c.personalization)
        #: the banks' tables and knowledge models, by tenant, content version and course (not
        #: by stopping rule: they do not depend on it)
        self.tables = self.tests.cache
        # a placement row, with what its learner's row says of it
        self._row = select(placements, learners.c.personalization, learners.c.last_seq).join(
            learners, and_(learners.c.tenant_id == placements.c.tenant_id,
                           learners.c.learner_id == placements.c.learner_id)).where(
            placements.c.tenant_id == bindparam("t"), placements.c.learner_id == bindparam("l"))

    # ------------------------------------------------------------------ requests
    @retry_if_disconnected
    def start(self, tenant: Tenant, learner_id: str, course: str | None, method: str,
              max_length: int, se_target: float | None,
              confidence: float | None) -> PlacementResponse:
        """Start the learner's placement (see :meth:`begin`); the test as :meth:`show` gives
        it, with its first item."""
        rt = self.runtimes.get(tenant)
        with self.log.writer, self.engine.begin() as conn:
            self.begin(conn, rt, tenant.id, learner_id, course, datetime.now(UTC),
                       method=method, max_length=max_length, se_target=se_target,
                       confidence=confidence)
        return self.show(tenant, learner_id)

    @retry_if_disconnected
    def show(self, tenant: Tenant, learner_id: str) -> PlacementResponse:
        """The learner's placement (:meth:`view`)."""
        rt = self.runtimes.get(tenant)
        with self.engine.connect() as conn:
            return self.view(conn, rt, tenant.id, learner_id)

    @retry_if_disconnected
    def stop(self, tenant: Tenant, learner_id: str) -> PlacementResponse:
        """End the learner's running placement now (:meth:`end_early`); its result."""
        rt = self.runtimes.get(tenant)
        with self.log.writer, self.engine.begin() as conn:
            self.end_early(conn, rt, tenant.id, learner_id, datetime.now(UTC))
        return self.show(tenant, learner_id)

    # ------------------------------------------------------------------ the test
    def _session(self, conn: Connection, rt: Runtime, row: Row[Any], last_seq: int) -> Session:
        """The running test of ``row`` after the learner's answers up to ``last_seq`` (all of
        them placement answers; :meth:`PlacementTests.session`)."""
        answers = [(a.item, a.correct)
                   for a in self.log.answers(conn, row.tenant_id, row.learner_id, last_seq)]
        return self.tests.session(rt, row, answers)

    # ------------------------------------------------------------------ reading
    def row(self, conn: Connection, tenant_id: int, learner_id: str) -> Row[Any] | None:
        """The learner's placement row, with the learner's ``personalization`` and
        ``last_seq`` (None: none taken)."""
        return conn.execute(self._row, {"t": tenant_id, "l": learner_id}).first()

    def running(self, conn: Connection, tenant_id: int, learner_id: str) -> Row[Any] | None:
        """The learner's placement row if the test is running."""
        row = self.row(conn, tenant_id, learner_id)
        return row if row is not None and row.status == "running" else None

    def view(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
             ) -> PlacementResponse:
        """The learner's placement: status and estimate, and the next item while it runs (a
        test that can no longer run is abandoned first: see the module)."""
        row = self._current(conn, rt, tenant_id, learner_id)
        if row is None:
            raise PlacementNotFound(f"learner {learner_id!r} has no placement")
        return self._shown(conn, rt, row)

    def next_items(self, conn: Connection, rt: Runtime, tenant_id: int,
                   learner_id: str) -> NextResponse | None:
        """``GET /next`` of a learner taking a placement test: the test's item (one: a test
        gives one at a time, in its own course); None when no test runs."""
        row = self._current(conn, rt, tenant_id, learner_id)
        if row is None or row.status != "running":
            return None
        shown = self._shown(conn, rt, row)
        assert shown["next"] is not None  # (a running test that can go on gives an item)
        return {"learner_id": learner_id, "course": row.course, "next": [shown["next"]]}

    def export(self, conn: Connection, rt: Runtime, tenant_id: int,
               learner_id: str) -> PlacementResponse | None:
        """The learner's placement as its row stores it (None: none taken): nothing resumed
        or changed, so that an export works in every state (the item to give now is shown
        while the content still has it)."""
        row = self.row(conn, tenant_id, learner_id)
        if row is None:
            return None
        pending = row.next_item if row.status == "running" and placeable(
            rt.catalog, row.course, row.next_item) else None
        return view(rt, row, pending)

    def _current(self, conn: Connection, rt: Runtime, tenant_id: int,
                 learner_id: str) -> Row[Any] | None:
        """The learner's placement row, a running test that can no longer run abandoned first
        (in a transaction of its own)."""
        row = self.row(conn, tenant_id, learner_id)
        if row is None or row.status != "running" or self.obstacle(rt, row) is None:
            return row
        # (read again where written: the caller's connection may hold an older snapshot)
        with self.log.writer, self.engine.begin() as writing:
            again = self.running(writing, tenant_id, learner_id)
            reason = None if again is None else self.obstacle(rt, again)
            if again is not None and reason is not None:
                self._abandon(writing, again, reason, again.last_seq, datetime.now(UTC))
            return self.row(writing, tenant_id, learner_id)

    def _shown(self, conn: Connection, rt: Runtime, row: Row[Any]) -> PlacementResponse:
        """:func:`api.placement_tests.view` of ``row``; a test started before the row kept its
        item given now (migration 0008) is replayed for it."""
        pending = row.next_item
        if row.status == "running" and pending is None:
            pending = self._session(conn, rt, row, row.last_seq).next_item()
        return view(rt, row, pending)

    def obstacle(self, rt: Runtime, row: Row[Any]) -> str | None:
        """Why the running test ``row`` can no longer run (None: it can; see the module)."""
        if not row.personalization:
            return ("the learner opted out of personalization, and an adaptive test is "
                    "personalization")
        if row.course is not None and row.course not in rt.catalog.courses:
            return f"its course {row.course!r} is no longer in the tenant's content"
        if row.next_item is not None and not placeable(rt.catalog, row.course, row.next_item):
            return (f"its item {row.next_item!r} is no longer a calibrated item of its course "
                    "in the tenant's content")
        return None

    def fold(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
             answers: Sequence[AnswerEvent], at: datetime | None = None) -> Any:
        """The learner's state from its ``answers`` (the log, in order) and its placement's
        result (see the module): what the answers built, with the masteries a placement set.
        With ``at``, the learner as of that moment: only the answers given by then
        (``answered_at`` at or before it) count, and the result only of a test ended by then
        (the answers of one still running then count as any answers do)."""
        row = self.row(conn, tenant_id, learner_id)

        def given(part: Sequence[AnswerEvent]) -> Sequence[AnswerEvent]:
            return part if at is None else [a for a in part
                                            if a.timestamp is None or a.timestamp <= at]

        if row is None or row.mastery is None or (
                at is not None and (row.ended_at is None or utc(row.ended_at) > at)):
            return rt.tracer.fold(given(answers))
        placed = rt.tracer.fold(given(answers[:row.answers]))
        # a tenant's model changed since to one without masteries: folded without the result
        with contextlib.suppress(NotImplementedError):
            placed = rt.tracer.with_mastery(placed, row.mastery)
        return rt.tracer.fold(given(answers[row.answers:]), start=placed)

    # ------------------------------------------------------------------ writing
    def begin(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
              course: str | None, now: datetime, *, method: str = "skills",
              max_length: int = 20, se_target: float | None = None,
              confidence: float | None = None) -> None:
        """Start the learner's placement in ``course`` (None: the learner's current course,
        else the whole content) with ``method`` and this stopping rule. Call it in a
        transaction: a refusal rolls it back. The same start again (a retry) finds the test
        it started, and leaves it as it is."""
        if course is not None and course not in rt.catalog.courses:
            raise PlacementNotFound(f"course {course!r} is not in this tenant's content")
        try:
            rt.tracer.with_mastery(rt.tracer.new_state(), {})
        except NotImplementedError as exc:
            raise PlacementConflict(f"{exc}: a placement cannot set this tenant's learners' "
                                    "starting state") from None
        last_seq, current, personalization = conn.execute(self._enrol, {
            "t": tenant_id, "l": learner_id, "now": now, "course": course}).one()
        if not personalization:
            raise PlacementConflict(
                f"learner {learner_id!r} opted out of personalization (PUT .../consent): an "
                "adaptive placement test is personalization, so none is given")
        if last_seq:
            raise PlacementConflict(
                f"learner {learner_id!r} has {last_seq} answer(s) already: a placement places "
                "a new learner, before any practice")
        course = current if current in rt.catalog.courses else None
        previous = self.row(conn, tenant_id, learner_id)
        if previous is not None:
            if previous.status == "running" and (
                    previous.course, previous.method, previous.max_length, previous.se_target,
                    previous.confidence) == (course, method, max_length, se_target, confidence):
                return
            raise PlacementConflict(f"learner {learner_id!r} has a placement already "
                                    f"({previous.status}), another one than this")
        seed = secrets.randbits(62)
        # refuses a course without calibration, or with more items than a bank may have
        session = self.tests.test(rt, tenant_id, course, method, max_length, se_target,
                                  confidence).start(seed)
        first = session.next_item()
        conn.execute(insert(placements).values(
            tenant_id=tenant_id, learner_id=learner_id, course=course, seed=seed,
            method=method, max_length=max_length, se_target=se_target, confidence=confidence,
            status="running", started_at=now, answers=0, items=[], next_item=first,
            **progress(session)))

    def advance(self, conn: Connection, rt: Runtime, row: Row[Any], learner_id: str,
                item_id: str, correct: bool, seq: int, now: datetime, *,
                course: str | None = None, answered_at: datetime | None = None) -> Advanced:
        """Take the answer ``seq`` of the running test ``row`` (in the caller's transaction,
        which holds the learner's row): the next item, or the result if the test ends. A test
        that can no longer run is abandoned, and the answer is an ordinary one (no ``served``,
        no ``mastery``). Refused (:class:`PlacementConflict`): another item than the test's, a
        ``course`` other than the test's (the test's course is the learner's until it ends),
        an ``answered_at`` before the test started."""
        reason = self.obstacle(rt, row)
        if reason is None:
            try:
                session = self._session(conn, rt, row, seq - 1)
            except PlacementConflict as exc:
                reason = str(exc)
        if reason is not None:
            self._abandon(conn, row, reason, seq - 1, now)
            return Advanced(None, None)
        stop_first = (f"(stop it first: POST /v1/learners/{learner_id}/placement/stop)")
        if course is not None and course != row.course:
            raise PlacementConflict(
                f"learner {learner_id!r} is taking a placement test in "
                f"{'the whole content' if row.course is None else repr(row.course)}, which is "
                f"the learner's course until it ends, not {course!r} {stop_first}")
        if answered_at is not None and answered_at < utc(row.started_at):
            raise PlacementConflict(
                f"answered_at {answered_at.isoformat()} is before learner {learner_id!r}'s "
                f"placement test started ({utc(row.started_at).isoformat()}): an answer to "
                "it cannot be")
        expected = session.next_item()
        if item_id != expected:
            raise PlacementConflict(
                f"learner {learner_id!r} is taking a placement test, which gives item "
                f"{expected!r} now, not {item_id!r} {stop_first}")
        session.answer(item_id, correct)
        pending = session.next_item()
        if pending is None:
            return Advanced(None, self._end(conn, rt, row, session, "finished", now))
        conn.execute(update(placements).where(
            placements.c.tenant_id == row.tenant_id,
            placements.c.learner_id == row.learner_id).values(
            answers=session.length, items=[item for item, _ in session.answers],
            next_item=pending, **progress(session)))
        return Advanced(Served(PlacementItem(session_choice(rt, session, row.method)),
                               "placement"), None)

    def end_early(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
                  now: datetime) -> None:
        """End the learner's running placement with what it has; chains a link into the
        learner's log digest (see the module). In a transaction. A test that can no longer
        run is abandoned instead (without a result)."""
        moved = conn.execute(
            update(learners).where(learners.c.tenant_id == tenant_id,
                                   learners.c.learner_id == learner_id,
                                   learners.c.in_placement.is_(true()))
            .values(in_placement=False, log_digest=(learners.c.log_digest * 2 + link())
                    % literal_column(str(DIGEST_MODULUS)))
            .returning(learners.c.last_seq)).first()
        row = self.row(conn, tenant_id, learner_id)
        if row is None:
            raise PlacementNotFound(f"learner {learner_id!r} has no placement")
        if moved is None or row.status != "running":
            raise PlacementConflict(f"learner {learner_id!r}'s placement has ended already "
                                    f"({row.status})")
        reason = self.obstacle(rt, row)
        if reason is None:
            try:
                session = self._session(conn, rt, row, moved.last_seq)
            except PlacementConflict as exc:
                reason = str(exc)
        if reason is not None:
            self._abandon(conn, row, reason, moved.last_seq, now)
            return
        self._end(conn, rt, row, session, "stopped", now)

    def _abandon(self, conn: Connection, row: Row[Any], reason: str, last_seq: int,
                 now: datetime) -> None:
        """End the running test ``row`` without a result, for ``reason`` (see the module);
        ``last_seq``: the learner's placement answers."""
        answered = self.log.answers(conn, row.tenant_id, row.learner_id, last_seq)
        self._record(conn, row, "abandoned", now, [a.item for a in answered],
                     reason=reason[:512])

    def _end(self, conn: Connection, rt: Runtime, row: Row[Any], session: Session,
             status: str, now: datetime) -> dict[str, float] | None:
        """Record the test's result and clear the learner's flag; the starting masteries
        (None: no answer, no result)."""
        if not session.length:
            self._record(conn, row, status, now, [])
            return None
        ended = result(rt.catalog, session)
        self._record(conn, row, status, now, [item for item, _ in session.answers], **ended)
        mastery: dict[str, float] = ended["mastery"]
        return mastery

    @staticmethod
    def _record(conn: Connection, row: Row[Any], status: str, now: datetime,
                items: list[str], *, theta: float | None = None, se: float | None = None,
                mastery: dict[str, float] | None = None,
                skills: list[dict[str, Any]] | None = None, reason: str | None = None) -> None:
        """Write the ended test's row (its result: theta, se, mastery, the per-skill
        estimates; none: no result) and clear the learner's flag."""
        conn.execute(update(placements).where(
            placements.c.tenant_id == row.tenant_id,
            placements.c.learner_id == row.learner_id).values(
            status=status, ended_at=now, answers=len(items), items=items, theta=theta, se=se,
            mastery=mastery, skills=skills, next_item=None, reason=reason))
        conn.execute(update(learners).where(
            learners.c.tenant_id == row.tenant_id, learners.c.learner_id == row.learner_id,
            learners.c.in_placement.is_(true())).values(in_placement=false()))

