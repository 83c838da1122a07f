"""Experiments (A/B tests) on learners: sticky hash assignment to weighted arms, confidence
intervals that stay valid however often they are looked at, the sample-ratio-mismatch check,
and simulated A/A experiments that measure the false-positive rate of daily looks.

Pure statistics (numpy, scipy): the API stores definitions and assignments, and replays the
answer log into the per-learner values these functions take.
"""

from __future__ import annotations

from engine.experiments.assignment import (
    Arm,
    assign,
    assign_all,
    bucket,
    check_arms,
    scaled_weights,
    shares,
)
from engine.experiments.sequential import (
    PLANNED_N,
    Interval,
    Sample,
    difference_interval,
    mean_interval,
    mixture_radius,
    mixture_variance,
)
from engine.experiments.srm import SrmCheck, srm_check

__all__ = ["PLANNED_N", "Arm", "Interval", "Sample", "SrmCheck", "assign", "assign_all",
           "bucket", "check_arms", "difference_interval", "mean_interval", "mixture_radius",
           "mixture_variance", "scaled_weights", "shares", "srm_check"]
