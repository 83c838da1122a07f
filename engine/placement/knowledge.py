"""A course's knowledge structure for a per-skill placement: the sets of skills a learner can
know, a prior over them, what an answer says about them, and which item says the most.

**States** (knowledge space theory, Doignon & Falmagne 1999). A learner's knowledge state is
the set of the course's skills they know, closed under prerequisites: whoever knows a skill
knows the skills it requires. Prerequisites outside the course are not part of the model (a
course is placed in on its own).

**Prior.** Nothing is assumed of the learner: every amount of the course, from none of its
skills to all of them, is equally likely, and for an amount the skills were learnt in a random
order that respects the prerequisites (each next skill uniform among those whose prerequisites
are known). Mass on every size of state is what a placement needs: a learner who knows most
of the course is why one is taken. (The skills' BKT priors describe a learner who starts the
course, the one who skips placement.)

**Answers.** An item is answered right with probability ``1 - slip`` when the learner knows
every skill it practises, else ``guess`` (DINA; Junker & Sijtsma 2001), with the content's own
BKT guess and slip: the item's where it sets them, else its skills' (the mean over the skills
of an item of several). The emission is the tracer's, so a skill's P(known) here means what
the tracer's P(mastered) means, and seeds it as is.

**Posterior: weighted states.** The prior is represented by :data:`PARTICLES` states drawn
from it once per course, seeded (the same states in every worker and after a restart); a
learner's posterior is one log-weight per state, the sum of the log-likelihoods of their
answers (importance sampling with the prior as the proposal: Doucet, de Freitas & Gordon
2001). A skill's P(known) is the weighted share of the states that hold it. The graph is used
both ways with no extra rule: a right answer raises the states holding the item's skills, which
hold their prerequisites too; a wrong answer lowers the states holding them, which are the only
states that hold what builds on them.

**Which item** (:meth:`KnowledgeModel.information`): the one whose answer carries the most
information about the learner's state, the mutual information between the answer and the
state, ``H(P(right)) - P(E) H(slip) - (1 - P(E)) H(guess)`` with ``E`` "the learner knows
every skill of the item" (the expected reduction of the state's entropy, the criterion of
ALEKS-style assessment): an item whose skills are known with probability near one half, on
which a guess or a slip is rare. It needs only ``P(E)`` per item, which the same weighted sum
as the skills' P(known) gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
from scipy.special import entr

from engine.catalog import Catalog

__all__ = ["PARTIAL_KNOWLEDGE", "PARTICLES", "PARTICLE_SEED", "DiagnosticItem", "KnowledgeModel",
           "entropy", "sample_states"]

#: states representing the prior: classification accuracy on generated:60 (20 items, learners
#: who know a random prerequisite-closed half) is the same as with 4,096 to 0.001, 0.004 above
#: 2,048's; a step's cost is linear in it (bench/placement_step.py)
PARTICLES = 3072
#: the seed of the states: fixed, so every worker and every restart draws the same ones
PARTICLE_SEED = 0
#: the responder types: the share of the gap between guess and 1 - slip that a learner's
#: answers on what they do not know close (0: as the content's guess says; 0.5: half-way)
PARTIAL_KNOWLEDGE = (0.0, 0.5)


def entropy(p: np.ndarray) -> np.ndarray:
    """Binary entropy in nats, elementwise (0 at 0 and 1)."""
    result: np.ndarray = entr(p) + entr(1.0 - p)
    return result


@dataclass(frozen=True, slots=True)
class DiagnosticItem:
    """An item as the model sees it: the skills it practises, its guess and slip."""

    id: str
    skills: tuple[str, ...]
    guess: float
    slip: float


def _topological(requires: Mapping[str, Sequence[str]]) -> list[str]:
    """The skills, each after its prerequisites; ValueError for an unknown prerequisite or a
    cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed
    for root in requires:
        stack = [(root, iter(requires[root]))]
        state.setdefault(root, 1)
        if state[root] == 2:
            continue
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif child not in requires:
                raise ValueError(f"skill {node!r} requires {child!r}, which is not one of the "
                                 "model's skills")
            elif state.get(child) == 1:
                raise ValueError(f"the prerequisites form a cycle through {child!r}")
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(requires[child])))
    return order


def sample_states(requires: Sequence[Sequence[int]], n: int, rng: np.random.Generator,
                  size: int | None = None) -> np.ndarray:
    """``n`` states from the prior (module doc): bool ``(n, skills)``. ``requires[k]``: the
    indices of skill ``k``'s prerequisites, all below ``k`` (skills in prerequisite order).

    Each state has a size uniform in 0..skills (``size``: that size, every one) and is the
    first that many skills of a random learning order in which each next skill is uniform
    among those not known whose prerequisites all are. Drawn with exponential clocks: a skill
    is learnt an Exp(1) time after its last prerequisite is; by memorylessness, the next skill
    learnt is then uniform among those open at every moment. One pass over the skills, and a
    sort per state."""
    skills = len(requires)
    if any(r >= k or r < 0 for k, reqs in enumerate(requires) for r in reqs):
        raise ValueError("sample_states: list the skills in prerequisite order (each "
                         "skill's prerequisites before it)")
    if size is not None and not 0 <= size <= skills:
        raise ValueError(f"a state of {size} skills out of {skills} cannot be drawn")
    learnt = rng.exponential(size=(n, skills))
    for k, reqs in enumerate(requires):
        if reqs:
            learnt[:, k] += learnt[:, list(reqs)].max(axis=1)
    rank = np.argsort(np.argsort(learnt, axis=1), axis=1)
    sizes = rng.integers(0, skills + 1, n) if size is None else np.full(n, size)
    known: np.ndarray = rank < sizes[:, None]
    return known


@dataclass(frozen=True, eq=False)
class KnowledgeModel:
    """The knowledge structure of a set of skills and items, with the prior's states drawn
    (build with :meth:`build` or :meth:`from_catalog`). Immutable and shared by every session
    over the same content.

    ``holds``: ``(particles, columns)``, whether each state holds each event: the first
    ``len(skills)`` columns are the skills, the others the conjunctions that items of several
    skills need (an item whose skills are one skill and that skill's prerequisites needs that
    skill's column); ``columns``: the same transposed, as float32, for one matrix-vector
    product a step. ``column[j]``: item ``j``'s event."""

    skills: tuple[str, ...]
    items: tuple[DiagnosticItem, ...]
    holds: np.ndarray
    columns: np.ndarray
    column: np.ndarray
    #: P(right) without the item's skills, per responder type and item (types x items)
    guess: np.ndarray
    slip: np.ndarray
    index: Mapping[str, int]
    #: the answer's entropy when the item's skills are not all known (types x items), and
    #: when they are (items): the information's noise terms
    noise: np.ndarray
    slip_noise: np.ndarray
    #: log P(answer) when the item's skills are all known ([wrong, right] x items) and when
    #: not ([wrong, right] x types x items), float32 as the learners' log-weights
    log_held: np.ndarray
    log_not_held: np.ndarray

    @classmethod
    def build(cls, requires: Mapping[str, Sequence[str]], items: Sequence[DiagnosticItem], *,
              particles: int = PARTICLES, seed: int = PARTICLE_SEED,
              partial: Sequence[float] = PARTIAL_KNOWLEDGE) -> KnowledgeModel:
        """The model of the skills ``requires`` maps to their prerequisites (every one of
        them a key), and of ``items`` (every skill one of them), with ``particles`` states
        drawn from the prior with ``seed``, and the responder types ``partial`` (module doc).
        ValueError naming what to fix."""
        if not partial or any(not 0.0 <= x < 1.0 for x in partial):
            raise ValueError(f"responder types: give at least one share in [0, 1), got "
                             f"{list(partial)}")
        if particles < 2:
            raise ValueError(f"a knowledge model needs at least 2 particles, got {particles}")
        order = _topological(requires)
        if not order:
            raise ValueError("a knowledge model needs at least one skill")
        if not items:
            raise ValueError("a knowledge model needs at least one item")
        position = {s: k for k, s in enumerate(order)}
        ancestors: list[frozenset[int]] = []
        for s in order:
            direct = [position[r] for r in requires[s]]
            ancestors.append(frozenset(direct).union(*(ancestors[r] for r in direct)))
        conjunctions: dict[frozenset[int], int] = {}
        column = np.empty(len(items), dtype=np.int64)
        seen: set[str] = set()
        for j, item in enumerate(items):
            if item.id in seen:
                raise ValueError(f"item {item.id!r} is given twice")
            seen.add(item.id)
            unknown = [s for s in item.skills if s not in position]
            if not item.skills or unknown:
                raise ValueError(f"item {item.id!r} must practise at least one of the model's "
                                 f"skills and no other (unknown: {unknown})")
            if not (0.0 < item.guess < 1.0 - item.slip < 1.0):
                raise ValueError(f"item {item.id!r}: need 0 < guess < 1 - slip < 1 (a right "
                                 f"answer must be evidence of knowing), got guess {item.guess} "
                                 f"and slip {item.slip}")
            needed = {position[s] for s in item.skills}
            # a skill implied by another of the item's skills adds nothing to the event
            tops = frozenset(k for k in needed if not any(k in ancestors[o] for o in needed))
            if len(tops) == 1:
                column[j] = next(iter(tops))
            else:
                column[j] = conjunctions.setdefault(tops, len(order) + len(conjunctions))
        rng = np.random.default_rng(seed)
        known = sample_states([[position[r] for r in requires[s]] for s in order],
                              particles, rng)
        extra = [known[:, sorted(tops)].all(axis=1) for tops in conjunctions]
        holds = np.column_stack([known, *extra]) if extra else known
        holds.setflags(write=False)
        columns = np.ascontiguousarray(holds.T, dtype=np.float32)
        columns.setflags(write=False)
        slip = np.array([i.slip for i in items])
        base = np.array([i.guess for i in items])
        guess = base + np.array(partial)[:, None] * (1.0 - slip - base)
        noise = entropy(guess)
        slip_noise = entropy(slip)
        log_held = np.log(np.stack([slip, 1.0 - slip])).astype(np.float32)
        log_not_held = np.log(np.stack([1.0 - guess, guess])).astype(np.float32)
        for array in (column, guess, slip, noise, slip_noise, log_held, log_not_held):
            array.setflags(write=False)
        return cls(tuple(order), tuple(items), holds, columns, column, guess, slip,
                   MappingProxyType({i.id: j for j, i in enumerate(items)}), noise, slip_noise,
                   log_held, log_not_held)

    @classmethod
    def from_catalog(cls, catalog: Catalog, skills: Sequence[str], items: Sequence[str], *,
                     particles: int = PARTICLES, seed: int = PARTICLE_SEED) -> KnowledgeModel:
        """The model of ``skills`` (a course's: prerequisites outside them are left out) and
        of the catalog's ``items`` (each practising only those skills), with the content's
        BKT guess and slip (module doc)."""
        chosen = set(skills)
        requires = {s: [r for r in catalog.skills[s].requires if r in chosen] for s in skills}
        diagnostic = []
        for item_id in items:
            item = catalog.items[item_id]
            params = [catalog.skills[s].bkt for s in item.skills]
            guess = item.guess if item.guess is not None else float(
                np.mean([p.guess for p in params]))
            slip = item.slip if item.slip is not None else float(
                np.mean([p.slip for p in params]))
            diagnostic.append(DiagnosticItem(item.id, item.skills, guess, slip))
        return cls.build(requires, diagnostic, particles=particles, seed=seed)

    # ------------------------------------------------------------------ per learner
    @property
    def nbytes(self) -> int:
        """About what the model holds in memory (the states, twice): what a cache counts."""
        return int(self.holds.nbytes + self.columns.nbytes) + 200 * len(self.items)

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of a learner's log-weights (float32): responder types x states."""
        return len(self.guess), len(self.holds)

    def log_likelihood(self, item: int, correct: bool) -> np.ndarray:
        """Each (responder type, state)'s log-likelihood of answering item ``item`` (index)
        right or wrong (float32, as the log-weights it is added to)."""
        not_held = self.log_not_held[int(correct), :, item, None]
        result: np.ndarray = not_held + (self.log_held[int(correct), item] - not_held) \
            * self.columns[self.column[item]]
        return result

    def probabilities(self, log_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every column's posterior probability (the skills' P(known) first), and each
        responder type's, from the log-weights."""
        weights = np.exp(log_weights - log_weights.max())
        types = weights.sum(axis=1, dtype=np.float64)
        total = types.sum()
        result: np.ndarray = np.minimum(self.columns @ weights.sum(axis=0) / total, 1.0)
        return result, types / total

    @staticmethod
    def effective_size(log_weights: np.ndarray) -> float:
        """The weights' effective sample size (Kish): how many equally weighted states the
        posterior amounts to (small: the probabilities rest on few states)."""
        weights = np.exp(log_weights - log_weights.max()).sum(axis=0, dtype=np.float64)
        return float(weights.sum() ** 2 / (weights @ weights))

    def information(self, probabilities: np.ndarray, types: np.ndarray) -> np.ndarray:
        """Each item's expected information about the state (module doc), from the columns'
        and the responder types' posterior probabilities (taken as independent)."""
        held = probabilities[self.column]
        guess = types @ self.guess
        right = guess + (1.0 - self.slip - guess) * held
        result: np.ndarray = (entropy(right) - held * self.slip_noise
                              - (1.0 - held) * (types @ self.noise))
        return result
