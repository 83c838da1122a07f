"""Memory models: what each learner is forgetting, card by card, from flashcard reviews.

Models are built by name (:func:`make_memory_model`), as tracers are, so that command lines and
benchmarks pass names through and never name a class: ``fsrs`` (FSRS-6, py-fsrs's default
parameters), ``fsrs-optimized`` (its parameters fitted by py-fsrs's Optimizer) and ``memory``,
the engine's recommended model (:mod:`engine.memory.model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.memory.model import FEATURES, CardMemory, MemoryModel
from engine.memory.reviews import Reviews

__all__ = ["FEATURES", "MEMORY_MODELS", "CardMemory", "MemoryModel", "Reviews",
           "make_memory_model"]


@dataclass(frozen=True)
class MemorySpec:
    """A registered memory model: one line for ``--help`` and the options that make it."""

    summary: str
    options: dict[str, Any] = field(default_factory=dict)


MEMORY_MODELS: dict[str, MemorySpec] = {
    "fsrs": MemorySpec("FSRS-6 (py-fsrs) with its default parameters", {"calibrate": False}),
    "fsrs-optimized": MemorySpec("FSRS-6 with parameters fitted by py-fsrs's Optimizer",
                                 {"calibrate": False, "optimize_fsrs": True}),
    "memory": MemorySpec("recommended: FSRS-6's recall calibrated on the learner's recent "
                         "reviews, with each card's recall and lapse counts"),
}


def make_memory_model(name: str, **options: Any) -> MemoryModel:
    """A fresh memory model by name; ``options`` override the variant's (e.g. ``features``)."""
    if name not in MEMORY_MODELS:
        raise ValueError(f"unknown memory model {name!r}; choose one of "
                         f"{', '.join(MEMORY_MODELS)}")
    return MemoryModel(name=name, **{**MEMORY_MODELS[name].options, **options})
