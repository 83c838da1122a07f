"""Simulated learners with a known ground truth, and the runs that compare policies on them.

See :mod:`engine.simulation.base` for the contract every learner-model family implements.
"""
