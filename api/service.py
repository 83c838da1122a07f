"""What the API does, without HTTP: record an answer, update the state, choose what is next.

The answer log is the source of truth. Recording an answer is one database transaction that
first takes the learner's next ``seq`` (an upsert that locks the learner's row), so concurrent
answers of one learner, in any worker, are applied one at a time in ``seq`` order; it stores the
event together with the response it produced, so a retry with the same ``event_id`` gets that
same response and counts once. The transaction commits before the response is returned. The
learner's state comes from the cache when its version is the learner's previous ``seq``, and is
otherwise rebuilt from the log inside the same locked transaction, so no update is ever lost.

On PostgreSQL, :meth:`TutorService.answer_async` first tries the one-statement answer of
:mod:`api.one_statement` when the learner's cached state is current: no lock, one round trip, no
worker thread. If anything moved in between, that statement writes nothing and the locked path
runs.

The log's SQL is :mod:`api.answer_log`; the tenants' catalogs and tracers are
:mod:`api.runtimes`; the response shapes are :mod:`api.responses`.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from api import metrics, threads
from api.answer_log import AnswerLog, EventRow, LearnerRow, LoggedAnswer
from api.db import retry_if_disconnected
from api.experiments import ExperimentServing, Served, learner_record
from api.one_statement import OneStatement
from api.placement import PlacementLimits, Placements
from api.responses import (
    AnswerResponse,
    Event,
    Exercise,
    ExportResponse,
    HistoryResponse,
    NextResponse,
    ProgressResponse,
    Recorded,
    ReviewsResponse,
    SkillProgress,
    StateResponse,
)
from api.responses import DueReview as DueReviewResponse
from api.runtimes import Runtime, Runtimes
from api.store import CachedState, DamagedEntry, StateStore, chain, damaged, link, unchain
from api.tenants import Tenant
from engine.catalog import Item
from engine.events import AnswerEvent
from engine.selection import SelectionContext, journey
from engine.selection.spaced import DueReview
from engine.selection.spaced import reviews as due_reviews
from engine.tracing.recall import RecallTracer

RECENT = 10  # item ids remembered per learner for "no repeats" (the policy uses the last few)
MAX_COURSES_NOTED = 500_000  # learners' current courses held per process (see _remember_course)
#: CPU seconds an answer's step (the tracer's update, the choice, the state's bytes) may take,
#: the median of a tenant's last few, to run on the event loop in the one-statement answer (a
#: median: a process's first step compiles kernels, ~0.3 s once): every
#: tenant's requests wait while the loop computes (a `timed` learner of thousands of items, or
#: thousands of items to choose from, cost tens of ms), so a costlier tenant's answers take a
#: thread in their turn (api.threads) instead
LOOP_STEP_CPU_S = 0.002


class NotFound(LookupError):
    """A learner, item or skill that this tenant does not have."""

    details: Any = None  #: which answer of a batch (:func:`_naming`)


class Conflict(ValueError):
    """An event id reused for a different answer."""

    details: Any = None


class Invalid(ValueError):
    """An answer that cannot be taken as it is (a time too far in the future)."""

    details: Any = None


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as the API receives it (from JSON or from an xAPI statement)."""

    item_id: str
    correct: bool
    event_id: str
    answered_at: datetime | None = None
    response_ms: float | None = None
    target_success: float | None = None
    #: the learner's course from now on (None: keep the current one; see TutorService.answer)
    course: str | None = None


@dataclass(frozen=True, slots=True)
class _Step:
    """One answer applied to a cached state: the response, the event row, the new state."""

    response: Recorded
    row: dict[str, Any]
    cached: CachedState


class TutorService:
    def __init__(self, engine: Engine, store: StateStore,
                 max_clock_skew: timedelta = timedelta(minutes=5),
                 placement_limits: PlacementLimits | None = None) -> None:
        self.engine = engine
        self.store = store
        #: how far past the server's clock an answer's time may be (:meth:`_check_time`)
        self.max_clock_skew = max_clock_skew
        #: who serves each learner: opted out, an experiment's arm, or the tenant's default
        self.experiments = ExperimentServing(engine)
        #: each learner's current course as this process last saw it, for the one-statement
        #: answer, which has no database read: its statement checks it against the learner's
        #: row (a stale or missing entry costs a locked answer, never a wrong course)
        self._courses: dict[tuple[int, str], str] = {}
        #: each tenant's last answer steps' CPU seconds (LOOP_STEP_CPU_S)
        self._step_cpu: dict[int, deque[float]] = {}
        self.log = AnswerLog(engine)
        self.runtimes = Runtimes(engine)
        #: learners' placement tests (api.placement): their answers come here too
        self.placements = Placements(engine, self.log, self.runtimes, placement_limits)
        #: PostgreSQL runs an answer whose cached state is current as one statement in one
        #: round trip (answer_async); SQLite, in process, has no round trips to save
        self.one_statement = OneStatement(engine) if self.log.postgres else None

    async def open(self) -> None:
        """Open what the event loop uses (the one-statement pool); the app's lifespan calls it."""
        if self.one_statement is not None:
            await self.one_statement.open()

    async def close(self) -> None:
        if self.one_statement is not None:
            await self.one_statement.close()
        await self.store.aclose()

    # ------------------------------------------------------------------ answers
    async def answer_async(self, tenant: Tenant, learner_id: str,
                           answer: Answer) -> AnswerResponse:
        """:meth:`answer` for the event loop: the one-statement answer when it applies (on
        PostgreSQL, with the learner's state current in the cache and the tenant's content
        loaded), else :meth:`answer` in a worker thread."""
        if answer.answered_at is not None:
            self._check_time(answer, datetime.now(UTC))
        rt = self.runtimes.current(tenant)
        # not while an experiment runs: enrolment needs the locked path's reads and writes
        if (self.one_statement is not None and self.one_statement.is_open and rt is not None
                and not self._costly_steps(tenant.id)
                and answer.item_id in rt.catalog.items
                and (answer.course is None or answer.course in rt.catalog.courses)
                and await self.experiments.none_running(tenant.id, datetime.now(UTC))):
            done = await self._answer_one_statement(rt, tenant, learner_id,
                                                    rt.catalog.items[answer.item_id], answer)
            metrics.ONE_STATEMENT.labels("locked" if done is None else "applied").inc()
            if done is not None:
                return done
        return await threads.run(self.answer, tenant, learner_id, answer, tenant=tenant.id)

    @retry_if_disconnected  # answers are idempotent by event id: safe even after a commit
    def answer(self, tenant: Tenant, learner_id: str, answer: Answer) -> AnswerResponse:
        """Record ``answer`` and return the response (the stored one for a retried event id)."""
        rt = self.runtimes.get(tenant)
        now = datetime.now(UTC)
        try:
            item = self._checked_item(rt, answer, now)
        except (NotFound, Invalid):
            stored = self._logged(tenant.id, answer.event_id)
            if stored is None:
                raise
            return self._replay(stored, learner_id, answer)
        drawn = link()
        with self.log.writer, self.engine.connect() as conn, conn.begin() as transaction:
            learner = self.log.next_seq(conn, tenant.id, learner_id, now, answer.course, drawn)
            seq, created_at, course, digest = learner[:4]
            cached, state = self._state_value(conn, tenant.id, learner_id, _epoch(created_at),
                                              seq - 1, rt, unchain(digest, drawn))
            served = self.experiments.served(conn, tenant, learner_id, now, enrol=True,
                                             last_seq=seq - 1, consent=learner.consent)
            assert served is not None  # (enrol=True)
            placed = None
            placing = self.placements.running(conn, tenant.id, learner_id) \
                if learner.in_placement else None
            # a retry (its event id logged) is answered below with its stored response
            if placing is not None and not self.log.find_all(conn, tenant.id,
                                                             [answer.event_id]):
                advanced = self.placements.advance(conn, rt, placing, learner_id, item.id,
                                                   answer.correct, seq, now,
                                                   course=answer.course,
                                                   answered_at=answer.answered_at)
                served, placed = advanced.served or served, advanced.mastery
            step = self._step(rt, tenant, learner_id, item, answer, now, cached, course,
                              link=drawn, state=state, served=served, placed=placed)
            if not self.log.append(conn, step.row):  # a retry: the event id is in the log
                stored = self.log.find(conn, tenant.id, answer.event_id)
                transaction.rollback()
                return self._replay(stored, learner_id, answer)
        # after the commit, never before: the cache must not run ahead of the log
        self.store.put(tenant.id, learner_id, step.cached)
        self._remember_course(tenant.id, learner_id, course)
        return {**step.response, "duplicate": False}

    async def _answer_one_statement(self, rt: Runtime, tenant: Tenant, learner_id: str,
                                    item: Item, answer: Answer) -> AnswerResponse | None:
        """The answer as one statement, if the cached state is current (or there is none and
        the learner is new); ``None`` (nothing written) when the cache is stale or was lost,
        another answer of the learner got in first, or the event id is in the log already: the
        locked path then decides."""
        one = self.one_statement
        assert one is not None
        async with one.slot:
            now = datetime.now(UTC)
            cached = await self.store.aget(tenant.id, learner_id)
            # the learner's course as this worker last saw it: the statement checks it
            course_was = self._courses.get((tenant.id, learner_id))
            if cached is None:  # a new learner, most likely: its row is created at `now`
                cached = CachedState(_epoch(now), rt.content_version, 0, b"", ())
                state = rt.tracer.new_state()
                course_was = None  # and has no course yet
            elif cached.content_version != rt.content_version:
                return None
            else:
                try:
                    state = rt.tracer.state_from_bytes(cached.state)
                except ValueError as exc:  # damaged: dropped, and the locked path rebuilds
                    damaged(tenant.id, "state", str(exc))
                    await self.store.adrop(tenant.id, learner_id)
                    return None
            course = answer.course or course_was
            drawn = link()
            # the statement checks that the learner has not opted out of personalization, and
            # the caller that no experiment runs: the tenant's default policy serves
            step = self._step(rt, tenant, learner_id, item, answer, now, cached, course,
                              link=drawn, state=state,
                              served=self.experiments.default_for(tenant))
            if not await one.apply(step.row, expected=cached.version,
                                   epoch=_created_at(cached.epoch), course=course,
                                   course_was=course_was, digest=cached.digest,
                                   new_digest=step.cached.digest):
                return None
            await self.store.aput(tenant.id, learner_id, step.cached)
        self._remember_course(tenant.id, learner_id, course)
        return {**step.response, "duplicate": False}

    def _step(self, rt: Runtime, tenant: Tenant, learner_id: str, item: Item, answer: Answer,
              now: datetime, cached: CachedState, course: str | None, *, link: int,
              served: Served, state: Any = None,
              placed: dict[str, float] | None = None) -> _Step:
        """What answering ``item`` after ``cached`` gives: the new state, response and row;
        the next item is chosen within ``course``, the learner's current course. ``link`` is
        the answer's link in the log digest (:func:`api.store.link`, the one the statement
        that appends it chains), ``served`` who chooses the next item (recorded in the row),
        ``state`` the decoded ``cached.state`` when the caller has it, ``placed`` the starting
        masteries of a placement test that this answer ends (:mod:`api.placement`)."""
        began = time.thread_time()
        seq = cached.version + 1
        answered_at = answer.answered_at or now
        event = AnswerEvent(learner_id, item.id, item.skills, answer.correct,
                            timestamp=answered_at,
                            response_ms=answer.response_ms, event_id=answer.event_id)
        if state is None:
            state = rt.tracer.state_from_bytes(cached.state)
        state = rt.tracer.update(state, event)
        if placed is not None:
            state = rt.tracer.with_mastery(state, placed)
        recent = (*cached.recent, item.id)[-RECENT:]
        scope = _scope(rt, course)
        # chosen, and mastery given, at the answer's own time: an app that sends answers late
        # gets what it would have got on time, and simulated learners (training.simulate_http)
        # get what the in-process simulation chooses
        choices, why_none, complete = self._choose(
            rt, tenant, learner_id, state, recent, seq, answer.target_success, scope, n=1,
            at=answered_at, served=served,
            recent_correct=(*served.recent_correct, answer.correct))
        response: Recorded = {
            "learner_id": learner_id,
            "event_id": answer.event_id,
            "seq": seq,
            "correct": answer.correct,
            "mastery": {s: round(p, 6)
                        for s, p in rt.tracer.mastery(state, item.skills,
                                                      at=answered_at).items()},
            "course": scope,
            "next": choices[0] if choices else None,
            "complete": complete,
        }
        if why_none:
            response["reason"] = why_none
        row = {"tenant_id": tenant.id, "learner_id": learner_id, "seq": seq,
               "event_id": answer.event_id, "item_id": item.id, "skills": list(item.skills),
               "correct": answer.correct, "answered_at": event.timestamp, "received_at": now,
               "response_ms": answer.response_ms,
               # orjson: a few µs per answer less than json.dumps, for the same JSON
               "response": orjson.dumps(response).decode(), **served.columns()}
        step = _Step(response, row, CachedState(cached.epoch, rt.content_version, seq,
                                                rt.tracer.state_to_bytes(state), recent,
                                                chain(cached.digest, link)))
        self._step_cpu.setdefault(tenant.id, deque(maxlen=5)).append(
            time.thread_time() - began)
        return step

    def _costly_steps(self, tenant_id: int) -> bool:
        """Whether the tenant's answer steps cost more than :data:`LOOP_STEP_CPU_S` (the
        median of its last five, once there are three)."""
        costs = self._step_cpu.get(tenant_id, ())
        return len(costs) >= 3 and statistics.median(costs) > LOOP_STEP_CPU_S

    def _checked_item(self, rt: Runtime, answer: Answer, now: datetime) -> Item:
        """The answer's item, after checking the answer: :class:`NotFound` for an item the
        tenant does not have, :class:`Invalid` for a time too far in the future."""
        item = rt.catalog.items.get(answer.item_id)
        if item is None:
            raise NotFound(f"item {answer.item_id!r} is not in this tenant's content")
        _check_course(rt, answer.course)
        self._check_time(answer, now)
        return item

    def _check_time(self, answer: Answer, now: datetime) -> None:
        """:class:`Invalid` if the answer's time is later than ``now`` plus the allowed clock
        skew: a time in the future would stand as the learner's last answer until then."""
        if answer.answered_at is not None and answer.answered_at > now + self.max_clock_skew:
            raise Invalid(f"answered_at (xAPI: timestamp) {answer.answered_at.isoformat()} is "
                          f"in the future (server time {now.isoformat(timespec='seconds')}; "
                          f"clocks may be at most {self.max_clock_skew.total_seconds():g} s "
                          "ahead)")

    def _logged(self, tenant_id: int, event_id: str) -> LoggedAnswer | None:
        """The logged answer with ``event_id``, if any. Asked only when an answer fails its
        checks: a retry of an acknowledged answer gets its stored response even when its item
        or course has been removed since, or its time has become invalid."""
        with self.engine.connect() as conn:
            return self.log.find_all(conn, tenant_id, [event_id]).get(event_id)

    @staticmethod
    def _replay(stored: LoggedAnswer, learner_id: str, answer: Answer) -> AnswerResponse:
        """The response first given for this event id, if the retry is the same answer: the
        same learner, item, outcome, time (none both times, or the same) and response time."""
        answered_at = _as_utc(stored.answered_at)
        differs = [name for name, same in (
            ("learner", stored.learner_id == learner_id),
            ("item_id", stored.item_id == answer.item_id),
            ("correct", stored.correct == answer.correct),
            # without a time, an answer is logged as answered when received
            ("answered_at", answered_at == (answer.answered_at or _as_utc(stored.received_at))),
            ("response_ms", stored.response_ms == answer.response_ms)) if not same]
        if differs:
            raise Conflict(f"event_id {answer.event_id} was already used for a different "
                           f"answer ({', '.join(differs)} differ)")
        recorded: Recorded = json.loads(stored.response)
        return {**recorded, "duplicate": True}

    # ------------------------------------------------------------------ batches
    async def answer_batch_async(self, tenant: Tenant, answers: Sequence[tuple[str, Answer]],
                                 what: str = "answer") -> list[AnswerResponse]:
        """:meth:`answer_batch` for the event loop; a batch of one is :meth:`answer_async`
        (one answer is all or nothing by itself), its errors named the same way."""
        if len(answers) == 1:
            learner_id, answer = answers[0]
            with _naming(what, 0, answer.event_id):
                return [await self.answer_async(tenant, learner_id, answer)]
        return await threads.run(self.answer_batch, tenant, answers, what, tenant=tenant.id)

    @retry_if_disconnected  # all or nothing, and idempotent by event id
    def answer_batch(self, tenant: Tenant, answers: Sequence[tuple[str, Answer]],
                     what: str = "answer") -> list[AnswerResponse]:
        """Record ``(learner_id, answer)`` pairs, of one learner or several, all or nothing.

        Every answer is checked before anything is written (items, times, event ids used
        twice for different answers, in the batch or in the log); an error names the first bad
        one (``what``, its index and event id; ``details`` ``{"index", "id"}``). Then all are
        written in one transaction, so a failure midway leaves nothing. An event id already
        in the log gets its stored response (``duplicate``), as does an answer repeated within
        the batch. Each learner's answers are applied in the batch's order; the learners are
        taken in id order, so that two batches lock learners in the same order (no deadlock).
        """
        rt = self.runtimes.get(tenant)
        now = datetime.now(UTC)
        items: list[Item | None] = []
        first: dict[str, int] = {}  # event id -> index of its first answer in the batch
        for i, (learner_id, answer) in enumerate(answers):
            with _naming(what, i, answer.event_id):
                try:
                    items.append(self._checked_item(rt, answer, now))
                except (NotFound, Invalid):
                    if self._logged(tenant.id, answer.event_id) is None:
                        raise
                    items.append(None)  # acknowledged before: answered with its stored response
                j = first.setdefault(answer.event_id, i)
                if j != i and (answers[j][0], answers[j][1]) != (learner_id, answer):
                    raise Conflict(f"event_id {answer.event_id} is also {what} {j}, a "
                                   "different answer")
        for _ in range(5):  # another try finds the event id that got in first (committed)
            written = self._write_batch(rt, tenant, answers, items, first, now, what)
            if written is not None:
                break
        else:
            raise RuntimeError("a batch's event ids kept being logged by other requests")
        results, states = written
        # after the commit, never before: the cache must not run ahead of the log
        for learner_id, cached in states.items():
            self.store.put(tenant.id, learner_id, cached)
        return results

    def _write_batch(self, rt: Runtime, tenant: Tenant, answers: Sequence[tuple[str, Answer]],
                     items: Sequence[Item | None], first: dict[str, int], now: datetime, what: str,
                     ) -> tuple[list[AnswerResponse], dict[str, CachedState]] | None:
        """The transaction of :meth:`answer_batch`: the responses, and the learners' new
        states to cache; ``None`` (nothing written) if an event id was logged by another
        request between the look-up and the append: the caller tries again, and finds it."""
        results: list[AnswerResponse | None] = [None] * len(answers)
        states: dict[str, CachedState] = {}
        with self.log.writer, self.engine.connect() as conn, conn.begin() as transaction:
            logged = self.log.find_all(conn, tenant.id, list(first))
            for event_id, i in first.items():
                if event_id in logged:
                    with _naming(what, i, event_id):
                        results[i] = self._replay(logged[event_id], *answers[i])
            new = sorted((learner_id, i) for event_id, i in first.items()
                         if event_id not in logged for learner_id in (answers[i][0],))
            for learner_id, i in new:
                drawn = link()
                learner = self.log.next_seq(conn, tenant.id, learner_id, now,
                                            answers[i][1].course, drawn)
                seq, created_at, course, digest = learner[:4]
                if learner.in_placement:
                    with _naming(what, i, answers[i][1].event_id):
                        raise Conflict(f"learner {learner_id!r} is taking a placement test: "
                                       "send its answers one at a time")
                cached = states.get(learner_id) or self._state(
                    conn, tenant.id, learner_id, _epoch(created_at), seq - 1, rt,
                    unchain(digest, drawn))
                served = self.experiments.served(conn, tenant, learner_id, now, enrol=True,
                                                 last_seq=seq - 1)
                assert served is not None  # (enrol=True)
                item = items[i]
                assert item is not None  # (only a logged answer's item may be gone)
                step = self._step(rt, tenant, learner_id, item, answers[i][1], now, cached,
                                  course, link=drawn, served=served)
                if not self.log.append(conn, step.row):
                    transaction.rollback()
                    return None
                results[i] = {**step.response, "duplicate": False}
                states[learner_id] = step.cached
        out: list[AnswerResponse] = []
        for i, (_, answer) in enumerate(answers):
            done = results[first[answer.event_id]]
            assert done is not None
            out.append(done if first[answer.event_id] == i else {**done, "duplicate": True})
        return out, states

    # ------------------------------------------------------------------ state
    def _state(self, conn: Connection, tenant_id: int, learner_id: str, epoch: int,
               last_seq: int, rt: Runtime, digest: int) -> CachedState:
        """The learner's state at ``last_seq``: the cached entry if it is current (the
        learner's incarnation ``epoch``, the content version, ``last_seq`` and the log
        ``digest`` of the learner's row all match) and sound, else a rebuild from the log,
        which replaces the entry."""
        return self._state_value(conn, tenant_id, learner_id, epoch, last_seq, rt, digest)[0]

    def _state_value(self, conn: Connection, tenant_id: int, learner_id: str, epoch: int,
                     last_seq: int, rt: Runtime, digest: int) -> tuple[CachedState, Any]:
        """:meth:`_state`, and the state it holds, decoded."""
        cached = self.store.get(tenant_id, learner_id)
        if (cached is not None and cached.digest == digest
                and cached.order() == (epoch, rt.content_version, last_seq)):
            try:
                return cached, rt.tracer.state_from_bytes(cached.state)
            except ValueError as exc:  # damaged bytes: rebuilt (and so replaced)
                damaged(tenant_id, "state", str(exc))
        return self._rebuild(conn, tenant_id, learner_id, epoch, last_seq, rt, digest)

    def _rebuild(self, conn: Connection, tenant_id: int, learner_id: str, epoch: int,
                 last_seq: int, rt: Runtime, digest: int) -> tuple[CachedState, Any]:
        """The learner's state folded from the log up to ``last_seq``, cached over whatever
        entry there is (a rebuild always wins: :meth:`api.store.StateStore.put`)."""
        answers = self.log.answers(conn, tenant_id, learner_id, last_seq)
        state = self.placements.fold(conn, rt, tenant_id, learner_id, answers)
        rebuilt = CachedState(epoch, rt.content_version, last_seq,
                              rt.tracer.state_to_bytes(state),
                              tuple(a.item for a in answers[-RECENT:]), digest)
        self.store.put(tenant_id, learner_id, rebuilt, rebuilt=True)
        return rebuilt, state

    def current_state(self, tenant: Tenant, learner_id: str) -> tuple[Runtime, CachedState]:
        """A learner's state for reading; :class:`NotFound` if the learner never answered."""
        rt = self.runtimes.get(tenant)
        with self.engine.connect() as conn:
            learner = self._learner(conn, tenant.id, learner_id)
            return rt, self._state(conn, tenant.id, learner_id, _epoch(learner.created_at),
                                   learner.last_seq, rt, learner.log_digest)

    # ------------------------------------------------------------------ selection
    def _choose(self, rt: Runtime, tenant: Tenant, learner_id: str, state: Any,
                recent: Sequence[str], seq: int, target: float | None, course: str | None,
                n: int, at: datetime, served: Served, recent_correct: tuple[bool, ...],
                ) -> tuple[list[Exercise], str | None, bool]:
        """``served``'s policy's choices as JSON, why there are none when the list is empty,
        and whether the course is complete. The target is the arm's (or the tenant's default
        policy's options') if it sets one, else ``target`` (the request's), else the tenant's;
        ``recent_correct`` are the outcomes of the last answers (the fixed curriculum counts
        streaks). The policies of personalized learners are wrapped by
        :func:`engine.selection.journey.choose`: nothing in a complete course, and a course
        locked by prerequisites it does not teach offers those (``outside_course``).

        The tie-break seed is the learner's answer count: the same state gives the same
        choice, and a learner stuck on ties does not see the same item forever. Predictions
        are for ``at`` (time-aware tracers need it): an answer's time for the ``next`` of its
        response, the time of the request for ``GET /next``.
        """
        if served.target is not None:
            target = served.target
        context = SelectionContext(
            recent_items=tuple(recent), course=course,
            recent_correct=recent_correct[-len(recent):] if recent else (),
            target_success=target if target is not None else tenant.target_success,
            n=n, seed=seq, learner=learner_id, at=at)
        if not served.journey:
            choices = served.policy.choose(rt.tracer, state, rt.catalog, context)
            if choices:
                return [rt.exercise(c) for c in choices], None, False
            return [], served.policy.explain_empty(rt.tracer, state, rt.catalog,
                                                   context), False
        found = journey.choose(served.policy, rt.tracer, state, rt.catalog, context)
        exercises = [rt.exercise(c) for c in found.choices]
        if found.outside_course:
            exercises = [{**e, "outside_course": True} for e in exercises]
        return exercises, found.reason, found.complete

    @retry_if_disconnected
    def next_items(self, tenant: Tenant, learner_id: str, n: int, course: str | None,
                   target: float | None, at: datetime | None = None) -> NextResponse:
        """Recommendations for a learner (a learner never seen starts from the priors), within
        ``course``, which becomes the learner's current course (a new learner is created for
        it, without answers), or else within the learner's current course; the placement
        test's item while the learner takes one. Chosen for the moment ``at`` (default: now;
        :class:`Invalid` past the allowed clock skew), from every answer recorded."""
        rt = self.runtimes.get(tenant)
        _check_course(rt, course)
        cached: CachedState | None = None
        now = datetime.now(UTC)
        if at is not None and at > now + self.max_clock_skew:
            raise Invalid(f"at {at.isoformat()} is in the future (server time "
                          f"{now.isoformat(timespec='seconds')}; clocks may be at most "
                          f"{self.max_clock_skew.total_seconds():g} s ahead)")
        with self.engine.connect() as conn:
            learner = self.log.learner(conn, tenant.id, learner_id)
            current = None if learner is None else learner.course
            # a learner taking a placement test is given the test's item (api.placement)
            placing = None if learner is None else self.placements.next_items(
                conn, rt, tenant.id, learner_id)
            if placing is not None:
                return placing
            if learner is not None and course in (None, current):
                cached = self._state(conn, tenant.id, learner_id, _epoch(learner.created_at),
                                     learner.last_seq, rt, learner.log_digest)
            served = self.experiments.served(conn, tenant, learner_id, now, enrol=False)
        if served is None:  # the first exercise served while an experiment runs: enrol
            with self.log.writer, self.engine.begin() as conn:
                served = self.experiments.served(conn, tenant, learner_id, now, enrol=True)
            assert served is not None  # (enrol=True)
        if course is not None and course != current:
            with self.log.writer, self.engine.begin() as conn:
                last_seq, created_at, digest = self.log.set_course(
                    conn, tenant.id, learner_id, course, datetime.now(UTC))
                cached = self._state(conn, tenant.id, learner_id, _epoch(created_at),
                                     last_seq, rt, digest)
            current = course
        self._remember_course(tenant.id, learner_id, current)
        if cached is None:
            cached = CachedState(0, rt.content_version, 0,
                                 rt.tracer.state_to_bytes(rt.tracer.new_state()), ())
        state = rt.tracer.state_from_bytes(cached.state)
        scope = _scope(rt, current)
        choices, why_none, complete = self._choose(
            rt, tenant, learner_id, state, cached.recent, cached.version, target, scope, n,
            at=at or now, served=served, recent_correct=served.recent_correct)
        response: NextResponse = {"learner_id": learner_id, "course": scope, "next": choices,
                                  "complete": complete}
        if why_none:
            response["reason"] = why_none
        return response

    def _remember_course(self, tenant_id: int, learner_id: str, course: str | None) -> None:
        """Note the learner's current course for the one-statement answers of this process."""
        key = (tenant_id, learner_id)
        if course is None:
            self._courses.pop(key, None)
            return
        if len(self._courses) >= MAX_COURSES_NOTED and key not in self._courses:
            self._courses.clear()  # only costs the next answer of each a locked path
        self._courses[key] = course

    @retry_if_disconnected
    def progress(self, tenant: Tenant, learner_id: str, course: str | None,
                 at: datetime | None = None) -> ProgressResponse:
        """The learner's progress in ``course`` (default: the learner's current course, else
        the whole content): skills mastered, by the policy's threshold, of the course's
        skills, at ``at`` (default: now). A learner never seen starts from the priors, like
        :meth:`next_items`."""
        rt, state, course = self._reading(tenant, learner_id, course, at)
        skills = rt.catalog.courses[course].skills if course else tuple(rt.catalog.skills)
        mastery = rt.tracer.mastery(state, skills, at=at or datetime.now(UTC))
        threshold = self._threshold(tenant)
        per_skill: list[SkillProgress] = [
            {"skill_id": s, "name": rt.catalog.skills[s].name, "mastery": round(mastery[s], 6),
             "mastered": mastery[s] >= threshold} for s in skills]
        mastered = sum(1 for p in per_skill if p["mastered"])
        return {"learner_id": learner_id, "course": course, "mastered": mastered,
                "total": len(skills), "complete": mastered == len(skills),
                "mastery_threshold": threshold, "skills": per_skill}

    @retry_if_disconnected
    def reviews(self, tenant: Tenant, learner_id: str, course: str | None, retention: float,
                at: datetime | None = None) -> ReviewsResponse:
        """The learner's reviews in ``course`` (default as :meth:`progress`) at ``at``
        (default: now): every learned skill with the time its predicted recall falls to
        ``retention``, due ones first (for app notifications). Only a model with memory (one
        whose knowledge fades between practices) has any; with another the list is empty and
        ``memory`` false says why."""
        rt, state, course = self._reading(tenant, learner_id, course, at)
        at = at or datetime.now(UTC)
        due = due_reviews(rt.tracer, state, rt.catalog, at=at, retention=retention,
                          mastery_threshold=self._threshold(tenant), course=course)
        return {"learner_id": learner_id, "course": course, "at": at, "retention": retention,
                "memory": isinstance(rt.tracer, RecallTracer),
                "reviews": [_due_review(rt, r) for r in due]}

    def _threshold(self, tenant: Tenant) -> float:
        """The mastery at which the tenant's default policy counts a skill learned."""
        return journey.levels(self.experiments.default_for(tenant).policy)[0]

    def _reading(self, tenant: Tenant, learner_id: str, course: str | None,
                 at: datetime | None = None) -> tuple[Runtime, Any, str | None]:
        """For a read of a learner: the runtime, the learner's state (a learner never seen:
        the prior; with ``at``, the learner as of then: :meth:`_state_as_of`) and the course
        to read (``course``, else the learner's current one, else None: the whole content);
        :class:`NotFound` for a course the content lacks."""
        rt = self.runtimes.get(tenant)
        _check_course(rt, course)
        with self.engine.connect() as conn:
            learner = self.log.learner(conn, tenant.id, learner_id)
            if learner is None:
                return rt, rt.tracer.new_state(), course
            if at is None:
                _, state = self._state_value(
                    conn, tenant.id, learner_id, _epoch(learner.created_at), learner.last_seq,
                    rt, learner.log_digest)
            else:
                state = self._state_as_of(conn, rt, tenant.id, learner_id, learner, at)
        return rt, state, course or _scope(rt, learner.course)

    def _state_as_of(self, conn: Connection, rt: Runtime, tenant_id: int, learner_id: str,
                     learner: LearnerRow, at: datetime) -> Any:
        """The learner as of ``at``: the answers given by then (``answered_at`` at or before
        it) and the result of a placement ended by then, nothing later (a read of the past
        must not know the future). When nothing came after ``at`` (the usual read, of now or
        later) that is the cached state of every answer; else it is folded from the log up to
        ``at`` (:meth:`Placements.fold`), and not cached: the cache holds the latest state."""
        placement = self.placements.row(conn, tenant_id, learner_id)
        later = (self.log.answered_after(conn, tenant_id, learner_id, at)
                 or (placement is not None and placement.ended_at is not None
                     and _as_utc(placement.ended_at) > at))
        if not later:
            return self._state_value(conn, tenant_id, learner_id, _epoch(learner.created_at),
                                     learner.last_seq, rt, learner.log_digest)[1]
        answers = self.log.answers(conn, tenant_id, learner_id, learner.last_seq)
        return self.placements.fold(conn, rt, tenant_id, learner_id, answers, at=at)

    @retry_if_disconnected
    def state(self, tenant: Tenant, learner_id: str) -> StateResponse:
        rt, cached = self.current_state(tenant, learner_id)
        mastery = rt.tracer.mastery(rt.tracer.state_from_bytes(cached.state),
                                    at=datetime.now(UTC))
        with self.engine.connect() as conn:
            learner = self._learner(conn, tenant.id, learner_id)
            per_skill = self.log.per_skill(conn, tenant.id, learner_id)
        answers = {s: n for s, n, _ in per_skill}
        last = {s: seen for s, _, seen in per_skill}
        return {
            "learner_id": learner_id,
            "answers": learner.last_seq,
            "created_at": _utc(learner.created_at),
            "last_seen": _utc(learner.last_seen),
            "skills": [{"skill_id": s, "name": rt.catalog.skills[s].name,
                        "mastery": round(p, 6), "answers": answers.get(s, 0),
                        "last_answered_at": _utc(last.get(s))}
                       for s, p in mastery.items()],
        }

    # ------------------------------------------------------------------ history, export, erase
    @retry_if_disconnected
    def history(self, tenant: Tenant, learner_id: str, after: int,
                limit: int) -> HistoryResponse:
        with self.engine.connect() as conn:
            self._learner(conn, tenant.id, learner_id)
            rows = self.log.page(conn, tenant.id, learner_id, after, limit + 1)
        page = [_event(r) for r in rows[:limit]]
        return {"learner_id": learner_id, "events": page,
                "next_after": page[-1]["seq"] if len(rows) > limit else None}

    @retry_if_disconnected
    def export(self, tenant: Tenant, learner_id: str) -> ExportResponse:
        """Everything held about the learner: profile, every answer, and the derived state."""
        state = self.state(tenant, learner_id)
        with self.engine.connect() as conn:
            rows = self.log.events(conn, tenant.id, learner_id)
            consent, assigned, experiments = learner_record(conn, tenant.id, learner_id)
            placement = self.placements.export(conn, self.runtimes.get(tenant), tenant.id,
                                               learner_id)
        return {"learner_id": learner_id, "tenant": tenant.name,
                "exported_at": datetime.now(UTC),
                "profile": {"created_at": state["created_at"], "last_seen": state["last_seen"],
                            "answers": state["answers"]},
                "consent": consent,
                "experiments": assigned,
                "state": state["skills"],
                "events": [{**_event(r), "response": json.loads(r.response),
                            "policy": r.policy, "experiment": experiments.get(r.experiment_id),
                            "arm": r.arm} for r in rows],
                "placement": placement}

    @retry_if_disconnected
    def erase(self, tenant: Tenant, learner_id: str) -> None:
        """Delete the learner's events, row and cached state (the right to erasure).

        The cache entry is erased inside the transaction that deletes the rows, before it
        commits: if the state store cannot be reached, its error rolls the deletion back and the
        whole erasure can be retried. (Rows deleted first would leave a retry nothing to find,
        and the cached state behind.) So is one that met a connection the database had closed:
        nothing was deleted. (Were the connection lost in the COMMIT itself, the retry finds
        nothing to erase: :class:`NotFound`, and the learner is gone.)
        """
        with self.log.writer:
            with self.engine.begin() as conn:
                created_at = self.log.erase(conn, tenant.id, learner_id)
                if created_at is None:
                    raise NotFound(f"learner {learner_id!r} not found")
                # a tombstone, so that an answer committed just before cannot cache its
                # state again; the learner's row stays locked until the commit, so no answer
                # gets in between
                self.store.erase(tenant.id, learner_id, _epoch(created_at))
            self._courses.pop((tenant.id, learner_id), None)
            self.log.scrub()  # SQLite: the write-ahead log, too, forgets the learner

    def rebuild_all(self, tenant: Tenant) -> Counter[str]:
        """Recompute every learner's state from the log, and write it over any cache entry
        that is not exactly it; what each entry was, counted: ``current`` (kept), ``missing``,
        ``stale`` (of another seq, log, learner incarnation or content version), ``wrong``
        (current by its fields, another state: no cache entry could be trusted to be right
        without this), ``damaged <kind>`` (:func:`api.store.damaged`'s kinds)."""
        rt = self.runtimes.get(tenant)
        found: Counter[str] = Counter()
        with self.engine.connect() as conn:
            for learner_id, last_seq, created_at, digest in self.log.learners(conn, tenant.id):
                epoch = _epoch(created_at)
                try:
                    cached = self.store.inspect(tenant.id, learner_id)
                except DamagedEntry as exc:
                    cached, kind = None, f"damaged {exc.kind}"
                else:
                    kind = "missing" if cached is None else ""
                answers = self.log.answers(conn, tenant.id, learner_id, last_seq)
                state = rt.tracer.state_to_bytes(
                    self.placements.fold(conn, rt, tenant.id, learner_id, answers))
                rebuilt = CachedState(epoch, rt.content_version, last_seq, state,
                                      tuple(a.item for a in answers[-RECENT:]), digest)
                if cached is not None:
                    kind = _compared(rt, cached, rebuilt)
                found[kind] += 1
                if kind != "current":
                    self.store.put(tenant.id, learner_id, rebuilt, rebuilt=True)
        return found

    def _learner(self, conn: Connection, tenant_id: int, learner_id: str) -> LearnerRow:
        """The learner's row (:meth:`AnswerLog.learner`); :class:`NotFound` if it has none."""
        learner = self.log.learner(conn, tenant_id, learner_id)
        if learner is None:
            raise NotFound(f"learner {learner_id!r} not found")
        return learner


def _compared(rt: Runtime, cached: CachedState, rebuilt: CachedState) -> str:
    """What ``cached`` is, against the entry ``rebuilt`` from the log: ``current``, ``stale``,
    ``damaged state`` or ``wrong``."""
    if cached.order() != rebuilt.order() or cached.digest != rebuilt.digest:
        return "stale"
    try:
        rt.tracer.state_from_bytes(cached.state)
    except ValueError:
        return "damaged state"
    return "current" if (cached.state, cached.recent) == (rebuilt.state, rebuilt.recent) \
        else "wrong"


@contextlib.contextmanager
def _naming(what: str, index: int, event_id: str) -> Iterator[None]:
    """Name the answer of a batch that an error is about: ``what``, its index and event id, in
    the message and as ``details``."""
    try:
        yield
    except (NotFound, Conflict, Invalid) as exc:
        named = type(exc)(f"{what} {index} (id {event_id}): {exc}")
        named.details = {"index": index, "id": event_id}
        raise named from None


def _due_review(rt: Runtime, review: DueReview) -> DueReviewResponse:
    """One review as the API gives it: ``reason`` only when there is no due time."""
    out: DueReviewResponse = {
        "skill_id": review.skill, "name": rt.catalog.skills[review.skill].name,
        "due_at": review.due, "recall": round(review.recall, 6),
        "last_practised_at": review.last, "due_now": review.due_now}
    if review.reason is not None:
        out["reason"] = review.reason
    return out


def _check_course(rt: Runtime, course: str | None) -> None:
    """:class:`NotFound` for a course the tenant's content does not have (None: no course)."""
    if course is not None and course not in rt.catalog.courses:
        raise NotFound(f"course {course!r} is not in this tenant's content")


def _scope(rt: Runtime, course: str | None) -> str | None:
    """The course to choose within: the learner's current course, if the content still has
    it (a pack replaced since may have removed it), else None: the whole catalog."""
    return course if course is not None and course in rt.catalog.courses else None


def _epoch(created_at: datetime) -> int:
    """A learner row's incarnation: its creation time in microseconds since 1970."""
    return (_as_utc(created_at) - _UNIX) // timedelta(microseconds=1)


def _created_at(epoch: int) -> datetime:
    """The learner row's creation time that :func:`_epoch` encoded (exact: microseconds)."""
    return _UNIX + timedelta(microseconds=epoch)


_UNIX = datetime(1970, 1, 1, tzinfo=UTC)


def _as_utc(moment: datetime) -> datetime:
    """Timestamps are stored in UTC; SQLite hands them back without their zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc(moment: datetime | None) -> datetime | None:
    """:func:`_as_utc`, of a timestamp that may be missing."""
    return None if moment is None else _as_utc(moment)


def _event(row: EventRow) -> Event:
    return {"seq": row.seq, "event_id": row.event_id, "item_id": row.item_id,
            "skills": list(row.skills), "correct": row.correct,
            "answered_at": _utc(row.answered_at), "received_at": _utc(row.received_at),
            "response_ms": row.response_ms}
