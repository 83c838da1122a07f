"""The one contract every knowledge-tracing model implements: :class:`Tracer`.

A tracer has two sides that must agree exactly:

* the **batch** side (researchers): ``fit`` on a log, ``predict_log`` for one-step-ahead
  P(correct) of every answer in a log, each learner starting from the fitted prior;
* the **online** side (the live API, selection, simulation): a fresh learner ``state``, a pure
  ``update`` of a state with one answer, ``predict_correct`` / ``predict_items`` for candidate
  items and ``mastery`` per skill.

Folding ``update`` over a learner's answers, calling ``predict_correct`` before each one, yields the
same numbers as ``predict_log`` (tested for every tracer), so what researchers measure is what
learners get. :meth:`Tracer.fold` is that fold, and the definition of a learner's state: the
API's cached states are copies of it.

**Time.** Predictions take the moment they are asked for (``at``; None means "right after the
last answer"). BKT and DKT ignore it; memory models, whose recall decays between answers, need
it, so it is part of every signature.

**Skills a model does not know** (:attr:`Tracer.skills` lists those it knows): the batch side
predicts them with the model's mean parameters (and :meth:`Tracer.unseen_skills` counts such
answers); the online side refuses them with a KeyError naming the skill, except :meth:`fold`,
which skips them (an answer log may outlive the content it was answered on).

States are opaque to callers but serialize to compact bytes for a state store; fitted parameters
serialize to bytes (:meth:`Tracer.to_bytes`, what the API stores) and to a versioned file or
directory (:meth:`Tracer.save`). Every model is built from keyword options alone (scikit-learn
style), and :mod:`engine.tracing.registry` maps model names to classes, so no caller names a
concrete model.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import numpy as np
from scipy.stats import spearmanr

from engine.events import AnswerEvent, AnswerLog
from engine.tracing.items import ItemIndex

State = TypeVar("State")

#: Called during ``fit`` with (steps done, steps in all, what is happening, metrics so far).
FitProgress = Callable[[int, int, str, Mapping[str, float]], None]


class NotFittedError(RuntimeError):
    """A tracer was used for prediction before ``fit`` or ``load``."""


class IdSpaceError(ValueError):
    """A log whose skill ids are not the ones a fitted model knows (another dataset, another
    content pack): its predictions would be meaningless."""


class Tracer(ABC, Generic[State]):
    """What replay, the API, selection and the simulator rely on, whatever the model."""

    #: the model's registry name (``bkt``, ``bkt-forgets``, ``dkt``...)
    name: str
    #: the largest share of a log's answers on unknown skills that :meth:`check_id_space` allows
    max_unseen: float = 0.5

    # ================================================================ configuration
    @abstractmethod
    def get_options(self) -> dict[str, Any]:
        """The keyword options this tracer was built with: ``type(t)(**t.get_options())`` is
        an unfitted twin."""

    # ================================================================ batch side
    @abstractmethod
    def fit(self, log: AnswerLog, *, valid: AnswerLog | None = None,
            progress: FitProgress | None = None) -> Self:
        """Estimate parameters from ``log`` (``valid``: held-out answers for models that stop
        early; others ignore it); returns ``self``."""

    def fit_summary(self) -> str:
        """One line on how the last ``fit`` went (e.g. where early stopping stopped), for
        people; empty when there is nothing to add to the fit itself."""
        return ""

    @abstractmethod
    def predict_log(self, log: AnswerLog) -> np.ndarray:
        """P(correct) of each answer given only the same learner's earlier answers in ``log``."""

    @property
    @abstractmethod
    def skills(self) -> tuple[str, ...]:
        """The skill ids the fitted model knows (NotFittedError before fitting)."""

    def unseen_skills(self, log: AnswerLog) -> int:
        """How many answers in ``log`` practise at least one skill the model does not know."""
        if len(log) == 0:
            return 0
        known = set(self.skills)
        unknown = np.array([s not in known for s in log.skill_ids], dtype=bool)
        return int(np.count_nonzero(np.logical_or.reduceat(unknown[log.skill_codes],
                                                           log.skill_ptr[:-1])))

    def check_id_space(self, log: AnswerLog) -> None:
        """Refuse (:class:`IdSpaceError`) a log the model cannot meaningfully score: one most of
        whose answers practise skills the model never saw, or one whose ids the model knows but
        which mean other things (integer ids of another dataset: see :func:`skill_agreement`)."""
        unseen = self.unseen_skills(log)
        known = set(self.skills)
        examples = f"it knows {len(known):,} skills such as {', '.join(map(repr, self.skills[:5]))}"
        if len(log) and unseen / len(log) > self.max_unseen:
            theirs = [str(s) for s in log.skill_ids if s not in known][:5]
            raise IdSpaceError(
                f"{unseen:,} of {len(log):,} answers ({unseen / len(log):.0%}) practise skills "
                f"this {self.name} model does not know (e.g. {', '.join(map(repr, theirs))}; "
                f"{examples}): the log and the model use different id spaces; fit a model on "
                "this data instead")
        agreement = skill_agreement(self, log)
        if agreement is not None and agreement[0] < MIN_AGREEMENT:
            raise IdSpaceError(
                f"the skill ids of this log are known to this {self.name} model, but do not "
                f"mean the same skills: over {agreement[1]} skills, how often each is answered "
                f"correctly in the log is unrelated to the model's prediction for it (rank "
                f"correlation {agreement[0]:.2f}, below {MIN_AGREEMENT}; on its own kind of "
                f"data a model scores far higher). The log and the model use different id "
                f"spaces ({examples}); fit a model on this data instead")

    # ================================================================ online side
    @abstractmethod
    def new_state(self) -> State:
        """The state of a learner with no answers yet."""

    @abstractmethod
    def update(self, state: State, event: AnswerEvent) -> State:
        """The state after ``event``; ``state`` itself is left unchanged."""

    def with_mastery(self, state: State, mastery: Mapping[str, float]) -> State:
        """``state`` with each skill of ``mastery`` set to that P(mastered) (a placement
        test's result: the learner starts from what the test found rather than the prior);
        skills the model does not know are skipped, ``state`` is left unchanged.

        The default refuses (NotImplementedError): a model whose state is not a probability
        per skill (DKT's hidden state) has nothing that a mastery could be written into."""
        raise NotImplementedError(f"the {self.name} model cannot start a learner from given "
                                  "masteries (a placement's result)")

    def fold(self, events: Iterable[AnswerEvent], start: State | None = None) -> State:
        """``update`` folded over ``events`` from ``start`` (default :meth:`new_state`): a
        learner's state.

        Skills the model does not know are dropped from each event (and an event left with
        none is skipped): their evidence has no parameters to use.
        """
        state = self.new_state() if start is None else start
        known = set(self.skills)
        for event in events:
            kept = tuple(s for s in event.skills if s in known)
            if len(kept) == len(event.skills):
                state = self.update(state, event)
            elif kept:
                state = self.update(state, replace(event, skills=kept))
        return state

    @abstractmethod
    def predict_correct(self, state: State, item: str, skills: Sequence[str], *,
                        at: datetime | None = None) -> float:
        """P(the learner answers ``item``, which practises ``skills``, correctly at ``at``)."""

    def predict_items(self, state: State, items: ItemIndex, *,
                      at: datetime | None = None) -> np.ndarray:
        """P(correct) of every item of ``items``, equal to :meth:`predict_correct` of each.

        Models override this with a vectorized version that maps ``items`` onto their
        parameters once and caches the mapping (selection calls it after every answer).
        """
        return np.fromiter(
            (self.predict_correct(state, i, s, at=at)
             for i, s in zip(items.item_ids, items.item_skills, strict=True)),
            dtype=float, count=len(items))

    @abstractmethod
    def mastery(self, state: State, skills: Sequence[str] | None = None, *,
                at: datetime | None = None) -> Mapping[str, float]:
        """P(mastered) per skill at ``at`` (all skills the model knows when ``skills`` is
        None)."""

    def mastery_of(self, state: State, items: ItemIndex, *,
                   at: datetime | None = None) -> np.ndarray:
        """P(mastered) of every skill of ``items`` (``items.skill_ids`` order), equal to
        :meth:`mastery`; vectorized like :meth:`predict_items` by models that can."""
        values = self.mastery(state, items.skill_ids, at=at)
        return np.fromiter((values[s] for s in items.skill_ids), dtype=float,
                           count=len(items.skill_ids))

    # ================================================================ many learners at once
    # The simulator advances thousands of learners in lockstep, and one Python call per learner
    # and answer would cost more than the learning it simulates. A *batch* of states is any
    # object whose element ``i`` is learner ``i``'s state (``batch[i]`` works with every
    # one-learner method); these defaults keep a list and call the one-learner methods learner
    # by learner, so a batch means exactly what the per-learner calls mean. Models override all
    # four with an array layout (one vectorized operation per call).

    def new_states(self, n: int) -> Any:
        """A batch of ``n`` learners with no answers yet."""
        return [self.new_state() for _ in range(n)]

    def update_many(self, states: Any, items: ItemIndex, chosen: np.ndarray,
                    correct: np.ndarray, *, at: datetime | None = None) -> Any:
        """The batch after learner ``i`` answered item ``chosen[i]`` of ``items`` at ``at``,
        right when ``correct[i]``; learners with ``chosen[i] < 0`` are unchanged, and
        ``states`` itself is left unchanged (as :meth:`update` leaves its state)."""
        new = list(states)
        for i in np.flatnonzero(chosen >= 0).tolist():
            j = int(chosen[i])
            new[i] = self.update(states[i], AnswerEvent(
                f"learner-{i}", items.item_ids[j], items.item_skills[j], bool(correct[i]),
                timestamp=at))
        return new

    def predict_items_many(self, states: Any, items: ItemIndex, *,
                           at: datetime | None = None) -> np.ndarray:
        """:meth:`predict_items` of every learner of the batch: shape (learners, items)."""
        return np.array([self.predict_items(s, items, at=at) for s in states], dtype=float
                        ).reshape(len(states), len(items))

    def mastery_of_many(self, states: Any, items: ItemIndex, *,
                        at: datetime | None = None) -> np.ndarray:
        """:meth:`mastery_of` of every learner of the batch: shape (learners, skills)."""
        return np.array([self.mastery_of(s, items, at=at) for s in states], dtype=float
                        ).reshape(len(states), len(items.skill_ids))

    @abstractmethod
    def state_to_bytes(self, state: State) -> bytes:
        """``state`` as compact bytes (what a state store keeps)."""

    @abstractmethod
    def state_from_bytes(self, data: bytes) -> State:
        """The state :meth:`state_to_bytes` wrote; ValueError for bytes of another model, or
        for values no state of this model holds (NaN, a probability out of [0, 1]): a state
        store's damaged bytes must not become a learner's state."""

    # ================================================================ persistence
    @abstractmethod
    def to_bytes(self) -> bytes:
        """The fitted parameters and options as one versioned blob (what the API stores)."""

    @classmethod
    @abstractmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Self:
        """The fitted model :meth:`to_bytes` wrote; ValueError naming ``source`` otherwise."""

    @abstractmethod
    def save(self, path: str | Path) -> None:
        """Write the fitted parameters to a versioned file or directory."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path) -> Self:
        """Read what :meth:`save` wrote."""


class DocumentTracer(Tracer[State]):
    """A tracer whose fitted parameters are one JSON document (BKT, the timed models): bytes,
    files and their errors in one place. Subclasses say what the document is."""

    @abstractmethod
    def _document(self) -> dict[str, Any]:
        """The fitted parameters and options as a JSON-ready, versioned document."""

    @classmethod
    @abstractmethod
    def _from_document(cls, doc: Any, source: str) -> Self:
        """The fitted model in ``doc``; ValueError naming ``source`` for a wrong document."""

    def to_bytes(self) -> bytes:
        return json.dumps(self._document()).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "<bytes>") -> Self:
        try:
            doc = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: not a JSON file ({exc})") from None
        return cls._from_document(doc, source)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self._document(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        try:
            return cls.from_bytes(Path(path).read_bytes(), source=str(path))
        except FileNotFoundError:
            raise FileNotFoundError(f"model file not found: {path}") from None


class Cached:
    """A small per-tracer cache of what a model derives from an :class:`ItemIndex` (its
    parameters mapped onto the items), keyed by the index's identity.

    Entries hold their index, so its id cannot be reused by another object while cached. A
    tracer clears the cache when its parameters change.
    """

    __slots__ = ("_entries", "_lock", "_size")

    def __init__(self, size: int = 8) -> None:
        self._entries: dict[int, tuple[ItemIndex, Any]] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, items: ItemIndex, build: Callable[[ItemIndex], Any]) -> Any:
        """The value for ``items``, built by ``build(items)`` on first use."""
        entry = self._entries.get(id(items))
        if entry is not None and entry[0] is items:
            return entry[1]
        value = build(items)
        with self._lock:
            if len(self._entries) >= self._size:  # evict the oldest (dicts keep their order)
                self._entries.pop(next(iter(self._entries)))
            self._entries[id(items)] = (items, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


#: the rank correlation below which :meth:`Tracer.check_id_space` takes a log's ids to mean
#: other skills than the model's. Measured with BKT fitted on each training split: on its own
#: test split 0.94 (statics2011), 0.89 (assist2009), 0.96 (assist2015); on another dataset's
#: test split 0.08 (statics2011 on assist2009), -0.09 (assist2009 on assist2015), 0.02
#: (assist2015 on assist2009)
MIN_AGREEMENT = 0.2


def skill_agreement(tracer: Tracer[Any], log: AnswerLog, *, min_answers: int = 20,
                    min_skills: int = 20) -> tuple[float, int] | None:
    """How well the model's idea of each skill's difficulty matches the log's: the Spearman
    correlation, over the skills both know with at least ``min_answers`` learners in the log,
    between the model's P(correct) of a learner's first answer to the skill and the log's rate
    of correct first answers; with the number of skills compared.

    Integer ids (question or skill numbers) overlap between datasets, so a model can know
    every id of a foreign log; what the ids mean cannot overlap by chance. First answers are
    compared because later ones depend on each learner's history. None when the evidence
    cannot tell: fewer than ``min_skills`` such skills, a model that predicts all of them
    alike, or skills whose rates differ no more than sampling noise.
    """
    if len(log) == 0:
        return None
    pair_row = np.repeat(np.arange(len(log)), np.diff(log.skill_ptr))
    key = log.learner[pair_row].astype(np.int64) * len(log.skill_ids) + log.skill_codes
    _, first = np.unique(key, return_index=True)  # each learner's first answer to each skill
    skill = log.skill_codes[first]
    n = np.bincount(skill, minlength=len(log.skill_ids))
    right = np.bincount(skill, weights=log.correct[pair_row[first]], minlength=len(n))
    known = set(tracer.skills)
    use = (n >= min_answers) & np.array([str(s) in known for s in log.skill_ids], dtype=bool)
    if np.count_nonzero(use) < min_skills:
        return None
    ids = [str(s) for s in log.skill_ids[use]]
    predicted = tracer.predict_items(tracer.new_state(), ItemIndex((s, (s,)) for s in ids))
    rate = right[use] / n[use]
    noise = np.mean(rate * (1 - rate) / n[use])  # a rate's sampling variance, on average
    if np.std(predicted) < 1e-3 or np.var(rate) < 2 * noise:
        return None
    return float(spearmanr(predicted, rate).statistic), len(ids)
