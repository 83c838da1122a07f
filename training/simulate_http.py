"""Simulated learners driving a running server over HTTP: the served path is the evaluated path.

``tutor simulate`` measures policies in process; what learners get is what a server chooses.
:class:`ServedTutor` puts a server where the in-process engine sits in
:func:`engine.simulation.run.run_tutor`: the same simulated learners (same seed, same draws)
answer whatever the API returns as ``next``: the response's to the previous answer (``POST
/v1/learners/{id}/answers`` with the simulated time in ``answered_at``), or, for the first
exercise and after an answer's response served nothing (the course complete), ``GET
/v1/learners/{id}/next?course=&at=`` at the simulated time (which serves reviews that fell due
since). Exercises to complete are read from the ``next`` alone: no other request. The tracer's
beliefs for the diagnostic are read from ``GET /v1/learners/{id}/progress?at=`` at the end of
each simulated day. So the policy is whatever the server serves the tenant (its target-success
policy with the tenant's target, or an experiment's arm), and a run against a server holding the
same course and tracer gets the same numbers as the in-process run
(``tests/simulation/test_http.py``; with a tracer that forgets with time, a server whose ``GET
/next`` takes ``at``: one that ignores it chooses at its own clock, days later).

Simulated time must lie in the past (the server refuses answers more than its clock skew ahead):
:func:`past_epoch` puts day 0 as many days before now as the run lasts. A simulated learner
starts from nothing, so learner ids that already have answers on the server are refused
(:meth:`ServedTutor.check_new`) rather than mixed in. Event ids are fixed by (day 0, learner,
exercise).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import numpy as np

from engine.catalog import Catalog
from engine.selection.batch import scope
from engine.selection.prepared import prepare
from engine.simulation.base import DAY, NO_ITEM
from engine.simulation.run import (
    Comparison,
    PolicyRun,
    Progress,
    Schedule,
    learner_ids,
    run_tutor,
)

__all__ = ["SERVED", "ServedTutor", "ServerError", "compare_served", "past_epoch", "run_served"]

#: the policy name of a served run: whatever the server serves the tenant
SERVED = "served"
_T = TypeVar("_T")
#: fixes the event ids of simulated answers (uuid5 of day 0, learner and exercise number)
_EVENTS = uuid.uuid5(uuid.NAMESPACE_URL, "tutor-simulate")


class ServerError(RuntimeError):
    """The server refused a request or chose something the local course does not have."""


def past_epoch(schedule: Schedule, now: datetime | None = None) -> datetime:
    """Day 0 of a served run: whole days before ``now`` (to the minute), so that the last
    answer of ``schedule`` is a day or more in the past."""
    now = now or datetime.now(UTC)
    return (now - timedelta(days=schedule.days + 1)).replace(second=0, microsecond=0)


class ServedTutor:
    """A running server as the :class:`~engine.simulation.run.Tutor` of a simulation.

    ``client`` is an :class:`httpx.Client` whose base URL is the server and whose headers carry
    the tenant's API key; ``learners`` are the ids the server knows the simulated learners by;
    ``catalog`` is the local copy of the course the population lives in (items the server
    chooses are looked up in it by id); ``epoch`` is the run's day 0 (event ids are fixed by
    run, learner and exercise). ``connections`` requests run at once, each for another learner
    (one learner's requests stay in order).
    """

    def __init__(self, client: httpx.Client, catalog: Catalog, course: str,
                 learners: Sequence[str], epoch: datetime, *, connections: int = 1) -> None:
        if connections < 1:
            raise ValueError(f"connections must be at least 1, got {connections!r}")
        self.client = client
        self.course = course
        self.learners = tuple(learners)
        self.epoch = epoch
        self.connections = connections
        self.prepared = prepare(catalog)
        skills = scope(self.prepared, course)[1]
        self.course_skills = [self.prepared.skill_ids[k] for k in np.flatnonzero(skills)]
        #: per learner who answered at the last exercise, the ``next`` of the response ("":
        #: none, the course complete); None: the learner asks ``GET /next``
        self._next: list[str | None] = [None] * len(self.learners)
        self._answered = [0] * len(self.learners)

    # ------------------------------------------------------------------ the Tutor contract
    def choose(self, at: datetime) -> np.ndarray:
        """The server's ``next`` of each learner: the one its last answer's response gave, else
        ``GET /next`` at ``at`` (the first exercise, or the one after nothing was served)."""
        def one(i: int) -> int:
            item = self._next[i]
            if item is None:
                body = self._call("GET", f"{self._path(i)}/next",
                                  params={"course": self.course, "at": at.isoformat()})
                item = body["next"][0]["item"] if body["next"] else ""
            return self._index(item) if item else NO_ITEM

        chosen = np.array(self._each(one, range(len(self.learners))), dtype=np.int64)
        self._next = [None] * len(self.learners)  # until answers give the next ones
        return chosen

    def record(self, items: np.ndarray, correct: np.ndarray, at: datetime) -> None:
        """Each learner with an item posts its answer, answered at ``at``; the response's
        ``next`` is the learner's next exercise."""
        at_run = self.epoch.isoformat()

        def one(i: int) -> None:
            k = self._answered[i]
            event_id = str(uuid.uuid5(_EVENTS, f"{self.learners[i]}\x1f{k}\x1f{at_run}"))
            body = self._call("POST", f"{self._path(i)}/answers", json={
                "item_id": self.prepared.item_ids[int(items[i])], "correct": bool(correct[i]),
                "event_id": event_id, "answered_at": at.isoformat(), "course": self.course})
            if body.get("duplicate") or body.get("seq") != k + 1:  # another run's, meanwhile
                raise self._used(i, f"answer {k + 1} came back as seq {body.get('seq')}")
            self._answered[i] = k + 1
            self._next[i] = body["next"]["item"] if body.get("next") else ""

        self._each(one, np.flatnonzero(items != NO_ITEM).tolist())

    def mastery(self, at: datetime) -> np.ndarray:
        """Each learner's mastery of the course's skills at ``at``, from ``GET
        /progress?course=&at=``."""
        def one(i: int) -> list[float]:
            body = self._call("GET", f"{self._path(i)}/progress",
                              params={"course": self.course, "at": at.isoformat()})
            reported = {s["skill_id"]: s["mastery"] for s in body["skills"]}
            missing = [s for s in self.course_skills if s not in reported]
            if missing:
                raise ServerError(f"the server's course {self.course!r} lacks the skills "
                                  f"{', '.join(map(repr, missing[:5]))} of the local one")
            return [reported[s] for s in self.course_skills]

        values = self._each(one, range(len(self.learners)))  # rounded by the API
        return np.array(values, dtype=float).reshape(len(self.learners), -1)

    def check_new(self) -> None:
        """:class:`ServerError` if a learner already has answers on the server: a simulated
        learner starts from nothing, and its answers must not mix with another run's."""
        def one(i: int) -> None:
            path = f"{self._path(i)}/state"
            response = self._request("GET", path)
            if response.status_code != 404:  # 404: never answered
                answers = self._checked(response, "GET", path)["answers"]
                if answers:
                    raise self._used(i, f"{answers} answers")

        self._each(one, range(len(self.learners)))

    # ------------------------------------------------------------------ internals
    def _used(self, i: int, what: str) -> ServerError:
        return ServerError(f"learner {self.learners[i]!r} already has answers on this server "
                           f"({what}): simulate other learner ids (--learner-prefix) or erase "
                           "these learners")

    def _path(self, i: int) -> str:
        return f"/v1/learners/{quote(self.learners[i], safe='')}"

    def _index(self, item: str) -> int:
        j = self.prepared.item_index.get(item)
        if j is None:
            raise ServerError(f"the server chose item {item!r}, which the local course "
                              f"{self.course!r} does not have: the server's content differs")
        return j

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a successful request; :class:`ServerError` with the API's own
        message otherwise."""
        return self._checked(self._request(method, path, **kwargs), method, path)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The response; :class:`ServerError` when there is none (no server, a timeout)."""
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _checked(response: httpx.Response, method: str, path: str) -> Any:
        if response.is_success:
            return response.json()
        try:
            error = response.json()["error"]
            what = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            what = response.text[:300]
        raise ServerError(f"{method} {path}: HTTP {response.status_code} {what}")

    def _each(self, call: Callable[[int], _T], learners: Sequence[int] | range) -> list[_T]:
        if self.connections == 1 or len(learners) < 2:
            return [call(i) for i in learners]
        with ThreadPoolExecutor(self.connections) as pool:
            return list(pool.map(call, learners))


def run_served(client: httpx.Client, family: str, catalog: Catalog, course: str, *, n: int,
               seed: int, schedule: Schedule, learners: Sequence[str],
               epoch: datetime | None = None, connections: int = 1, label: str = SERVED,
               progress: Progress | None = None) -> PolicyRun:
    """``n`` learners of ``family`` (seed ``seed``) through ``course`` as the server behind
    ``client`` serves them (see :class:`ServedTutor`); day 0 at ``epoch`` (default
    :func:`past_epoch`). ValueError for a schedule that would end in the future."""
    if len(learners) != n:
        raise ValueError(f"give one id per learner: {len(learners)} ids for {n} learners")
    epoch = epoch or past_epoch(schedule)
    if epoch + timedelta(seconds=schedule.end) > datetime.now(UTC):
        raise ValueError(f"the run would end after now (day 0 at {epoch.isoformat()}, "
                         f"{schedule.end / DAY:.1f} days): the server refuses answers from "
                         "the future; start it earlier")
    tutor = ServedTutor(client, catalog, course, learners, epoch, connections=connections)
    tutor.check_new()
    return run_tutor(family, catalog, course, tutor, n=n, seed=seed, schedule=schedule,
                     label=label, epoch=epoch, progress=progress)


def compare_served(url: str, api_key: str, families: Sequence[str], catalog: Catalog,
                   course: str, *, n: int, seed: int, schedule: Schedule, prefix: str,
                   connections: int = 8, progress: Progress | None = None) -> Comparison:
    """Every family's learners (:func:`~engine.simulation.run.learner_ids` with ``prefix``)
    through the server at ``url``, with the tenant's ``api_key``: one run per family under the
    policy name ``served``, as :func:`engine.simulation.run.compare` reports in-process
    policies."""
    result = Comparison(baseline=SERVED)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_key}"},
                      timeout=60.0) as client:
        for family in families:
            learners = learner_ids(prefix, family, n)
            result.runs[family] = {SERVED: run_served(
                client, family, catalog, course, n=n, seed=seed, schedule=schedule,
                learners=learners, connections=connections, progress=progress)}
    return result
