"""The ``irt-memory`` family: ability on an IRT scale that grows with practice, held in a memory
that strengthens with spaced practice and fades with time.

Where the prerequisites-and-forgetting family treats a skill as known or not, this one is graded
and continuous, so policies that help in one and not the other show it (Doroudi, Aleven &
Brunskill 2019: conclusions often hinge on one learner model). Its parts are standard models,
each in its usual form:

**Ability** (an item response model). Learner ``i``'s ability on skill ``k`` at time ``t`` is
``theta = base[i, k] + gain[i, k] * R(t)``: ``base`` is what the learner knew before the course
(it does not fade), ``gain`` what they learned since, recalled with probability-like weight
``R(t)``. ``base`` is drawn so that the share of learners who master the skill before any
practice is the skill's BKT ``prior`` in the catalog (a general ability shared by a learner's
skills plus a skill-specific part, normal, SD 0.8 and 0.6).

**P(correct)** of item ``j`` (3PL, conjunctive over its skills): ``c_j + (1 - c_j) *
prod_k sigmoid(a_j * (theta_k - b_j))`` with the item's ``difficulty`` ``b``,
``discrimination`` ``a`` and ``guessing`` ``c`` (0, 1 and 0 where the item gives none). An item
with several skills needs every one of them (a noisy AND): a word problem on fractions and
negative numbers is failed by a learner who lacks either.

**Learning** (AFM-style, Cen et al. 2006): each practice of an item adds a fixed learning rate
to the gain of each of its skills, ``rate[i, k] = learn_k * m_i * m_ik`` logits, with the
skill's BKT ``learn`` from the catalog and log-normal learner and learner-skill speeds (mean 1,
SD 0.4 and 0.2 on the log scale), so learning speed varies between learners. **Prerequisites**:
a practice adds nothing unless the learner masters every direct prerequisite of the skill at
that moment (a forgotten prerequisite blocks the skill again until it is revived).

**Memory** (FSRS-4.5's forgetting curve and stability updates, Ye 2023, with its default
weights and difficulty fixed at the middle value 5): ``R(t) = (1 + 19/81 * days / S) ** -0.5``
since the last practice of the skill, so ``R = 0.9`` after ``S`` days. A correct answer
multiplies the stability ``S`` by ``1 + e^w8 (11 - D) S^-w9 (e^(w10 (1 - R)) - 1)``, which is 1
for massed practice (``R`` near 1) and large after a gap: spaced successes raise stability more
than massed ones. A wrong answer is a lapse: ``S`` drops to FSRS's post-lapse stability, never
below the learner's initial stability (log-normal, median 1 day, SD 0.3). A practice reactivates
the memory (``R`` back to 1) and recovers half of what had faded (savings, Ebbinghaus 1885): the
gain becomes ``gain * (R + 0.5 (1 - R))`` before the new learning is added.

**True mastery** of skill ``k`` at ``t``: ``theta_k(t) >= b_k + logit(0.8) / a_k`` with ``b_k``
and ``a_k`` the mean difficulty and discrimination of the skill's items: the learner answers an
average item of the skill correctly at least 80% of the time, guessing aside.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, ndtri

from engine.catalog import Catalog
from engine.simulation.base import DAY, FAMILIES, NO_ITEM, Population
from engine.simulation.catalog_arrays import CatalogArrays

MASTERY_P = 0.8  #: P(correct) on an average item of the skill (guessing aside) that is mastery
ABILITY_SD_GENERAL = 0.8  #: SD of a learner's general ability, shared by their skills
ABILITY_SD_SKILL = 0.6  #: SD of a learner's skill-specific ability around it
LEARN_SCALE = 1.0  #: logits of ability per practice, per unit of the skill's BKT ``learn``
LEARN_SD_LEARNER = 0.4  #: SD of log learning speed between learners
LEARN_SD_SKILL = 0.2  #: SD of log learning speed between a learner's skills
STABILITY_MEDIAN = 1.0  #: days: median initial memory stability (also its floor after lapses)
STABILITY_SD = 0.3  #: SD of log initial stability between learners
SAVINGS = 0.5  #: share of the faded gain that a practice recovers

# FSRS-4.5's forgetting curve and default weights (w8-w14), difficulty fixed at 5 of 1-10
_FACTOR = 19.0 / 81.0  # with decay -0.5: R = (1 + _FACTOR * t / S) ** -0.5
_DIFFICULTY = 5.0
_W8, _W9, _W10 = 1.6474, 0.1367, 1.0461
_W11, _W12, _W13, _W14 = 2.1072, 0.0793, 0.3246, 1.587


def retrievability(days: np.ndarray, stability: np.ndarray) -> np.ndarray:
    """FSRS's power-law forgetting curve: 1 right after practice, 0.9 after ``stability`` days."""
    result: np.ndarray = 1.0 / np.sqrt(1.0 + _FACTOR * days / stability)  # (...) ** -0.5
    return result


def next_stability(stability: np.ndarray, recall: np.ndarray, correct: np.ndarray,
                   floor: np.ndarray) -> np.ndarray:
    """Stability after an answer given at retrievability ``recall``: FSRS's growth after a
    success (none when massed, ``recall`` = 1), its post-lapse stability after a failure,
    bounded by ``floor`` (a lapse cannot leave a memory weaker than a fresh one)."""
    grown = stability * (1.0 + math.exp(_W8) * (11.0 - _DIFFICULTY) * stability ** -_W9
                         * np.expm1(_W10 * (1.0 - recall)))
    lapsed = (_W11 * _DIFFICULTY ** -_W12 * ((stability + 1.0) ** _W13 - 1.0)
              * np.exp(_W14 * (1.0 - recall)))
    result: np.ndarray = np.where(correct, grown,
                                  np.maximum(floor, np.minimum(stability, lapsed)))
    return result


class IRTMemoryPopulation(Population):
    """Learners with IRT ability per skill, AFM learning and FSRS memory (module docstring)."""

    family = "irt-memory"

    def __init__(self, catalog: Catalog, n: int, seed: int) -> None:
        super().__init__(catalog, n, seed)
        self._arrays = CatalogArrays.of(catalog)
        items = list(catalog.items.values())
        skills = list(catalog.skills.values())
        self.difficulty = np.array([0.0 if i.difficulty is None else i.difficulty
                                    for i in items])
        self.discrimination = np.array([1.0 if i.discrimination is None else i.discrimination
                                        for i in items])
        self.guessing = np.array([0.0 if i.guessing is None else i.guessing for i in items])
        self.threshold = self._mastery_ability(len(skills))
        prior = np.clip([s.bkt.prior for s in skills], 0.01, 0.99)
        learn = np.array([s.bkt.learn for s in skills])

        rng = np.random.default_rng(seed)
        k = len(skills)
        sd = math.hypot(ABILITY_SD_GENERAL, ABILITY_SD_SKILL)
        self.base = (self.threshold + sd * ndtri(prior)
                     + rng.normal(0.0, ABILITY_SD_GENERAL, (n, 1))
                     + rng.normal(0.0, ABILITY_SD_SKILL, (n, k)))
        log_speed = (rng.normal(0.0, LEARN_SD_LEARNER, (n, 1))
                     + rng.normal(0.0, LEARN_SD_SKILL, (n, k))
                     - (LEARN_SD_LEARNER ** 2 + LEARN_SD_SKILL ** 2) / 2)  # mean speed 1
        self.rate = LEARN_SCALE * learn * np.exp(log_speed)
        self.floor = STABILITY_MEDIAN * np.exp(rng.normal(0.0, STABILITY_SD, n))
        self.gain = np.zeros((n, k))
        self.stability = np.repeat(self.floor[:, None], k, axis=1)
        self.last = np.zeros((n, k))  # time of the last practice of each skill (seconds)
        self.seen = np.zeros((n, k), dtype=bool)

    def _mastery_ability(self, n_skills: int) -> np.ndarray:
        """Per skill, the ability at which an average item of the skill (mean difficulty and
        discrimination of its items; 0 and 1 without items) is answered with P = MASTERY_P."""
        mask = self._arrays.item_mask
        skill = self._arrays.item_skill[mask]
        per_item = mask.sum(axis=1)
        count = np.bincount(skill, minlength=n_skills)
        b = np.bincount(skill, np.repeat(self.difficulty, per_item), n_skills)
        a = np.bincount(skill, np.repeat(self.discrimination, per_item), n_skills)
        mean_b = np.divide(b, count, out=np.zeros(n_skills), where=count > 0)
        mean_a = np.divide(a, count, out=np.ones(n_skills), where=count > 0)
        result: np.ndarray = mean_b + math.log(MASTERY_P / (1 - MASTERY_P)) / mean_a
        return result

    def _ability(self, at: float, rows: np.ndarray | slice = slice(None),
                 cols: np.ndarray | slice = slice(None)) -> np.ndarray:
        """theta at ``at`` of the (learner, skill) entries ``[rows, cols]`` (all by default)."""
        days = np.maximum(at - self.last[rows, cols], 0.0) / DAY
        result: np.ndarray = (self.base[rows, cols] + self.gain[rows, cols]
                              * retrievability(days, self.stability[rows, cols]))
        return result

    def _answer_p(self, theta: np.ndarray, mask: np.ndarray, items: np.ndarray) -> np.ndarray:
        """3PL P(correct), conjunctive over skills: ``theta`` holds the ability on each of an
        item's (padded) skills in its last axis, ``items`` the item of each row."""
        a = self.discrimination[items][..., None]
        b = self.difficulty[items][..., None]
        c = self.guessing[items]
        all_skills = np.where(mask, expit(a * (theta - b)), 1.0).prod(axis=-1)
        result: np.ndarray = c + (1.0 - c) * all_skills
        return result

    def p_correct(self, items: np.ndarray, at: float) -> np.ndarray:
        skill, mask = self._arrays.safe_items(items)
        theta = self._ability(at, np.arange(self.n)[:, None], skill)
        return self._answer_p(theta, mask, np.where(np.asarray(items) == NO_ITEM, 0, items))

    def test_score(self, items: np.ndarray, at: float) -> np.ndarray:
        items = np.asarray(items, dtype=np.intp)
        if not len(items):
            return np.zeros(self.n)
        theta = self._ability(at)[:, self._arrays.item_skill[items]]  # (n, m, width)
        p = self._answer_p(theta, self._arrays.item_mask[items], items)
        result: np.ndarray = p.mean(axis=1)
        return result

    def mastery(self, at: float) -> np.ndarray:
        result: np.ndarray = self._ability(at) >= self.threshold
        return result

    def practise(self, items: np.ndarray, correct: np.ndarray, at: float) -> None:
        learners, skills = self._arrays.pairs(items)
        if not len(learners):
            return
        days = np.maximum(at - self.last[learners, skills], 0.0) / DAY
        stability = self.stability[learners, skills]
        recall = np.where(self.seen[learners, skills], retrievability(days, stability), 1.0)
        can_learn = self._arrays.prerequisites_known(
            lambda rows, cols: self._ability(at, rows, cols) >= self.threshold[cols],
            learners, skills)
        self.gain[learners, skills] = (
            self.gain[learners, skills] * (recall + SAVINGS * (1.0 - recall))
            + self.rate[learners, skills] * can_learn)
        self.stability[learners, skills] = next_stability(
            stability, recall, np.asarray(correct, dtype=bool)[learners], self.floor[learners])
        self.last[learners, skills] = at
        self.seen[learners, skills] = True


FAMILIES[IRTMemoryPopulation.family] = IRTMemoryPopulation
