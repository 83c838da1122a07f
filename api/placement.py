"""Placement tests in the API: an adaptive test (:mod:`engine.placement`) over a course's
calibrated items that sets a new learner's starting state.

**What is stored.** A placement is a row of ``placements`` (course, seed, stopping rule, and
once it has ended its result) and the learner's first answers in the answer log: nothing lives
only in memory. The engine's session is a function of its seed and its answers
(:meth:`engine.placement.Placement.resume`), so any worker, after any restart, replays it from
the log and gives the same next item. While a test runs, the learner's row has ``in_placement``
set, so the one-statement answer (:mod:`api.one_statement`) leaves its answers to the locked
path, which checks each one against the test's item and gives the next one.

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
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
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
from engine.catalog import Catalog
from engine.events import AnswerEvent
from engine.placement import (
    ItemBank,
    Placement,
    PlacementSession,
    StopRule,
    probability,
    starting_mastery,
)
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
#: configured tests kept per process (each holds its bank's precomputed tables)
MAX_TESTS = 256


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

    def __init__(self, engine: Engine, log: AnswerLog, runtimes: Runtimes) -> None:
        self.engine = engine
        self.log = log
        self.runtimes = runtimes
        insert_ = postgresql.insert if log.postgres else sqlite.insert
        # a learner starts a placement: created if new (without answers), flagged, locked
        enrol = insert_(learners).values(
            tenant_id=bindparam("t"), learner_id=bindparam("l"), created_at=bindparam("now"),
            last_seen=bindparam("now"), last_seq=0, course=bindparam("course"), in_placement=True)
        self._enrol = enrol.on_conflict_do_update(
            index_elements=["tenant_id", "learner_id"],
            set_={"in_placement": true(),
                  "course": func.coalesce(enrol.excluded.course, learners.c.course)},
        ).returning(learners.c.last_seq, learners.c.course)
        self._tests: dict[tuple[Any, ...], tuple[Catalog, Placement]] = {}
        self._lock = threading.Lock()

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
    def test(self, rt: Runtime, course: str | None, max_length: int,
             se_target: float | None) -> Placement:
        """The configured test over ``course``'s calibrated items (None: every calibrated
        item), built once per content version and stopping rule."""
        key = (id(rt.catalog), course, max_length, se_target)
        with self._lock:
            kept = self._tests.get(key)
        if kept is not None and kept[0] is rt.catalog:
            return kept[1]
        bank = item_bank(rt.catalog, course)
        stop = StopRule(min(MIN_LENGTH, max_length), max_length, se_target)
        test = Placement(bank, randomesque=RANDOMESQUE, stop=stop)
        with self._lock:
            if len(self._tests) >= MAX_TESTS:
                self._tests.clear()
            self._tests[key] = (rt.catalog, test)
        return test

    def _test_of(self, rt: Runtime, row: Row[Any]) -> Placement:
        return self.test(rt, row.course, row.max_length, row.se_target)

    def _session(self, conn: Connection, rt: Runtime, row: Row[Any], tenant_id: int,
                 learner_id: str, last_seq: int) -> PlacementSession:
        """The running test of ``row``, replayed from its seed and the learner's answers up
        to ``last_seq`` (all of them placement answers)."""
        answers = self.log.answers(conn, tenant_id, learner_id, last_seq)
        try:
            return self._test_of(rt, row).resume(row.seed, [(a.item, a.correct)
                                                            for a in answers])
        except (ValueError, KeyError) as exc:
            raise PlacementConflict(
                f"learner {learner_id!r}'s placement cannot be resumed on the tenant's "
                f"content as it is now ({exc}); stop it (POST .../placement/stop)") from None

    # ------------------------------------------------------------------ reading
    def row(self, conn: Connection, tenant_id: int, learner_id: str) -> Row[Any] | None:
        """The learner's placement row (None: none taken)."""
        return conn.execute(select(placements).where(
            placements.c.tenant_id == tenant_id,
            placements.c.learner_id == learner_id)).first()

    def running(self, conn: Connection, tenant_id: int, learner_id: str) -> Row[Any] | None:
        """The learner's placement row if the test is running."""
        row = self.row(conn, tenant_id, learner_id)
        return row if row is not None and row.status == "running" else None

    def view(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
             ) -> PlacementResponse:
        """The learner's placement: status and estimate, and the next item while it runs."""
        row = self.row(conn, tenant_id, learner_id)
        if row is None:
            raise PlacementNotFound(f"learner {learner_id!r} has no placement")
        if row.status != "running":
            return _ended(learner_id, row)
        learner = self.log.learner(conn, tenant_id, learner_id)
        assert learner is not None  # (the placement's foreign key)
        session = self._session(conn, rt, row, tenant_id, learner_id, learner.last_seq)
        estimate = session.estimate()
        choice = _choice(rt, session)
        return {**_ended(learner_id, row), "theta": _shown(estimate.theta),
                "se": _shown(estimate.se), "items_used": session.length,
                "items": [item for item, _ in session.answers],
                "next": None if choice is None else rt.exercise(choice)}

    def next_items(self, conn: Connection, rt: Runtime, tenant_id: int,
                   learner_id: str) -> NextResponse | None:
        """``GET /next`` of a learner taking a placement test: the test's item (one: a test
        gives one at a time, in its own course); None when no test runs."""
        row = self.running(conn, tenant_id, learner_id)
        if row is None:
            return None
        learner = self.log.learner(conn, tenant_id, learner_id)
        assert learner is not None  # (the placement's foreign key)
        choice = _choice(rt, self._session(conn, rt, row, tenant_id, learner_id,
                                           learner.last_seq))
        assert choice is not None  # a test with no item to give has ended
        return {"learner_id": learner_id, "course": row.course, "next": [rt.exercise(choice)]}

    def export(self, conn: Connection, rt: Runtime, tenant_id: int,
               learner_id: str) -> PlacementResponse | None:
        """:meth:`view`, None when the learner took no placement."""
        if self.row(conn, tenant_id, learner_id) is None:
            return None
        return self.view(conn, rt, tenant_id, learner_id)

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
        last_seq, current = conn.execute(self._enrol, {
            "t": tenant_id, "l": learner_id, "now": now, "course": course}).one()
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
        self.test(rt, course, max_length, se_target)  # refuses a course without calibration
        conn.execute(insert(placements).values(
            tenant_id=tenant_id, learner_id=learner_id, course=course,
            seed=secrets.randbits(62), max_length=max_length, se_target=se_target,
            status="running", started_at=now, answers=0))

    def advance(self, conn: Connection, rt: Runtime, row: Row[Any], learner_id: str,
                item_id: str, correct: bool, seq: int, now: datetime) -> Advanced:
        """Take the answer ``seq`` of the running test ``row`` (in the caller's transaction,
        which holds the learner's row): the next item, or the result if the test ends."""
        session = self._session(conn, rt, row, row.tenant_id, learner_id, seq - 1)
        expected = session.next_item()
        if item_id != expected:
            raise PlacementConflict(
                f"learner {learner_id!r} is taking a placement test, which gives item "
                f"{expected!r} now, not {item_id!r} (stop it first: POST "
                f"/v1/learners/{learner_id}/placement/stop)")
        session.answer(item_id, correct)
        choice = _choice(rt, session)
        if choice is not None:
            return Advanced(Served(PlacementItem(choice), "placement"), None)
        return Advanced(None, self._end(conn, rt, row, session, "finished", now))

    def end_early(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
                  now: datetime) -> None:
        """End the learner's running placement with what it has; chains a link into the
        learner's log digest (see the module). In a transaction."""
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
        try:
            session = self._session(conn, rt, row, tenant_id, learner_id, moved.last_seq)
        except PlacementConflict:
            # the content changed under the test: its answers no longer replay, so it ends
            # without a result, and the learner's state is what its answers told the tracer
            answered = self.log.answers(conn, tenant_id, learner_id, moved.last_seq)
            self._record(conn, row, "stopped", now, [a.item for a in answered])
            return
        self._end(conn, rt, row, session, "stopped", now)

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
                items: list[str], **result: Any) -> None:
        """Write the ended test's row (``result``: theta, se, mastery; none: no result) and
        clear the learner's flag."""
        conn.execute(update(placements).where(
            placements.c.tenant_id == row.tenant_id,
            placements.c.learner_id == row.learner_id).values(
            status=status, ended_at=now, answers=len(items), items=items, **result))
        conn.execute(update(learners).where(
            learners.c.tenant_id == row.tenant_id, learners.c.learner_id == row.learner_id,
            learners.c.in_placement.is_(true())).values(in_placement=false()))



def _choice(rt: Runtime, session: PlacementSession) -> Choice | None:
    """The test's next item, with its IRT P(correct) at the current estimate and why it is
    given (None: the test is over)."""
    item_id = session.next_item()
    if item_id is None:
        return None
    bank = session.placement.bank
    estimate = session.estimate("eap")
    p = float(probability(bank, estimate.theta)[0, bank.ids.index(item_id)])
    return Choice(item_id, rt.catalog.items[item_id].skills, p,
                  f"placement test, item {session.length + 1} of at most "
                  f"{session.placement.stop.max_length}: the most informative item for the "
                  f"ability estimate so far ({estimate.theta:.2f}, standard error "
                  f"{estimate.se:.2f})")


def item_bank(catalog: Catalog, course: str | None) -> ItemBank:
    """The calibrated items (with a ``difficulty``) of ``course`` (None: of the catalog) whose
    skills are all the course's; discrimination 1 and guessing 0 where the pack gives none.
    Content group: the item's first skill."""
    if course is not None and course not in catalog.courses:
        raise PlacementConflict(f"course {course!r} is no longer in the tenant's content")
    skills = set(catalog.courses[course].skills) if course else set(catalog.skills)
    items = [i for i in catalog.items.values()
             if i.difficulty is not None and set(i.skills) <= skills]
    if not items:
        raise PlacementConflict(f"{f'course {course!r}' if course else 'the content'} has no "
                                "calibrated items (items with a difficulty) to place with")
    return ItemBank.build([i.discrimination or 1.0 for i in items],
                          [i.difficulty for i in items if i.difficulty is not None],
                          [i.guessing or 0.0 for i in items],
                          groups=[i.skills[0] for i in items], ids=[i.id for i in items])


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


def _ended(learner_id: str, row: Row[Any]) -> PlacementResponse:
    """The placement as its row records it (an ended test's result)."""
    return {"learner_id": learner_id, "course": row.course, "status": row.status,
            "theta": None if row.theta is None else _shown(row.theta),
            "se": None if row.se is None else _shown(row.se),
            "items_used": row.answers, "items": list(row.items or []),
            "max_length": row.max_length, "se_target": row.se_target,
            "mastery": None if row.mastery is None else dict(row.mastery), "next": None,
            "started_at": _utc(row.started_at),
            "ended_at": None if row.ended_at is None else _utc(row.ended_at)}


def _utc(moment: datetime) -> datetime:
    """SQLite hands timestamps back without their zone: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


