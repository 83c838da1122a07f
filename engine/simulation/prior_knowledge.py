"""Simulated learners who know part of a course before it starts: which skills (the first part
in prerequisite order, or a random prerequisite-closed set each), and how each learner-model
family is made to know them (:data:`PRIOR_KNOWLEDGE`; see :mod:`engine.simulation.
placement_value`, whose study uses them, for the rules)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.catalog import Catalog
from engine.placement.knowledge import sample_states
from engine.selection.batch import scope
from engine.selection.prepared import prepare
from engine.simulation.base import DAY, Population, make_population
from engine.simulation.irt_memory import ABILITY_SD_SKILL, IRTMemoryPopulation
from engine.simulation.prereq_forget import PRIOR_STABILITY_DAYS, PrereqForget

__all__ = ["KNOWN_MARGIN_SD", "PRIOR_KNOWLEDGE", "KnowsRule", "known_skills",
           "population_knowing", "random_known"]

KNOWN_MARGIN_SD = ABILITY_SD_SKILL  #: irt-memory: SD of the half-normal margin above mastery


#: a family's rule for making its learners know given skills: (population, mask (n, catalog
#: skills) of the skills each learner knows, random generator)
KnowsRule = Callable[[Population, np.ndarray, np.random.Generator], None]


def _prereq_forget_knows(population: Population, known: np.ndarray,
                         rng: np.random.Generator) -> None:
    assert isinstance(population, PrereqForget)
    stability = np.broadcast_to(PRIOR_STABILITY_DAYS * population.memory[:, None] * DAY,
                                known.shape)
    population.known |= known
    population.stability = np.where(known, stability, population.stability)
    population.forget_at = np.where(known, rng.exponential(stability), population.forget_at)


def _irt_memory_knows(population: Population, known: np.ndarray,
                      rng: np.random.Generator) -> None:
    assert isinstance(population, IRTMemoryPopulation)
    floor = population.threshold + np.abs(rng.normal(0.0, KNOWN_MARGIN_SD, known.shape))
    population.base = np.where(known, np.maximum(population.base, floor), population.base)


#: family -> how its learners are made to know given skills before the course (module doc)
PRIOR_KNOWLEDGE: dict[str, KnowsRule] = {
    PrereqForget.family: _prereq_forget_knows,
    IRTMemoryPopulation.family: _irt_memory_knows,
}


def _check_share(share: float) -> None:
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"the known share of the course must be in [0, 1], got {share}")


def known_skills(catalog: Catalog, course: str | None, share: float) -> np.ndarray:
    """The first ``share`` of the course's skills in prerequisite order (catalog skill
    indices): ordered by depth in the prerequisite graph (a skill comes after all of its
    prerequisites), then by the mean difficulty of its items, so a learner who knows them knows
    every prerequisite of what they know, and the easier of two skills at the same depth."""
    _check_share(share)
    in_course = scope(prepare(catalog), course)[1]
    position = {s: k for k, s in enumerate(catalog.skills)}
    depth: dict[str, int] = {}
    for sid in catalog.order:  # prerequisites first
        depth[sid] = 1 + max((depth[r] for r in catalog.skills[sid].requires), default=-1)
    difficulty: dict[str, list[float]] = {}
    for item in catalog.items.values():
        for sid in item.skills:
            difficulty.setdefault(sid, []).append(item.difficulty or 0.0)
    ordered = sorted((s for s in catalog.order if in_course[position[s]]),
                     key=lambda s: (depth[s], float(np.mean(difficulty.get(s, [0.0])))))
    return np.array([position[s] for s in ordered[:round(share * len(ordered))]],
                    dtype=np.int64)


def random_known(catalog: Catalog, course: str | None, share: float, n: int,
                 seed: int) -> np.ndarray:
    """For each of ``n`` learners, a random prerequisite-closed set of ``share`` of the
    course's skills (module doc): bool ``(n, catalog skills)``. Prerequisites outside the
    course are not drawn (a course is learnt on its own)."""
    _check_share(share)
    in_course = scope(prepare(catalog), course)[1]
    ids = list(catalog.skills)
    skills = [s for s in catalog.order if in_course[ids.index(s)]]
    position = {s: k for k, s in enumerate(skills)}
    requires = [[position[r] for r in catalog.skills[s].requires if r in position]
                for s in skills]
    drawn = sample_states(requires, n, np.random.default_rng([seed, 0x5EED]),
                          size=round(share * len(skills)))
    known = np.zeros((n, len(ids)), dtype=bool)
    known[:, [ids.index(s) for s in skills]] = drawn
    return known


def population_knowing(family: str, catalog: Catalog, skills: np.ndarray, n: int,
                       seed: int) -> Population:
    """``n`` learners of ``family`` (seed ``seed``) who know ``skills`` at the start: catalog
    skill indices (every learner the same), or a bool mask ``(n, catalog skills)`` (each
    learner their own, as :func:`random_known` draws)."""
    try:
        knows = PRIOR_KNOWLEDGE[family]
    except KeyError:
        raise ValueError(f"the placement study supports the learner models "
                         f"{', '.join(sorted(PRIOR_KNOWLEDGE))}, not {family!r}") from None
    mask = np.asarray(skills)
    if mask.ndim == 1:
        mask = np.zeros((n, len(catalog.skills)), dtype=bool)
        mask[:, np.asarray(skills, dtype=np.int64)] = True
    elif mask.shape != (n, len(catalog.skills)) or mask.dtype != bool:
        raise ValueError(f"known skills: give catalog skill indices or a bool mask of shape "
                         f"({n}, {len(catalog.skills)}), got {mask.dtype} {mask.shape}")
    population = make_population(family, catalog, n, seed)
    knows(population, mask, np.random.default_rng([seed, 0xC0FFEE]))
    return population
