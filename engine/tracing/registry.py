"""Model names -> tracer classes: the one place that names concrete models.

The CLIs' model choices, the API's stored models and :func:`load_tracer` all come from
:data:`MODELS`, so adding a model is adding a line here. DKT is imported on first use: it needs
PyTorch, which a BKT-only server never loads.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.tracing.base import Tracer


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its class (``module:Class``, imported on first use), the options
    that make it this variant, and one line for ``--help``."""

    target: str
    summary: str
    options: dict[str, Any] = field(default_factory=dict)

    def tracer_class(self) -> type[Tracer[Any]]:
        module, _, cls = self.target.partition(":")
        found: type[Tracer[Any]] = getattr(importlib.import_module(module), cls)
        return found

    def accepts(self, option: str) -> bool:
        """Whether the model takes keyword option ``option`` (e.g. ``checkpoint``)."""
        parameters = inspect.signature(self.tracer_class()).parameters
        return option in parameters or _settings_of(self.tracer_class(), option)


MODELS: dict[str, ModelSpec] = {
    "bkt": ModelSpec("engine.tracing.bkt:BKT", "Bayesian Knowledge Tracing (EM)"),
    "bkt-forgets": ModelSpec("engine.tracing.bkt:BKT", "BKT with a forget probability",
                             {"forgets": True}),
    "bkt-memory": ModelSpec("engine.tracing.bkt_memory:BKTMemory",
                            "BKT whose knowledge fades on FSRS-6's forgetting curve, one "
                            "memory per learner and skill (for spaced selection)"),
    "dkt": ModelSpec("engine.tracing.dkt:DKT", "Deep Knowledge Tracing (LSTM, PyTorch)"),
    "timed": ModelSpec("engine.tracing.timed:TimedLR",
                       "time-aware logistic model: decaying practice counts per skill, item and "
                       "learner, recency, Elo ability", {"features": "timed"}),
    "das3h": ModelSpec("engine.tracing.timed:TimedLR",
                       "DAS3H: item, skill, practice counts in time windows (decaying)",
                       {"features": "das3h"}),
    "best-lr": ModelSpec("engine.tracing.timed:TimedLR",
                         "Best-LR: item, skill, skill and total practice counts",
                         {"features": "best-lr"}),
    "pfa": ModelSpec("engine.tracing.timed:TimedLR",
                     "Performance Factors Analysis: skill, successes and failures",
                     {"features": "pfa"}),
}


def _spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def make_tracer(name: str, **options: Any) -> Tracer[Any]:
    """A fresh, unfitted tracer by model name (``bkt``, ``bkt-forgets``, ``dkt``); an option
    the model does not take is a ValueError naming it."""
    spec = _spec(name)
    unknown = sorted(o for o in options if not spec.accepts(o))
    if unknown:
        raise ValueError(f"model {name!r} takes no option {', '.join(map(repr, unknown))}")
    return spec.tracer_class()(**{**spec.options, **options})


def _settings_of(cls: type[Tracer[Any]], option: str) -> bool:
    """Whether ``option`` is one of the settings a model declares for its ``**settings``
    (the fields of its ``settings_type`` dataclass)."""
    settings = getattr(cls, "settings_type", None)
    return settings is not None and option in inspect.signature(settings).parameters


def tracer_from_bytes(name: str, data: bytes, *, source: str = "<bytes>") -> Tracer[Any]:
    """The fitted tracer that ``make_tracer(name)``'s ``to_bytes`` wrote."""
    return _spec(name).tracer_class().from_bytes(data, source=source)


def load_tracer(path: str | Path) -> Tracer[Any]:
    """A fitted tracer from a file or directory: anything a registered model's ``save`` wrote
    (a BKT parameter file, a DKT checkpoint directory), or pyBKT's ``coef_`` saved as JSON
    (``{skill: {"prior", "learns", "guesses", "slips", ...}}``)."""
    path = Path(path)
    document = path / "model.json" if path.is_dir() else path
    if not document.is_file():
        raise FileNotFoundError(f"model file not found: {document}")
    try:
        doc = json.loads(document.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{document}: not a model file (expected JSON: {exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("model"), str) and "format" in doc:
        return _spec(doc["model"]).tracer_class().load(path)
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) and "prior" in v
                                             for v in doc.values()):
        from engine.tracing.bkt import BKT

        return BKT.from_pybkt(doc)
    raise ValueError(f"{path}: neither a saved model (a tutor-bkt file or a DKT checkpoint) nor "
                     "pyBKT coef_ JSON")


def to_pybkt(tracer: Tracer[Any]) -> dict[str, dict[str, Any]]:
    """A BKT model's parameters in pyBKT's ``coef_`` shape (plain lists, ready for
    ``json.dump``); ValueError for a model pyBKT cannot represent."""
    from engine.tracing.bkt import BKT

    if not isinstance(tracer, BKT):
        raise ValueError(f"pyBKT's coef_ shape holds BKT parameters; a {tracer.name} model "
                         "cannot be written in it")
    return tracer.to_pybkt()
