"""Simulated learners with a known ground truth, and the runs that compare policies on them.

See :mod:`engine.simulation.base` for the contract every learner-model family implements.
"""

from engine.simulation import fitted as fitted  # registers "fitted-bkt"
from engine.simulation import irt_memory as irt_memory  # registers "irt-memory"
from engine.simulation import mistagged as mistagged  # registers "mistagged"
from engine.simulation import prereq_forget as prereq_forget  # registers "prereq-forget"
