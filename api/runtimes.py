"""What requests share per tenant: its catalog and tracer, for its current content version."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from api.db import retry_if_disconnected
from api.models import registered_tracer
from api.responses import Exercise, ItemContent
from api.tenant_defaults import content_tracer
from api.tenants import Tenant, load_catalog
from engine.catalog import Catalog, Item
from engine.selection import Choice
from engine.tracing import Tracer


@dataclass(frozen=True)
class Runtime:
    """Everything derived from one version of a tenant's content, shared by requests."""

    content_version: int
    catalog: Catalog
    tracer: Tracer[Any]
    #: each item's content as responses show it, built once (answers show one per response)
    content: Mapping[str, ItemContent] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "content", {i.id: item_content(i)
                                             for i in self.catalog.items.values()})

    def exercise(self, choice: Choice) -> Exercise:
        """A chosen item as the API shows it: its content from the pack, and why it was
        chosen."""
        return {"item": choice.item, **self.content[choice.item], "skills": list(choice.skills),
                "p_correct": round(choice.p_correct, 6), "reason": choice.reason}


def item_content(item: Item) -> ItemContent:
    """``item``'s content from its pack: the pack's ``prompt`` and ``answer`` keys (which
    :mod:`content.packs` keeps in the item's metadata) and the rest of its metadata."""
    metadata = dict(item.metadata)
    return {"kind": item.kind, "prompt": metadata.pop("prompt", None),
            "answer": metadata.pop("answer", None), "metadata": metadata}


class Runtimes:
    """Tenant -> :class:`Runtime`, built once per content version (a new version replaces it)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._built: dict[int, Runtime] = {}
        self._lock = threading.Lock()

    def current(self, tenant: Tenant) -> Runtime | None:
        """The tenant's runtime if it is built for its current content version: never waits
        (for the event loop)."""
        rt = self._built.get(tenant.id)
        return rt if rt is not None and rt.content_version == tenant.content_version else None

    def get(self, tenant: Tenant) -> Runtime:
        """The tenant's runtime for its current content version, built if need be."""
        rt = self.current(tenant)
        if rt is not None:
            return rt
        with self._lock:
            rt = self.current(tenant)
            if rt is None:
                rt = self._build(tenant)
                self._built[tenant.id] = rt
        return rt

    @retry_if_disconnected  # reads only: safe to repeat on a fresh connection
    def _build(self, tenant: Tenant) -> Runtime:
        catalog = load_catalog(self._engine, tenant.id)
        # a registered model, else the tenant's content tracer (api.tenant_defaults): a
        # change of either bumps the content version, which builds this again
        tracer = registered_tracer(self._engine, tenant.id)
        if tracer is None:
            tracer = catalog.tracer(content_tracer(tenant))
        return Runtime(tenant.content_version, catalog, tracer)
