"""``prereq-forget``: knowledge with prerequisites and forgetting.

Each learner knows each skill or not (a latent bit, as in BKT), with three departures from the
engine's BKT that a policy must cope with:

* **Prerequisites gate learning.** Practising a skill teaches it (with probability
  ``1 - (1 - learn)^speed``: the skill's BKT learn rate, the learner's speed) only while every
  prerequisite is known at that moment; otherwise nothing is learnt, however much it is
  practised. Prior knowledge respects the graph too (drawn in topological order with the
  skill's BKT prior, and only where the prerequisites are known).
* **Learning speed varies between learners**: ``speed`` is log-normal (median 1, sigma 0.5).
* **Knowledge decays.** A known skill is forgotten after an exponential time with mean
  ``stability`` (days); the time is drawn when the skill is learnt or practised, so reading the
  state never draws anything. New knowledge starts at ``10 x memory`` days (``memory``
  log-normal per learner, sigma 0.3), prior knowledge at ``60 x memory``. Practising a known
  skill multiplies its stability by ``1.05 + 2.5 (1 - R)``, R = exp(-elapsed / stability) the
  chance it would still be known: practice spaced until recall is uncertain strengthens memory
  far more than massed repetition (the spacing effect). A forgotten skill is relearnt like a
  new one but keeps its stability (savings).

Answers follow DINA: an item is answered right with probability ``1 - slip`` when every skill
it practises is known, else ``guess``. Guess and slip per item: the item's own when the catalog
sets them, else its skills' BKT guess and slip (mean over its skills), shifted in logit space by
the item's difficulty relative to its skill's mean item difficulty (harder: less guessing, more
slips). True mastery (:meth:`PrereqForget.mastery`) is the latent bit: known and not yet
forgotten.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from engine.catalog import Catalog
from engine.selection.prepared import prepare
from engine.simulation.base import DAY, FAMILIES, Population

__all__ = ["PrereqForget"]

#: days: mean time to forget new knowledge, and prior knowledge, for a learner of median memory
NEW_STABILITY_DAYS = 10.0
PRIOR_STABILITY_DAYS = 60.0
#: stability growth per practice of a known skill: MASSED_GAIN + SPACED_GAIN * (1 - recall)
MASSED_GAIN = 0.05
SPACED_GAIN = 2.5
#: logit shift of guess (down) and slip (up) per unit of relative item difficulty
DIFFICULTY_SHIFT = 0.5


class PrereqForget(Population):
    """Learners who need prerequisites, learn at different speeds and forget (module doc)."""

    family = "prereq-forget"

    def __init__(self, catalog: Catalog, n: int, seed: int) -> None:
        super().__init__(catalog, n, seed)
        self._rng = np.random.default_rng(seed)
        prepared = prepare(catalog)
        n_items, n_skills = len(self.item_ids), len(self.skill_ids)
        self._contains = np.zeros((n_items, n_skills), dtype=bool)
        self._contains[np.repeat(np.arange(n_items), prepared.pair_count),
                       prepared.pair_skill] = True
        self._edge_skill, self._edge_req = prepared.edge_skill, prepared.edge_req
        self._guess, self._slip = _item_guess_slip(catalog, self._contains)
        bkt = [catalog.skills[s].bkt for s in self.skill_ids]
        learn = np.array([p.learn for p in bkt])
        prior = np.array([p.prior for p in bkt])

        rng = self._rng
        self.speed = np.exp(rng.normal(0.0, 0.5, n))
        self.memory = np.exp(rng.normal(0.0, 0.3, n))
        #: P(learning a skill from one practice), learner x skill
        self.p_learn = 1.0 - (1.0 - learn[None, :]) ** self.speed[:, None]
        known = np.zeros((n, n_skills), dtype=bool)
        draws = rng.random((n, n_skills))
        position = {s: k for k, s in enumerate(self.skill_ids)}
        for sid in catalog.order:  # prerequisites first
            k = position[sid]
            reqs = [position[r] for r in catalog.skills[sid].requires]
            known[:, k] = (draws[:, k] < prior[k]) & known[:, reqs].all(axis=1)
        self.known = known
        self.stability = np.where(known, PRIOR_STABILITY_DAYS, NEW_STABILITY_DAYS) \
            * self.memory[:, None] * DAY
        self.last = np.zeros((n, n_skills))
        self.forget_at = np.where(known, rng.exponential(self.stability), np.inf)

    # ------------------------------------------------------------------ ground truth
    def mastery(self, at: float) -> np.ndarray:
        return self.known & (at < self.forget_at)

    def p_correct(self, items: np.ndarray, at: float) -> np.ndarray:
        j = np.where(items >= 0, items, 0)
        lacking = self._contains[j] & ~self.mastery(at)
        return np.where(lacking.any(axis=1), self._guess[j], 1.0 - self._slip[j])

    def test_score(self, items: np.ndarray, at: float) -> np.ndarray:
        items = np.asarray(items, dtype=np.int64)
        lacking = (self._contains[items].astype(np.float32)
                   @ (~self.mastery(at)).T.astype(np.float32)) > 0  # (items, learners)
        right = np.where(lacking, self._guess[items, None], 1.0 - self._slip[items, None])
        return right.mean(axis=0) if len(items) else np.zeros(self.n)

    # ------------------------------------------------------------------ learning
    def practise(self, items: np.ndarray, correct: np.ndarray, at: float) -> None:
        active = items >= 0
        practised = self._contains[np.where(active, items, 0)] & active[:, None]
        known = self.mastery(at)
        self.known = known  # forgetting that happened by now becomes part of the state
        missing = np.zeros(known.shape, dtype=bool)
        rows, edges = np.nonzero(~known[:, self._edge_req])
        missing[rows, self._edge_skill[edges]] = True
        draws = self._rng.random(known.shape)
        learnt = practised & ~known & ~missing & (draws < self.p_learn)
        recall = np.exp(-(at - self.last) / self.stability)
        strengthened = practised & known
        self.stability = np.where(
            strengthened, self.stability * (1.0 + MASSED_GAIN + SPACED_GAIN * (1.0 - recall)),
            self.stability)
        renewed = learnt | strengthened
        self.known = known | learnt
        self.last = np.where(renewed, at, self.last)
        self.forget_at = np.where(renewed, at + self._rng.exponential(self.stability),
                                  self.forget_at)


def _item_guess_slip(catalog: Catalog, contains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Guess and slip per item (catalog order), as the module doc states."""
    skills = [catalog.skills[s].bkt for s in catalog.skills]
    skill_guess = np.array([p.guess for p in skills])
    skill_slip = np.array([p.slip for p in skills])
    per_item = contains.sum(axis=1)
    guess = contains @ skill_guess / per_item
    slip = contains @ skill_slip / per_item
    items = list(catalog.items.values())
    difficulty = np.array([np.nan if i.difficulty is None else i.difficulty for i in items])
    rated = ~np.isnan(difficulty)
    if rated.any():  # relative to the mean difficulty of the items of the same skills
        filled = np.where(rated, difficulty, 0.0)
        per_skill = (contains * rated[:, None]).sum(axis=0)
        skill_mean = (contains * filled[:, None]).sum(axis=0) / np.maximum(per_skill, 1)
        shift = np.where(rated, filled - contains @ skill_mean / per_item, 0.0)
        guess = expit(logit(guess) - DIFFICULTY_SHIFT * shift)
        slip = expit(logit(slip) + DIFFICULTY_SHIFT * shift)
    guess = np.array([g if i.guess is None else i.guess for g, i in zip(guess, items,
                                                                          strict=True)])
    slip = np.array([s if i.slip is None else i.slip for s, i in zip(slip, items, strict=True)])
    return guess, np.minimum(slip, 0.99 - guess)  # knowing must help: guess + slip < 1


FAMILIES[PrereqForget.family] = PrereqForget
