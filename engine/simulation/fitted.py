"""The ``fitted-bkt`` family: learners drawn from BKT with forgetting fitted on real answers.

The other families are models someone here wrote down; a policy could look good only because
it suits the way they were written. This one is the project's own ``bkt-forgets`` tracer fitted
on a real log (ASSISTments 2009-10 skill builder, the DKT paper's training split, 407,967
answers), used as the environment: nobody chose its numbers with a policy in mind. The fitted
parameters ship in ``fitted_params/`` (derived numbers, not data, so a clone without
``../shared`` has them); ``bench/fit_simulation_env.py`` regenerates the file from the dataset,
and a test checks the file against a refit.

**Mapping onto a catalog.** Each catalog skill plays one real skill, drawn without replacement
(again after every real skill is used) from the real skills with at least 1,000 training answers
(parameters that data pins down), by a generator seeded from the catalog's skill ids: the same
catalog always gets the same real skills (:attr:`FittedBKTPopulation.real_skills`), whatever the
learners' seed. Items of a skill answer with the skill's fitted guess and slip (the model has no
per-item parameters), so item difficulty plays no part here.

**Ground truth.** Each learner holds a true binary state per skill, drawn from the fitted prior.
P(correct) of an item is the fitted model's own: the mean over its skills of ``1 - slip`` (known)
or ``guess`` (not known). Each practice of an item is one BKT opportunity for each of its
skills: a known skill is forgotten with the fitted ``forget`` probability, an unknown one is
learned with the fitted ``learn`` probability, **only if the learner knows every direct
prerequisite of the skill** in the catalog (the one rule added to the fit: ASSISTments has no
prerequisite graph to fit it from). True mastery is the known state. The fitted forgetting is
per opportunity, as BKT+forgetting defines it: the log has no times, so nothing here decays
between sessions and retention tests score what the post-test scores; time-based forgetting is
what the other two families measure.

Random draws come from a counter-based generator keyed by (seed, learner, skill, opportunity):
a learner meets the same luck on the n-th practice of a skill under every policy, which makes
paired comparisons of policies tighter than a shared random stream would.
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog import Catalog
from engine.events import AnswerLog
from engine.simulation.base import FAMILIES, Population
from engine.simulation.catalog_arrays import CatalogArrays
from engine.tracing.registry import make_tracer, to_pybkt, tracer_from_bytes

MODEL = "bkt-forgets"  #: the registry model fitted
PARAMS = Path(__file__).resolve().parent / "fitted_params" / "assist2009-bkt-forgets.json"
MIN_ANSWERS = 1_000  #: training answers a real skill needs to play a catalog skill


def fit_environment(train: AnswerLog, *, num_fits: int = 5, seed: int = 42) -> dict[str, Any]:
    """The parameter document of this family fitted on ``train``: the fitted tracer's own file
    (what :func:`~engine.tracing.registry.load_tracer` reads) plus each skill's number of
    answers under ``answers_per_skill``."""
    tracer = make_tracer(MODEL, num_fits=num_fits, seed=seed).fit(train)
    doc: dict[str, Any] = json.loads(tracer.to_bytes())
    answers = np.bincount(train.skill_codes, minlength=len(train.skill_ids))
    counts = dict(zip((str(s) for s in train.skill_ids), answers.tolist(), strict=True))
    doc["answers_per_skill"] = {s: counts[s] for s in tracer.skills}
    return doc


@dataclass(frozen=True, eq=False)
class Environment:
    """The fitted parameters of the real skills eligible to play catalog skills."""

    skills: tuple[str, ...]
    prior: np.ndarray
    learn: np.ndarray
    forget: np.ndarray
    guess: np.ndarray
    slip: np.ndarray


@functools.cache
def environment(path: Path = PARAMS) -> Environment:
    """The fitted model in ``path``, read through the tracer registry, restricted to the skills
    with at least :data:`MIN_ANSWERS` answers."""
    data = path.read_bytes()
    doc = json.loads(data)
    coef = to_pybkt(tracer_from_bytes(doc["model"], data, source=str(path)))
    skills = tuple(s for s in coef if doc["answers_per_skill"][s] >= MIN_ANSWERS)

    def column(key: str) -> np.ndarray:  # a skill's value, or its "default" (last) class's
        return np.array([np.ravel(coef[s][key])[-1] for s in skills], dtype=float)

    return Environment(skills, column("prior"), column("learns"), column("forgets"),
                       column("guesses"), column("slips"))


def real_skills_for(skill_ids: tuple[str, ...], real: tuple[str, ...]) -> tuple[str, ...]:
    """The real skill each catalog skill plays: a seeded draw without replacement (repeated once
    every real skill is used), seeded by the catalog's skill ids."""
    rng = np.random.default_rng(zlib.crc32("\n".join(skill_ids).encode()))
    rounds = max(1, -(-len(skill_ids) // len(real)))
    order = np.concatenate([rng.permutation(len(real)) for _ in range(rounds)])
    return tuple(real[j] for j in order[:len(skill_ids)])


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection of 64-bit integers that scatters nearby inputs."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    result: np.ndarray = x ^ (x >> np.uint64(31))
    return result


def counter_uniform(seed: int, *keys: np.ndarray | int) -> np.ndarray:
    """U(0, 1) draws that are a fixed function of ``(seed, *keys)`` (broadcast integer arrays):
    the same keys give the same draw whatever else was drawn before."""
    arrays = np.broadcast_arrays(*(np.asarray(k, dtype=np.int64) for k in keys))
    x = np.full(arrays[0].shape, seed % 2**64, dtype=np.uint64)
    with np.errstate(over="ignore"):  # 64-bit arithmetic wraps around on purpose
        for key in arrays:
            x = _mix(x ^ _mix(key.astype(np.uint64) + _GOLDEN))
    result: np.ndarray = (x >> np.uint64(11)) * 2.0 ** -53
    return result


class FittedBKTPopulation(Population):
    """Learners whose true states follow BKT+forgetting fitted on ASSISTments 2009 (module
    docstring)."""

    family = "fitted-bkt"

    def __init__(self, catalog: Catalog, n: int, seed: int) -> None:
        super().__init__(catalog, n, seed)
        env = environment()
        self.real_skills = real_skills_for(self.skill_ids, env.skills)
        at = {s: j for j, s in enumerate(env.skills)}
        use = np.array([at[s] for s in self.real_skills], dtype=np.intp)
        self.prior, self.learn, self.forget = env.prior[use], env.learn[use], env.forget[use]
        self.guess, self.slip = env.guess[use], env.slip[use]
        self._arrays = CatalogArrays.of(catalog)
        k = len(self.skill_ids)
        self.known = counter_uniform(seed, np.arange(n)[:, None], np.arange(k), 0) < self.prior
        self.opportunities = np.zeros((n, k), dtype=np.int64)

    def p_correct(self, items: np.ndarray, at: float) -> np.ndarray:
        """The fitted model's P(correct): the mean over the item's skills of ``1 - slip`` where
        the skill is known and ``guess`` where not."""
        skills, mask = self._arrays.safe_items(items)
        known = self.known[np.arange(self.n)[:, None], skills]
        p = np.where(known, 1.0 - self.slip[skills], self.guess[skills])
        result: np.ndarray = (p * mask).sum(axis=1) / mask.sum(axis=1)
        return result

    def test_score(self, items: np.ndarray, at: float) -> np.ndarray:
        """The mean of :meth:`p_correct` over ``items``, which is linear in the per-skill
        P(correct): one matrix product with each skill's weight in the test."""
        items = np.asarray(items, dtype=np.intp)
        if not len(items):
            return np.zeros(self.n)
        mask = self._arrays.item_mask[items]
        weight = np.bincount(self._arrays.item_skill[items][mask],
                             np.repeat(1.0 / mask.sum(axis=1), mask.sum(axis=1)),
                             len(self.skill_ids)) / len(items)
        per_skill = np.where(self.known, 1.0 - self.slip, self.guess)
        result: np.ndarray = per_skill @ weight
        return result

    def mastery(self, at: float) -> np.ndarray:
        return self.known.copy()

    def practise(self, items: np.ndarray, correct: np.ndarray, at: float) -> None:
        learners, skills = self._arrays.pairs(items)
        if not len(learners):
            return
        count = self.opportunities[learners, skills] + 1
        draw = counter_uniform(self.seed, learners, skills, count)
        can_learn = self._arrays.prerequisites_known(lambda r, c: self.known[r, c],
                                                     learners, skills)
        self.known[learners, skills] = np.where(self.known[learners, skills],
                                                draw >= self.forget[skills],
                                                can_learn & (draw < self.learn[skills]))
        self.opportunities[learners, skills] = count

FAMILIES[FittedBKTPopulation.family] = FittedBKTPopulation
