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

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from api import metrics
from api.answer_log import AnswerLog, EventRow, LearnerRow, LoggedAnswer
from api.one_statement import OneStatement
from api.responses import (
    AnswerResponse,
    Choice,
    Event,
    ExportResponse,
    HistoryResponse,
    NextResponse,
    Recorded,
    StateResponse,
)
from api.runtimes import Runtime, Runtimes
from api.store import CachedState, StateStore
from api.tenants import Tenant
from engine.catalog import Item
from engine.events import AnswerEvent
from engine.selection import SelectionContext, TargetSuccessPolicy

_P = ParamSpec("_P")
_R = TypeVar("_R")
RECENT = 10  # item ids remembered per learner for "no repeats" (the policy uses the last few)


class NotFound(LookupError):
    """A learner, item or skill that this tenant does not have."""


class Conflict(ValueError):
    """An event id reused for a different answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer as the API receives it (from JSON or from an xAPI statement)."""

    item_id: str
    correct: bool
    event_id: str
    answered_at: datetime | None = None
    response_ms: float | None = None
    target_success: float | None = None


@dataclass(frozen=True, slots=True)
class _Step:
    """One answer applied to a cached state: the response, the event row, the new state."""

    response: Recorded
    row: dict[str, Any]
    cached: CachedState


def _once_more_if_disconnected(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``method`` once more when it met a pooled connection the database had closed.

    The pool does not ping before each use (a round trip per request, see
    :func:`api.db.make_engine`), so after a database restart or failover the first statement on
    each old connection fails; the pool then drops that connection and its peers, and a second
    try runs on a fresh one. Only for methods that are safe to repeat: reads, and answers
    (idempotent by event id).
    """
    @functools.wraps(method)
    def again(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            return method(*args, **kwargs)

    return again


class TutorService:
    def __init__(self, engine: Engine, store: StateStore) -> None:
        self.engine = engine
        self.store = store
        self.policy = TargetSuccessPolicy()
        self.log = AnswerLog(engine)
        self.runtimes = Runtimes(engine)
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
        rt = self.runtimes.current(tenant)
        if (self.one_statement is not None and self.one_statement.is_open and rt is not None
                and answer.item_id in rt.catalog.items):
            done = await self._answer_one_statement(rt, tenant, learner_id,
                                                    rt.catalog.items[answer.item_id], answer)
            metrics.ONE_STATEMENT.labels("locked" if done is None else "applied").inc()
            if done is not None:
                return done
        return await anyio.to_thread.run_sync(self.answer, tenant, learner_id, answer)

    @_once_more_if_disconnected  # answers are idempotent by event id: safe even after a commit
    def answer(self, tenant: Tenant, learner_id: str, answer: Answer) -> AnswerResponse:
        """Record ``answer`` and return the response (the stored one for a retried event id)."""
        rt = self.runtimes.get(tenant)
        item = rt.catalog.items.get(answer.item_id)
        if item is None:
            raise NotFound(f"item {answer.item_id!r} is not in this tenant's content")
        now = datetime.now(UTC)
        with self.log.writer, self.engine.connect() as conn, conn.begin() as transaction:
            seq, created_at = self.log.next_seq(conn, tenant.id, learner_id, now)
            cached = self._state(conn, tenant.id, learner_id, _epoch(created_at), seq - 1, rt)
            step = self._step(rt, tenant, learner_id, item, answer, now, cached)
            if not self.log.append(conn, step.row):  # a retry: the event id is in the log
                stored = self.log.find(conn, tenant.id, answer.event_id)
                transaction.rollback()
                return self._replay(stored, learner_id, answer)
        # after the commit, never before: the cache must not run ahead of the log
        self.store.put(tenant.id, learner_id, step.cached)
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
            if cached is None:  # a new learner, most likely: its row is created at `now`
                cached = CachedState(_epoch(now), rt.content_version, 0,
                                     rt.tracer.state_to_bytes(rt.tracer.new_state()), ())
            elif cached.content_version != rt.content_version:
                return None
            step = self._step(rt, tenant, learner_id, item, answer, now, cached)
            if not await one.apply(step.row, expected=cached.version,
                                   epoch=_created_at(cached.epoch)):
                return None
            await self.store.aput(tenant.id, learner_id, step.cached)
        return {**step.response, "duplicate": False}

    def _step(self, rt: Runtime, tenant: Tenant, learner_id: str, item: Item, answer: Answer,
              now: datetime, cached: CachedState) -> _Step:
        """What answering ``item`` after ``cached`` gives: the new state, response and row."""
        seq = cached.version + 1
        event = AnswerEvent(learner_id, item.id, item.skills, answer.correct,
                            timestamp=answer.answered_at or now,
                            response_ms=answer.response_ms, event_id=answer.event_id)
        state = rt.tracer.update(rt.tracer.state_from_bytes(cached.state), event)
        recent = (*cached.recent, item.id)[-RECENT:]
        choices, why_none = self._choose(rt, tenant, learner_id, state, recent, seq,
                                         answer.target_success, course=None, n=1, at=now)
        response: Recorded = {
            "learner_id": learner_id,
            "event_id": answer.event_id,
            "seq": seq,
            "correct": answer.correct,
            "mastery": {s: round(p, 6)
                        for s, p in rt.tracer.mastery(state, item.skills, at=now).items()},
            "next": choices[0] if choices else None,
        }
        if why_none:
            response["reason"] = why_none
        row = {"tenant_id": tenant.id, "learner_id": learner_id, "seq": seq,
               "event_id": answer.event_id, "item_id": item.id, "skills": list(item.skills),
               "correct": answer.correct, "answered_at": event.timestamp, "received_at": now,
               "response_ms": answer.response_ms, "response": json.dumps(response)}
        return _Step(response, row, CachedState(cached.epoch, rt.content_version, seq,
                                                rt.tracer.state_to_bytes(state), recent))

    @staticmethod
    def _replay(stored: LoggedAnswer, learner_id: str, answer: Answer) -> AnswerResponse:
        """The response first given for this event id, if the retry is the same answer."""
        if (stored.learner_id, stored.item_id, stored.correct) != (
                learner_id, answer.item_id, answer.correct):
            raise Conflict(f"event_id {answer.event_id} was already used for a different "
                           "answer")
        recorded: Recorded = json.loads(stored.response)
        return {**recorded, "duplicate": True}

    # ------------------------------------------------------------------ state
    def _state(self, conn: Connection, tenant_id: int, learner_id: str, epoch: int,
               last_seq: int, rt: Runtime) -> CachedState:
        """The cached state if it is current, else a rebuild from the log (and re-cached)."""
        cached = self.store.get(tenant_id, learner_id)
        if cached is not None and cached.order() == (epoch, rt.content_version, last_seq):
            return cached
        answers = self.log.answers(conn, tenant_id, learner_id, last_seq)
        state = rt.tracer.fold(answers)
        rebuilt = CachedState(epoch, rt.content_version, last_seq,
                              rt.tracer.state_to_bytes(state),
                              tuple(a.item for a in answers[-RECENT:]))
        self.store.put(tenant_id, learner_id, rebuilt)
        return rebuilt

    def current_state(self, tenant: Tenant, learner_id: str) -> tuple[Runtime, CachedState]:
        """A learner's state for reading; :class:`NotFound` if the learner never answered."""
        rt = self.runtimes.get(tenant)
        with self.engine.connect() as conn:
            learner = self._learner(conn, tenant.id, learner_id)
            return rt, self._state(conn, tenant.id, learner_id, _epoch(learner.created_at),
                                   learner.last_seq, rt)

    # ------------------------------------------------------------------ selection
    def _choose(self, rt: Runtime, tenant: Tenant, learner_id: str, state: Any,
                recent: Sequence[str], seq: int, target: float | None, course: str | None,
                n: int, at: datetime) -> tuple[list[Choice], str | None]:
        """The policy's choices as JSON, and why there are none when the list is empty.

        The tie-break seed is the learner's answer count: the same state gives the same
        choice, and a learner stuck on ties does not see the same item forever. Predictions
        are for ``at``, the time of the request (time-aware tracers need it).
        """
        context = SelectionContext(
            recent_items=tuple(recent), course=course,
            target_success=target if target is not None else tenant.target_success,
            n=n, seed=seq, learner=learner_id, at=at)
        choices = self.policy.choose(rt.tracer, state, rt.catalog, context)
        if choices:
            return [c.to_dict() for c in choices], None
        return [], self.policy.explain_empty(rt.tracer, state, rt.catalog, context)

    @_once_more_if_disconnected
    def next_items(self, tenant: Tenant, learner_id: str, n: int, course: str | None,
                   target: float | None) -> NextResponse:
        """Recommendations for a learner (a learner never seen starts from the priors)."""
        try:
            rt, cached = self.current_state(tenant, learner_id)
            state = rt.tracer.state_from_bytes(cached.state)
            recent, seq = cached.recent, cached.version
        except NotFound:
            rt = self.runtimes.get(tenant)
            state, recent, seq = rt.tracer.new_state(), (), 0
        if course is not None and course not in rt.catalog.courses:
            raise NotFound(f"course {course!r} is not in this tenant's content")
        choices, why_none = self._choose(rt, tenant, learner_id, state, recent, seq, target,
                                         course, n, at=datetime.now(UTC))
        response: NextResponse = {"learner_id": learner_id, "next": choices}
        if why_none:
            response["reason"] = why_none
        return response

    @_once_more_if_disconnected
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
    @_once_more_if_disconnected
    def history(self, tenant: Tenant, learner_id: str, after: int,
                limit: int) -> HistoryResponse:
        with self.engine.connect() as conn:
            self._learner(conn, tenant.id, learner_id)
            rows = self.log.page(conn, tenant.id, learner_id, after, limit + 1)
        page = [_event(r) for r in rows[:limit]]
        return {"learner_id": learner_id, "events": page,
                "next_after": page[-1]["seq"] if len(rows) > limit else None}

    @_once_more_if_disconnected
    def export(self, tenant: Tenant, learner_id: str) -> ExportResponse:
        """Everything held about the learner: profile, every answer, and the derived state."""
        state = self.state(tenant, learner_id)
        with self.engine.connect() as conn:
            rows = self.log.events(conn, tenant.id, learner_id)
        return {"learner_id": learner_id, "tenant": tenant.name,
                "exported_at": datetime.now(UTC),
                "profile": {"created_at": state["created_at"], "last_seen": state["last_seen"],
                            "answers": state["answers"]},
                "state": state["skills"],
                "events": [{**_event(r), "response": json.loads(r.response)} for r in rows]}

    def erase(self, tenant: Tenant, learner_id: str) -> None:
        """Delete the learner's events, row and cached state (the right to erasure).

        The cache entry is erased inside the transaction that deletes the rows, before it
        commits: if the state store cannot be reached, its error rolls the deletion back and the
        whole erasure can be retried. (Rows deleted first would leave a retry nothing to find,
        and the cached state behind.)
        """
        with self.log.writer, self.engine.begin() as conn:
            created_at = self.log.erase(conn, tenant.id, learner_id)
            if created_at is None:
                raise NotFound(f"learner {learner_id!r} not found")
            # a tombstone, so that an answer committed just before cannot cache its state
            # again; the learner's row stays locked until the commit, so no answer gets in
            # between
            self.store.erase(tenant.id, learner_id, _epoch(created_at))

    def rebuild_all(self, tenant: Tenant) -> int:
        """Recompute every learner's cached state from the log; returns how many."""
        rt = self.runtimes.get(tenant)
        with self.engine.connect() as conn:
            found = self.log.learners(conn, tenant.id)
            for learner_id, last_seq, created_at in found:
                # a current entry is kept (the fold is deterministic), any other recomputed
                self._state(conn, tenant.id, learner_id, _epoch(created_at), last_seq, rt)
        return len(found)

    def _learner(self, conn: Connection, tenant_id: int, learner_id: str) -> LearnerRow:
        """The learner's row (:meth:`AnswerLog.learner`); :class:`NotFound` if it has none."""
        learner = self.log.learner(conn, tenant_id, learner_id)
        if learner is None:
            raise NotFound(f"learner {learner_id!r} not found")
        return learner


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
