"""Knowledge-tracing models behind one contract (:class:`~engine.tracing.base.Tracer`), built by
name from the registry (:mod:`engine.tracing.registry`)."""

from __future__ import annotations

from engine.tracing.base import IdSpaceError, NotFittedError, Tracer
from engine.tracing.items import ItemIndex
from engine.tracing.registry import MODELS, load_tracer, make_tracer, tracer_from_bytes

__all__ = ["MODELS", "IdSpaceError", "ItemIndex", "NotFittedError", "Tracer", "load_tracer",
           "make_tracer", "tracer_from_bytes"]
