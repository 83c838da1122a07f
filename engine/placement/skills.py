"""A per-skill placement test: an adaptive test over a course's skills on its knowledge
structure (:mod:`engine.placement.knowledge`), one examinee's resumable run of it, and its
result, each skill's P(known), which a tracer takes as the learner's starting masteries.

The session contract is :mod:`engine.placement.session`'s: a session's whole state is its seed
and its answers; the random draw of step ``k`` is fixed by ``(seed, k)``, so
:meth:`SkillPlacement.resume` replays the same selections and
:meth:`SkillPlacement.restore` rebuilds a session from its answers and the item it gives now
without selecting anything (an answer's update is one column of log-likelihoods).

**θ alongside.** Where the items have IRT parameters (``tables``, :class:`~engine.placement.
select.Tables` of the same items in the same order), the session also keeps the EAP estimate of
one ability over the same answers, as the θ placement does: what a client of that placement
reads. It does not steer the test, except through the optional standard-error stop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.placement.estimate import Estimate, eap
from engine.placement.knowledge import KnowledgeModel
from engine.placement.mastery import CLIP
from engine.placement.select import Tables

__all__ = ["DEFAULT_CONFIDENCE", "SkillEstimate", "SkillPlacement", "SkillSession", "SkillStop"]


#: a per-skill test ends once every skill's P(known) is at least this or at most 1 minus it:
#: 0.9 is the default policy's mastery threshold (``engine.selection.spaced.MASTERY_THRESHOLD``),
#: at which the journey counts a seeded skill learned; a higher one spent items lifting skills
#: the course already counted as learned (the known-skills journey: 10 items at 0.95, 8-9 at 0.9)
DEFAULT_CONFIDENCE = 0.9


@dataclass(frozen=True, slots=True)
class SkillStop:
    """When a per-skill test ends: at ``max_length`` items; or, with at least ``min_length``
    given, once every skill is classified at ``confidence`` (its P(known) at least that or at
    most 1 - that; None: never), or once θ's standard error is at most ``se`` (None: never;
    needs the items' IRT parameters)."""

    min_length: int = 3
    max_length: int = 20
    confidence: float | None = DEFAULT_CONFIDENCE
    se: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.min_length <= self.max_length or self.max_length < 1:
            raise ValueError(f"stop rule: need 0 <= min_length <= max_length and max_length >= "
                             f"1, got {self.min_length} and {self.max_length}")
        if self.confidence is not None and not 0.5 < self.confidence < 1.0:
            raise ValueError(f"stop rule: the confidence must be in (0.5, 1), got "
                             f"{self.confidence}")
        if self.se is not None and self.se <= 0:
            raise ValueError(f"stop rule: the standard-error target must be above 0, got "
                             f"{self.se}")


@dataclass(frozen=True, slots=True)
class SkillEstimate:
    """One skill's estimate: P(known), and how many answers were to items practising it (the
    rest of what the test knows of it comes through the prerequisite graph)."""

    skill: str
    p_known: float
    answered: int


@dataclass(frozen=True, eq=False)
class SkillPlacement:
    """A configured per-skill test over ``model``'s items. ``randomesque``: each item is drawn
    among that many most informative (exposure control: the items of one skill are about
    equally informative, so this mostly varies which of them is given); ``tables``: the same
    items' IRT tables, for θ (module doc)."""

    model: KnowledgeModel
    stop: SkillStop = field(default_factory=SkillStop)
    randomesque: int = 1
    tables: Tables | None = None

    def __post_init__(self) -> None:
        if self.randomesque < 1:
            raise ValueError(f"randomesque must be at least 1, got {self.randomesque}")
        if self.tables is not None and self.tables.bank.ids != tuple(
                i.id for i in self.model.items):
            raise ValueError("tables: built for other items than the model's (or in another "
                             "order)")
        if self.stop.se is not None and self.tables is None:
            raise ValueError("a standard-error stop needs the items' IRT parameters (tables)")

    def start(self, seed: int) -> SkillSession:
        """A new examinee's test."""
        return SkillSession(self, seed)

    def resume(self, seed: int, answers: Sequence[tuple[str, bool]]) -> SkillSession:
        """The session that gave ``answers`` (item id, correct), replayed; ValueError if an
        answer is not to the item this test would have given at that point."""
        session = self.start(seed)
        for item, correct in answers:
            session.answer(item, correct)
        return session

    def restore(self, seed: int, answers: Sequence[tuple[str, bool]],
                pending: str | None) -> SkillSession:
        """The session that gave ``answers`` and gives ``pending`` now (None: it is over, or
        its next item is to be selected), as :meth:`resume` would replay it, without
        selecting anything. ValueError for an item the test does not have, one answered
        twice, or a ``pending`` item answered already."""
        session = self.start(seed)
        try:
            for item, correct in answers:
                j = self.model.index[item]
                if not session._available[j]:
                    raise ValueError(f"item {item!r} is answered twice")
                session._record(j, correct)
            if pending is not None:
                j = self.model.index[pending]
                if not session._available[j]:
                    raise ValueError(f"the pending item {pending!r} is answered already")
                session._pending = j
        except KeyError as exc:
            raise ValueError(f"item {exc.args[0]!r} is not one of the test's items") from None
        return session


class SkillSession:
    """One examinee's per-skill test: :meth:`next_item`, :meth:`answer`, until :attr:`done`."""

    def __init__(self, placement: SkillPlacement, seed: int) -> None:
        self.placement = placement
        self.seed = int(seed)
        model = placement.model
        self._log_weights = np.zeros(model.shape, dtype=np.float32)
        self._available = np.ones(len(model.items), dtype=bool)
        self._given: list[int] = []
        self._correct: list[bool] = []
        self._answered = np.zeros(len(model.skills), dtype=np.int64)
        self._skill_index = {s: k for k, s in enumerate(model.skills)}
        self._pending: int | None = None
        self._probabilities: tuple[np.ndarray, np.ndarray] | None = None
        tables = placement.tables
        self._theta_log_likelihood: np.ndarray | None = None
        self._theta: Estimate | None = None
        if tables is not None:
            self._theta_log_likelihood = np.zeros(len(tables.grid.points))
            self._theta = eap(tables.grid, self._theta_log_likelihood)[0]

    # ------------------------------------------------------------------ state
    @property
    def length(self) -> int:
        return len(self._given)

    @property
    def answers(self) -> list[tuple[str, bool]]:
        items = self.placement.model.items
        return [(items[j].id, c) for j, c in zip(self._given, self._correct, strict=True)]

    @property
    def pending(self) -> str | None:
        """The item given now if it is selected already (:meth:`next_item` selects it)."""
        return None if self._pending is None else self.placement.model.items[self._pending].id

    @property
    def probabilities(self) -> np.ndarray:
        """The model's columns' posterior probabilities (the skills' P(known) first)."""
        return self._posterior()[0]

    @property
    def responder_types(self) -> np.ndarray:
        """Each responder type's posterior probability (:data:`~engine.placement.knowledge.
        PARTIAL_KNOWLEDGE`)."""
        return self._posterior()[1]

    def _posterior(self) -> tuple[np.ndarray, np.ndarray]:
        if self._probabilities is None:
            self._probabilities = self.placement.model.probabilities(self._log_weights)
        return self._probabilities

    @property
    def effective_states(self) -> float:
        """The posterior's effective sample size (:meth:`~engine.placement.knowledge.
        KnowledgeModel.effective_size`)."""
        return self.placement.model.effective_size(self._log_weights)

    @property
    def done(self) -> bool:
        stop = self.placement.stop
        if self.length >= stop.max_length or not self._available.any():
            return True
        if self.length < stop.min_length:
            return False
        if stop.se is not None and self._theta is not None and self._theta.se <= stop.se:
            return True
        if stop.confidence is None:
            return False
        p = self.probabilities[:len(self.placement.model.skills)]
        return bool(np.all(np.minimum(p, 1.0 - p) <= 1.0 - stop.confidence))

    def skills(self) -> list[SkillEstimate]:
        """Each skill's estimate, in the model's order (prerequisites first)."""
        p = self.probabilities
        return [SkillEstimate(s, float(p[k]), int(self._answered[k]))
                for k, s in enumerate(self.placement.model.skills)]

    def mastery(self) -> dict[str, float]:
        """Each skill's starting P(mastered) for a tracer: its P(known), kept off certainty
        (:data:`~engine.placement.mastery.CLIP`: a tracer must still be able to move it)."""
        p = np.clip(self.probabilities[:len(self.placement.model.skills)], *CLIP)
        return {s: float(v) for s, v in zip(self.placement.model.skills, p, strict=True)}

    def estimate(self) -> Estimate | None:
        """θ (EAP) and its standard error over the answers (None: no IRT parameters)."""
        return self._theta

    def to_dict(self) -> dict[str, Any]:
        """What a server stores: the seed and the answers (everything else is recomputed)."""
        return {"seed": self.seed, "answers": [[i, c] for i, c in self.answers]}

    # ------------------------------------------------------------------ steps
    def next_item(self) -> str | None:
        """The id of the item to give now (the same until it is answered); None when done."""
        if self.done:
            return None
        if self._pending is None:
            self._pending = self._select()
        return self.placement.model.items[self._pending].id

    def answer(self, item: str, correct: bool) -> None:
        """Record the answer to the item :meth:`next_item` gives."""
        expected = self.next_item()
        if expected is None:
            raise ValueError(f"the placement test is over ({self.length} items); no answer to "
                             f"{item!r} is expected")
        if item != expected:
            raise ValueError(f"the placement test gives item {expected!r} now, not {item!r}")
        self._pending = None
        self._record(self.placement.model.index[item], correct)

    def _record(self, j: int, correct: bool) -> None:
        """Take the answer to item ``j``: the states' weights, θ, the skills' counts."""
        model = self.placement.model
        self._given.append(j)
        self._correct.append(bool(correct))
        self._available[j] = False
        self._log_weights += model.log_likelihood(j, correct)
        self._probabilities = None
        for skill in model.items[j].skills:
            self._answered[self._skill_index[skill]] += 1
        tables = self.placement.tables
        if tables is not None and self._theta_log_likelihood is not None:
            column = tables.log_p if correct else tables.log_q
            self._theta_log_likelihood += column[:, j]
            self._theta = eap(tables.grid, self._theta_log_likelihood)[0]

    def _select(self) -> int:
        """The most informative available item (a draw among the ``randomesque`` most)."""
        score = np.where(self._available, self.placement.model.information(*self._posterior()),
                         -np.inf)
        top = min(self.placement.randomesque, len(self._available) - self.length)
        if top == 1:
            return int(np.argmax(score))
        best = np.argpartition(-score, top - 1)[:top]
        best = best[np.lexsort((best, -score[best]))]  # the most informative first
        return int(best[_draw(self.seed, self.length, top)])


_MASK = (1 << 64) - 1


def _draw(seed: int, step: int, n: int) -> int:
    """A draw in 0..n-1 fixed by (seed, step): SplitMix64 (Steele et al. 2014) of the two,
    the step's own random number, as cheap as a hash (a numpy generator per step costs more
    than the step's arithmetic)."""
    z = (seed * 0x9E3779B97F4A7C15 + step + 1) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return (z ^ (z >> 31)) % n
