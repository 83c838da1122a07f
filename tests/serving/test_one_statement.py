"""PostgreSQL's one-statement answer (``api.one_statement``, ``TutorService.answer_async``): taken
when the cached state is current, and whenever it is not (stale cache, a retried event id, a
conflict), nothing is written and the locked path gives the same result it always gave.

Two services on one database, each with its own in-process cache, stand for two workers whose
caches disagree (with Redis they share one; the two-worker tests cover that).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from prometheus_client import REGISTRY

from api.db import learners, make_engine
from api.service import Answer, Conflict, TutorService
from api.store import InProcessStore, make_store

from .conftest import Backend, TenantKey, assert_same_mastery, make_tenant_on, new_event_id, replay


class Counted:
    """A service, run on an event loop as the app runs it, whose writes are counted: "ONE" for
    a one-statement answer that wrote, "NONE" for one that wrote nothing, and the locked
    path's statements that write, by their first word (reads aside)."""

    def __init__(self, url: str, portal: BlockingPortal) -> None:
        self.service = TutorService(make_engine(url), InProcessStore())
        self.portal = portal
        self.writes: list[str] = []
        sa.event.listen(self.service.engine, "before_cursor_execute", self._seen)
        one = self.service.one_statement
        assert one is not None
        apply = one.apply

        async def counted_apply(*args: Any, **kwargs: Any) -> bool:
            done = await apply(*args, **kwargs)
            self.writes.append("ONE" if done else "NONE")
            return done

        one.apply = counted_apply  # type: ignore[method-assign]
        portal.call(self.service.open)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        head = statement.lstrip().split(None, 1)[0].upper()
        if head in {"WITH", "INSERT", "UPDATE"}:
            self.writes.append(head)

    def answer(self, t: TenantKey, learner: str, item: str, correct: bool,
               event_id: str | None = None) -> dict[str, Any]:
        self.writes.clear()
        return self.portal.call(self.service.answer_async, t.tenant, learner,
                                Answer(item, correct, event_id or new_event_id()))

    def close(self) -> None:
        self.portal.call(self.service.close)
        self.service.engine.dispose()


@pytest.fixture
def two(pg_backend: Backend) -> Iterator[tuple[Counted, Counted]]:
    with start_blocking_portal() as portal:
        a = Counted(pg_backend.database_url, portal)
        b = Counted(pg_backend.database_url, portal)
        yield a, b
        a.close()
        b.close()


def last_seq(backend: Backend, t: TenantKey, learner: str) -> int:
    with backend.engine.connect() as conn:
        return conn.execute(sa.select(learners.c.last_seq).where(
            learners.c.tenant_id == t.tenant.id, learners.c.learner_id == learner)).scalar_one()


def history(backend: Backend, t: TenantKey, learner: str) -> list[dict[str, Any]]:
    with backend.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT seq, event_id, item_id, skills, correct FROM events "
            "WHERE tenant_id = :t AND learner_id = :l ORDER BY seq"),
            {"t": t.tenant.id, "l": learner}).mappings().all()
    return [dict(r) for r in rows]


def one_statement_count(outcome: str) -> float:
    return REGISTRY.get_sample_value("tutor_one_statement_answers_total",
                                     {"outcome": outcome}) or 0.0


def test_a_current_cache_makes_an_answer_one_statement(pg_backend, two) -> None:
    a, _ = two
    t = make_tenant_on(pg_backend.engine)
    a.answer(t, "warm", "mini.a.mid", True)
    assert a.writes == ["INSERT", "INSERT"]  # content not loaded yet: the locked path loads it
    applied, locked = one_statement_count("applied"), one_statement_count("locked")
    first = a.answer(t, "one", "mini.a.mid", True)
    assert a.writes == ["ONE"] and first["seq"] == 1  # a new learner: created with its answer
    out = a.answer(t, "one", "mini.a.easy", False)
    assert a.writes == ["ONE"] and out["seq"] == 2 and out["duplicate"] is False
    assert one_statement_count("applied") == applied + 2  # counted on /metrics
    assert one_statement_count("locked") == locked
    assert last_seq(pg_backend, t, "one") == 2
    log = history(pg_backend, t, "one")
    assert [e["seq"] for e in log] == [1, 2]
    assert_same_mastery(out["mastery"], {"mini.a": replay(t.packs, log)["mini.a"]})


def test_a_tenant_whose_answers_cost_much_cpu_answers_off_the_event_loop(
        pg_backend, two, monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-statement answer computes its step (update, choice, the state's bytes) on the
    event loop, where every tenant's requests wait for it: a `timed` learner of thousands of
    items took tens of ms a step there. A tenant whose steps cost more than LOOP_STEP_CPU_S on
    average answers through a worker thread instead; cheap ones stay on the loop."""
    a, _ = two
    t = make_tenant_on(pg_backend.engine)
    a.answer(t, "warm", "mini.a.mid", True)  # loads the content (locked path)
    a.answer(t, "cheap", "mini.a.mid", True)
    assert a.writes == ["ONE"]
    a.answer(t, "cheap", "mini.a.easy", True)
    assert a.writes == ["ONE"]  # three steps seen, each cheap
    monkeypatch.setattr("api.service.LOOP_STEP_CPU_S", -1.0)  # every step now costs too much
    out = a.answer(t, "cheap", "mini.a.hard", False)
    assert "ONE" not in a.writes and out["seq"] == 3 and out["duplicate"] is False
    assert last_seq(pg_backend, t, "cheap") == 3


def test_a_lost_cache_entry_writes_nothing_and_the_locked_path_rebuilds(pg_backend,
                                                                        two) -> None:
    a, b = two
    t = make_tenant_on(pg_backend.engine)
    b.answer(t, "warm", "mini.a.mid", True)
    a.answer(t, "warm", "mini.a.mid", True)
    b.answer(t, "lost", "mini.a.mid", True)
    b.answer(t, "lost", "mini.c.1", False)  # a has no entry for "lost": as if Redis lost it
    out = a.answer(t, "lost", "mini.a.easy", True)
    assert a.writes == ["NONE", "INSERT", "INSERT"]  # "create" found the learner; locked path
    log = history(pg_backend, t, "lost")
    assert [e["seq"] for e in log] == [1, 2, 3] and out["seq"] == 3
    assert_same_mastery(out["mastery"], {"mini.a": replay(t.packs, log)["mini.a"]})


def test_a_stale_cache_writes_nothing_and_the_locked_path_rebuilds(pg_backend, two) -> None:
    a, b = two
    t = make_tenant_on(pg_backend.engine)
    a.answer(t, "stale", "mini.a.mid", True)
    b.answer(t, "stale", "mini.a.easy", True)  # a's cache still holds seq 1
    out = a.answer(t, "stale", "mini.c.1", False)
    assert a.writes == ["NONE", "INSERT", "INSERT"]  # tried, then the locked path
    assert out["seq"] == 3
    log = history(pg_backend, t, "stale")
    assert [e["seq"] for e in log] == [1, 2, 3]
    want = replay(t.packs, log)
    assert_same_mastery(out["mastery"], {"mini.c": want["mini.c"]})


def test_a_retried_event_id_is_undone_and_replayed(pg_backend, two) -> None:
    a, _ = two
    t = make_tenant_on(pg_backend.engine)
    event_id = new_event_id()
    a.answer(t, "retry", "mini.a.mid", True)
    first = a.answer(t, "retry", "mini.a.easy", True, event_id)
    again = a.answer(t, "retry", "mini.a.easy", True, event_id)  # cache current: one statement
    assert again == {**first, "duplicate": True}
    assert last_seq(pg_backend, t, "retry") == 2  # the failed statement's UPDATE was undone
    assert [e["event_id"] for e in history(pg_backend, t, "retry")][1:] == [event_id]


def test_an_event_id_of_another_learner_is_a_conflict(pg_backend, two) -> None:
    a, _ = two
    t = make_tenant_on(pg_backend.engine)
    event_id = new_event_id()
    a.answer(t, "first", "mini.a.mid", True, event_id)
    a.answer(t, "second", "mini.a.mid", True)
    with pytest.raises(Conflict, match=event_id):
        a.answer(t, "second", "mini.a.mid", True, event_id)
    assert last_seq(pg_backend, t, "second") == 1
    assert len(history(pg_backend, t, "second")) == 1


def test_an_erased_learner_answering_again_starts_over(pg_backend, two) -> None:
    a, b = two
    t = make_tenant_on(pg_backend.engine)
    a.answer(t, "gone", "mini.a.mid", True)
    a.answer(t, "gone", "mini.a.mid", False)
    b.service.erase(t.tenant, "gone")  # a's cache still holds the old learner at seq 2
    b.answer(t, "gone", "mini.c.1", True)
    b.answer(t, "gone", "mini.c.1", True)  # b's cache is now at seq 2 of the new learner
    out = a.answer(t, "gone", "mini.a.easy", True)
    assert out["seq"] == 3
    log = history(pg_backend, t, "gone")
    assert [(e["seq"], e["item_id"]) for e in log] == [
        (1, "mini.c.1"), (2, "mini.c.1"), (3, "mini.a.easy")]
    want = replay(t.packs, log)
    assert_same_mastery(out["mastery"], {"mini.a": want["mini.a"]})


def test_a_burst_queues_for_slots_instead_of_exhausting_connections(pg_backend) -> None:
    """More answers at once than redis.asyncio's pool has connections (100) all complete as
    one statement each: a worker runs POOL_SIZE at a time, the rest wait for a slot."""
    engine = make_engine(pg_backend.database_url)
    service = TutorService(engine, make_store(pg_backend.settings(), engine))
    t = make_tenant_on(pg_backend.engine)
    learners = [f"burst-{k}" for k in range(150)]

    async def burst() -> list[dict[str, Any]]:
        await service.open()
        try:
            for learner in learners:  # a first answer each: cached states to start from
                await service.answer_async(t.tenant, learner,
                                           Answer("mini.a.mid", True, new_event_id()))
            applied = one_statement_count("applied")
            out = await asyncio.gather(*(
                service.answer_async(t.tenant, learner, Answer("mini.a.easy", True,
                                                               new_event_id()))
                for learner in learners))
            assert one_statement_count("applied") == applied + len(learners)
            return out
        finally:
            await service.close()
            service.engine.dispose()

    assert [o["seq"] for o in asyncio.run(burst())] == [2] * len(learners)


@pytest.mark.parametrize("error", ["InternalClientError", "AdminShutdown", "cancelled"])
def test_a_failed_or_cut_statement_costs_no_error(pg_backend, monkeypatch, error: str) -> None:
    """The one-statement connection fails mid-statement: asyncpg's InternalClientError
    ("another operation is in progress", a protocol cut off by the server), the server's
    AdminShutdown, or the answer cancelled while its statement runs. The answer (but the
    cancelled one) is taken by the locked path, the connection is replaced, and the next
    answers are one statement again."""
    import asyncpg

    service = TutorService(make_engine(pg_backend.database_url), InProcessStore())
    t = make_tenant_on(pg_backend.engine)
    fetchrow = asyncpg.connection.Connection.fetchrow
    failures = {"left": 0}

    async def failing(conn: Any, *args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            if error == "cancelled":
                raise asyncio.CancelledError
            if error == "AdminShutdown":
                raise asyncpg.AdminShutdownError("terminating connection due to administrator "
                                                 "command")
            raise asyncpg.InternalClientError("cannot perform operation: another operation "
                                              "is in progress")
        return await fetchrow(conn, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "fetchrow", failing)

    async def run() -> list[dict[str, Any]]:
        await service.open()
        try:
            out = [await service.answer_async(t.tenant, "cut", Answer("mini.a.mid", True,
                                                                      new_event_id()))]
            applied = one_statement_count("applied")
            failures["left"] = 1
            if error == "cancelled":
                with pytest.raises(asyncio.CancelledError):
                    await service.answer_async(t.tenant, "cut",
                                               Answer("mini.a.easy", False, new_event_id()))
            else:
                out.append(await service.answer_async(
                    t.tenant, "cut", Answer("mini.a.easy", False, new_event_id())))
            for item in ("mini.c.1", "mini.a.hard"):
                out.append(await service.answer_async(t.tenant, "cut",
                                                      Answer(item, True, new_event_id())))
            assert one_statement_count("applied") == applied + 2
            return out
        finally:
            await service.close()
            service.engine.dispose()

    out = asyncio.run(run())
    log = history(pg_backend, t, "cut")
    assert [o["seq"] for o in out] == [e["seq"] for e in log] == list(range(1, len(log) + 1))
    for o in out:
        want = replay(t.packs, [e for e in log if e["seq"] <= o["seq"]])
        assert_same_mastery(o["mastery"], {s: want[s] for s in o["mastery"]})
