"""Knowledge-tracing models behind one interface (:class:`~engine.tracing.base.Tracer`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.tracing.base import NotFittedError, Tracer
from engine.tracing.bkt import BKT

__all__ = ["BKT", "MODELS", "NotFittedError", "Tracer", "make_tracer"]

#: Model names accepted by the CLIs and configs, and how to build each.
MODELS: dict[str, Callable[..., Tracer[Any]]] = {
    "bkt": lambda **options: BKT(**options),
    "bkt-forgets": lambda **options: BKT(forgets=True, **options),
}


def make_tracer(name: str, **options: Any) -> Tracer[Any]:
    """A fresh, unfitted tracer by model name (``bkt``, ``bkt-forgets``)."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None
    return factory(**options)
