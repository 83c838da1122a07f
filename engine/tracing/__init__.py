"""Knowledge-tracing models behind one interface (:class:`~engine.tracing.base.Tracer`).

DKT is imported on first use: it needs PyTorch, which a BKT-only server never loads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.tracing.base import NotFittedError, Tracer
from engine.tracing.bkt import BKT

__all__ = ["BKT", "MODELS", "NotFittedError", "Tracer", "make_tracer"]

#: Model names accepted by the CLIs and configs, and how to build each.
MODELS: dict[str, Callable[..., Tracer[Any]]] = {
    "bkt": lambda **options: BKT(**options),
    "bkt-forgets": lambda **options: BKT(forgets=True, **options),
    "dkt": lambda **options: _dkt().DKT(**options),
}


def _dkt() -> Any:
    from engine.tracing import dkt

    return dkt


def make_tracer(name: str, **options: Any) -> Tracer[Any]:
    """A fresh, unfitted tracer by model name (``bkt``, ``bkt-forgets``, ``dkt``)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return factory(**options)


def load_tracer(path: str | Path) -> Tracer[Any]:
    """A fitted tracer from a file or directory: a DKT checkpoint directory, this engine's
    versioned BKT parameter file, or pyBKT's ``coef_`` saved as JSON (``{skill: {"prior",
    "learns", "guesses", "slips", ...}}``)."""
    path = Path(path)
    if path.is_dir():
        return _dkt().DKT.load(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a model file (expected JSON: {exc})") from None
    if isinstance(doc, dict) and "format" in doc:
        return BKT.load(path)
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) and "prior" in v
                                             for v in doc.values()):
        return BKT.from_pybkt(doc)
    raise ValueError(f"{path}: neither a tutor-bkt parameter file nor pyBKT coef_ JSON")
