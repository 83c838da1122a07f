"""Placement: adaptive tests that set a new learner's starting state, per skill on the course's
knowledge structure (:mod:`.skills`), or one θ over IRT-calibrated items (:mod:`.session`).

* :mod:`.irt`: the 1PL-4PL models, probability and Fisher information; :class:`ItemBank`;
* :mod:`.bank_file`: tab-separated bank files (tcals's ``a b c d Group`` layout);
* :mod:`.estimate`: EAP on a quadrature grid, MAP, ML with its fallback;
* :mod:`.select`: selection criteria, exposure control, content balancing;
* :mod:`.session`: a configured test and one examinee's resumable run of it;
* :mod:`.simulate`: simulated examinees, and Sympson-Hetter parameters;
* :mod:`.calibrate`: 2PL/3PL item parameters from answer logs (MML-EM, empirical-Bayes priors);
* :mod:`.mastery`: from θ to each skill's starting P(mastered);
* :mod:`.knowledge`: a course's knowledge structure (prerequisite-closed states, their prior,
  the answers' likelihood, the items' information);
* :mod:`.skills`: the per-skill test on it, whose result is each skill's P(known).
"""

from engine.placement.bank_file import BankFileError, read_bank, write_bank
from engine.placement.calibrate import (
    CALIBRATION_MODELS,
    DEFAULT_PRIOR,
    PRIORS,
    Calibration,
    Hyper,
    calibrate,
    calibrate_log,
)
from engine.placement.estimate import ESTIMATORS, Estimate, Grid, estimate
from engine.placement.irt import MODELS, ItemBank, information, probability
from engine.placement.knowledge import DiagnosticItem, KnowledgeModel
from engine.placement.mastery import skill_threshold, starting_mastery
from engine.placement.select import CRITERIA
from engine.placement.session import Placement, PlacementSession, StopRule
from engine.placement.simulate import SimulationResult, simulate, sympson_hetter
from engine.placement.skills import SkillEstimate, SkillPlacement, SkillSession, SkillStop

__all__ = [
    "CALIBRATION_MODELS", "CRITERIA", "DEFAULT_PRIOR", "ESTIMATORS", "MODELS", "PRIORS",
    "BankFileError", "Calibration", "DiagnosticItem", "Estimate", "Grid", "Hyper", "ItemBank",
    "KnowledgeModel", "Placement", "PlacementSession", "SimulationResult", "SkillEstimate",
    "SkillPlacement", "SkillSession", "SkillStop", "StopRule", "calibrate", "calibrate_log",
    "estimate", "information", "probability", "read_bank", "simulate", "skill_threshold",
    "starting_mastery", "sympson_hetter", "write_bank",
]
