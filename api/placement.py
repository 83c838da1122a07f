"""Placement tests in the API: an adaptive test (:mod:`engine.placement`) over a course's
calibrated items that sets a new learner's starting state.

**What is stored.** A placement is a row of ``placements`` (course, seed, stopping rule, the
item it gives now and the estimate so far, and once it has ended its result) and the learner's
first answers in the answer log: nothing lives only in memory. Any worker, after any restart,
restores the session from the row and the log in one step
(:meth:`engine.placement.Placement.restore`: no selection is replayed); a read (``GET
/placement``, ``GET /next``, the export) is the row itself. An answer costs one selection over
the course's bank, whose tables are built once per worker and content version and kept in a
cache bounded in bytes (:class:`TablesCache`, ``TUTOR_PLACEMENT_CACHE_BYTES``); a course of
more calibrated items than ``TUTOR_MAX_PLACEMENT_ITEMS`` cannot be placed in. While a test
runs, the learner's row has ``in_placement`` set, so the one-statement answer
(:mod:`api.one_statement`) leaves its answers to the locked path, which checks each one
against the test's item and gives the next one.

**Who can take one.** A learner without answers (new, or created by ``GET /next``): a
placement is where practice starts, so its answers are always the learner's first ones (seq 1
to ``answers``), and a learner who skips it starts from the prior as before. One per learner.

**Placement answers are counted once.** They are answers like any other for the tracer: while
the test runs, each updates the state (the answer's ``mastery`` is the tracer's). When the
test ends, the mastery of every skill the test's items practise is set to the placement's
(:func:`engine.placement.starting_mastery`, through :meth:`engine.tracing.base.Tracer.
with_mastery`), which replaces what those answers had told the tracer: the evidence of the
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
import threading
from collections import OrderedDict
from collections.abc import Hashable, Sequence
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
from api.responses import NextResponse, PlacementResponse
from api.runtimes import Runtime, Runtimes
from api.store import DIGEST_MODULUS, link
from api.tenants import Tenant
from engine.catalog import Catalog, Item
from engine.events import AnswerEvent
from engine.placement import (
    Grid,
    ItemBank,
    Placement,
    PlacementSession,
    StopRule,
    probability,
    starting_mastery,
)
from engine.placement.select import Tables
from engine.selection import Choice, SelectionContext
from engine.tracing import Tracer

#: the test's defaults: about a dozen items, ending earlier once the ability is known to 0.3
DEFAULT_MAX_LENGTH = 12
DEFAULT_SE = 0.3
#: no test ends on precision before this many items (one lucky answer is not a placement)
MIN_LENGTH = 3
#: each item is drawn from the 3 most informative (exposure control: the first items of a
#: course are not every learner's same item)
RANDOMESQUE = 3
#: the quadrature grid of every test (one object: the cached tables are built on it)
GRID = Grid.normal()


@dataclass(frozen=True, slots=True)
class PlacementLimits:
    """What one tenant's placements may cost a worker (``TUTOR_*`` settings, api.settings).

    ``bank_items``: the most calibrated items a test draws from (a course with more cannot be
    placed in: a bank's tables are 4 x 81 x items floats, 2.6 kB an item, and an answer's
    selection is a pass over them); ``cache_bytes``: the banks' tables kept per worker, least
    recently used evicted first (the default holds a dozen banks of the largest size)."""

    bank_items: int = 2_000
    cache_bytes: int = 64 * 1024 * 1024


class TablesCache:
    """Banks' tables by key, bounded by their size in bytes, least recently used evicted
    first; tables larger than the whole budget are not kept. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._kept: OrderedDict[Hashable, Tables] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Tables | None:
        with self._lock:
            tables = self._kept.get(key)
            if tables is not None:
                self._kept.move_to_end(key)
            return tables

    def put(self, key: Hashable, tables: Tables) -> None:
        size = tables.nbytes
        with self._lock:
            old = self._kept.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            if size > self.max_bytes:
                return
            while self.bytes + size > self.max_bytes:
                _, evicted = self._kept.popitem(last=False)
                self.bytes -= evicted.nbytes
            self._kept[key] = tables
            self.bytes += size

    def __len__(self) -> int:
        return len(self._kept)


class PlacementNotFound(LookupError):
    """No placement for the learner, or a course the content does not have."""


class PlacementConflict(ValueError):
    """A placement that cannot be started, answered or stopped as asked."""


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
        #: the banks' tables, by tenant, content version and course (not by stopping rule:
        #: they do not depend on it)
        self.tables = TablesCache(self.limits.cache_bytes)
        # a placement row, with what its learner's row says of it
        self._row = select(placements, learners.c.personalization, learners.c.last_seq).join(
            learners, and_(learners.c.tenant_id == placements.c.tenant_id,
                           learners.c.learner_id == placements.c.learner_id)).where(
            placements.c.tenant_id == bindparam("t"), placements.c.learner_id == bindparam("l"))

    # ------------------------------------------------------------------ requests
    @retry_if_disconnected
    def start(self, tenant: Tenant, learner_id: str, course: str | None, max_length: int,
              se_target: float | None) -> PlacementResponse:
        """Start the learner's placement (see :meth:`begin`); the test as :meth:`show` gives
        it, with its first item."""
        rt = self.runtimes.get(tenant)
        with self.log.writer, self.engine.begin() as conn:
            self.begin(conn, rt, tenant.id, learner_id, course, max_length, se_target,
                       datetime.now(UTC))
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
    def test(self, rt: Runtime, tenant_id: int, course: str | None, max_length: int,
             se_target: float | None) -> Placement:
        """The test over ``course``'s calibrated items (None: every calibrated item) with this
        stopping rule, on the bank's cached tables (:class:`PlacementConflict`: no calibrated
        item, or more than the bank limit)."""
        key = (tenant_id, rt.content_version, course)
        tables = self.tables.get(key)
        if tables is None:
            tables = Tables.build(item_bank(rt.catalog, course, self.limits.bank_items), GRID)
            self.tables.put(key, tables)
        stop = StopRule(min(MIN_LENGTH, max_length), max_length, se_target)
        return Placement(tables.bank, randomesque=RANDOMESQUE, stop=stop, grid=GRID,
                         shared_tables=tables)

    def _session(self, conn: Connection, rt: Runtime, row: Row[Any],
                 last_seq: int) -> PlacementSession:
        """The running test of ``row`` after the learner's answers up to ``last_seq`` (all of
        them placement answers): restored from them and the row's item given now, or replayed
        from its seed for a test started before the row kept that (migration 0008)."""
        answers = [(a.item, a.correct)
                   for a in self.log.answers(conn, row.tenant_id, row.learner_id, last_seq)]
        test = self.test(rt, row.tenant_id, row.course, row.max_length, row.se_target)
        try:
            if row.next_item is not None:
                return test.restore(row.seed, answers, row.next_item)
            return test.resume(row.seed, answers)
        except (ValueError, KeyError) as exc:
            raise PlacementConflict(
                f"learner {row.learner_id!r}'s placement cannot be resumed on the tenant's "
                f"content as it is now ({exc})") from None

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
        pending = row.next_item if row.status == "running" and _placeable(
            rt.catalog, row.course, row.next_item) else None
        return _view(rt, row, pending)

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
        """:func:`_view` of ``row``; a test started before the row kept its item given now
        (migration 0008) is replayed for it."""
        pending = row.next_item
        if row.status == "running" and pending is None:
            pending = self._session(conn, rt, row, row.last_seq).next_item()
        return _view(rt, row, pending)

    def obstacle(self, rt: Runtime, row: Row[Any]) -> str | None:
        """Why the running test ``row`` can no longer run (None: it can; see the module)."""
        if not row.personalization:
            return ("the learner opted out of personalization, and an adaptive test is "
                    "personalization")
        if row.course is not None and row.course not in rt.catalog.courses:
            return f"its course {row.course!r} is no longer in the tenant's content"
        if row.next_item is not None and not _placeable(rt.catalog, row.course, row.next_item):
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
                at is not None and (row.ended_at is None or _utc(row.ended_at) > at)):
            return rt.tracer.fold(given(answers))
        placed = rt.tracer.fold(given(answers[:row.answers]))
        # a tenant's model changed since to one without masteries: folded without the result
        with contextlib.suppress(NotImplementedError):
            placed = rt.tracer.with_mastery(placed, row.mastery)
        return rt.tracer.fold(given(answers[row.answers:]), start=placed)

    # ------------------------------------------------------------------ writing
    def begin(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
              course: str | None, max_length: int, se_target: float | None,
              now: datetime) -> None:
        """Start the learner's placement in ``course`` (None: the learner's current course,
        else the whole content). Call it in a transaction: a refusal rolls it back. The same
        start again (a retry) finds the test it started, and leaves it as it is."""
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
                    previous.course, previous.max_length, previous.se_target) == (
                    course, max_length, se_target):
                return
            raise PlacementConflict(f"learner {learner_id!r} has a placement already "
                                    f"({previous.status}), another one than this")
        seed = secrets.randbits(62)
        # refuses a course without calibration, or with more items than a bank may have
        session = self.test(rt, tenant_id, course, max_length, se_target).start(seed)
        first = session.next_item()
        conn.execute(insert(placements).values(
            tenant_id=tenant_id, learner_id=learner_id, course=course, seed=seed,
            max_length=max_length, se_target=se_target, status="running", started_at=now,
            answers=0, items=[], next_item=first, **_estimate(session)))

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
        if answered_at is not None and answered_at < _utc(row.started_at):
            raise PlacementConflict(
                f"answered_at {answered_at.isoformat()} is before learner {learner_id!r}'s "
                f"placement test started ({_utc(row.started_at).isoformat()}): an answer to "
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
            next_item=pending, **_estimate(session)))
        return Advanced(Served(PlacementItem(_choice(rt, session)), "placement"), None)

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

    def _end(self, conn: Connection, rt: Runtime, row: Row[Any], session: PlacementSession,
             status: str, now: datetime) -> dict[str, float] | None:
        """Record the test's result and clear the learner's flag; the starting masteries
        (None: no answer, no result)."""
        if not session.length:
            self._record(conn, row, status, now, [])
            return None
        estimate = session.estimate()
        mastery = placed_mastery(rt.catalog, session)
        self._record(conn, row, status, now, [item for item, _ in session.answers],
                     theta=float(estimate.theta), se=float(estimate.se), mastery=mastery)
        return mastery

    @staticmethod
    def _record(conn: Connection, row: Row[Any], status: str, now: datetime,
                items: list[str], *, theta: float | None = None, se: float | None = None,
                mastery: dict[str, float] | None = None, reason: str | None = None) -> None:
        """Write the ended test's row (its result: theta, se, mastery; none: no result) and
        clear the learner's flag."""
        conn.execute(update(placements).where(
            placements.c.tenant_id == row.tenant_id,
            placements.c.learner_id == row.learner_id).values(
            status=status, ended_at=now, answers=len(items), items=items, theta=theta, se=se,
            mastery=mastery, next_item=None, reason=reason))
        conn.execute(update(learners).where(
            learners.c.tenant_id == row.tenant_id, learners.c.learner_id == row.learner_id,
            learners.c.in_placement.is_(true())).values(in_placement=false()))


def _estimate(session: PlacementSession) -> dict[str, float]:
    """The session's estimate as the row stores it while the test runs."""
    estimate = session.estimate()
    return {"theta": float(estimate.theta), "se": float(estimate.se)}


def _choice(rt: Runtime, session: PlacementSession) -> Choice:
    """The session's next item as :func:`_given` shows it (the session is not over)."""
    item_id = session.next_item()
    assert item_id is not None
    estimate = session.estimate("eap")
    return _given(rt, item_id, estimate.theta, estimate.se, session.length,
                  session.placement.stop.max_length)


def _given(rt: Runtime, item_id: str, theta: float, se: float, used: int,
           max_length: int) -> Choice:
    """The test's item to give now, with its IRT P(correct) at the estimate and why it is
    given."""
    item = rt.catalog.items[item_id]
    p = float(probability(_bank(item), theta)[0, 0])
    return Choice(item_id, item.skills, p,
                  f"placement test, item {used + 1} of at most {max_length}: the most "
                  f"informative item for the ability estimate so far ({theta:.2f}, standard "
                  f"error {se:.2f})")


def _placeable(catalog: Catalog, course: str | None, item_id: str | None) -> bool:
    """Whether ``item_id`` is one of ``course``'s calibrated items (see :func:`item_bank`)."""
    item = None if item_id is None else catalog.items.get(item_id)
    if item is None or item.difficulty is None:
        return False
    if course is None:
        return True
    return course in catalog.courses and set(item.skills) <= set(catalog.courses[course].skills)


def _bank(*items: Item) -> ItemBank:
    """The bank of calibrated ``items``: discrimination 1 and guessing 0 where the pack gives
    none; content group: the item's first skill."""
    return ItemBank.build([i.discrimination or 1.0 for i in items],
                          [i.difficulty for i in items if i.difficulty is not None],
                          [i.guessing or 0.0 for i in items],
                          groups=[i.skills[0] for i in items], ids=[i.id for i in items])


def item_bank(catalog: Catalog, course: str | None, max_items: int | None = None) -> ItemBank:
    """The calibrated items (with a ``difficulty``) of ``course`` (None: of the catalog) whose
    skills are all the course's (:class:`PlacementConflict`: none, or more than
    ``max_items``)."""
    if course is not None and course not in catalog.courses:
        raise PlacementConflict(f"course {course!r} is no longer in the tenant's content")
    skills = set(catalog.courses[course].skills) if course else set(catalog.skills)
    items = [i for i in catalog.items.values()
             if i.difficulty is not None and set(i.skills) <= skills]
    where = f"course {course!r}" if course else "the content"
    if not items:
        raise PlacementConflict(f"{where} has no calibrated items (items with a difficulty) "
                                "to place with")
    if max_items is not None and len(items) > max_items:
        raise PlacementConflict(
            f"{where} has {len(items)} calibrated items, more than the {max_items} a placement "
            "test may draw from (TUTOR_MAX_PLACEMENT_ITEMS): place in a smaller course")
    return _bank(*items)


def placed_mastery(catalog: Catalog, session: PlacementSession) -> dict[str, float]:
    """Each skill of the test's items, its starting P(mastered) from the session's posterior
    (rounded to 6 digits: what is stored is what a rebuild uses)."""
    bank = session.placement.bank
    per_skill: dict[str, list[int]] = {}
    for i, item_id in enumerate(bank.ids):
        for skill in catalog.items[item_id].skills:
            per_skill.setdefault(skill, []).append(i)
    points, weights = session.posterior
    mastery = starting_mastery(points, weights, {
        s: (bank.a[idx], bank.b[idx]) for s, idx in per_skill.items()})
    return {s: round(p, 6) for s, p in mastery.items()}


def _shown(value: float) -> float:
    """A number as the API shows it: 6 decimals, and never ``-0.0`` (a symmetric posterior's
    mean comes out as -0.0 or 0.0 by rounding noise; JSON clients would print the sign)."""
    return round(float(value), 6) + 0.0


def _view(rt: Runtime, row: Row[Any], pending: str | None) -> PlacementResponse:
    """The placement as its row stores it: while it runs, the estimate so far and ``pending``
    (the item to give now: None, none shown); once ended, its result."""
    running = row.status == "running"
    return {"learner_id": row.learner_id, "course": row.course, "status": row.status,
            "theta": None if row.theta is None else _shown(row.theta),
            "se": None if row.se is None else _shown(row.se),
            "items_used": row.answers, "items": list(row.items or []),
            "max_length": row.max_length, "se_target": row.se_target,
            "mastery": None if row.mastery is None else dict(row.mastery),
            "next": None if not running or pending is None else rt.exercise(_given(
                rt, pending, row.theta, row.se, row.answers, row.max_length)),
            "reason": row.reason,
            "started_at": _utc(row.started_at),
            "ended_at": None if row.ended_at is None else _utc(row.ended_at)}


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


