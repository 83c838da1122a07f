"""A tenant as a request sees it: its row of ``tenants`` (:class:`Tenant`). Apart from
:mod:`api.tenants`, which stores and looks tenants up, so that what reads a tenant's settings
(:mod:`api.tenant_defaults`) depends on nothing else of the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    name: str
    target_success: float
    content_version: int
    #: the default policy the tenant configured, its options, and its tracer (None: not
    #: configured, the engine's defaults; :mod:`api.tenant_defaults`)
    policy: str | None = None
    policy_options: Mapping[str, Any] = field(default_factory=dict)
    tracer: str | None = None

    @classmethod
    def of(cls, row: Any) -> Tenant:
        """The tenant of a ``tenants`` row."""
        return cls(row.id, row.name, row.target_success, row.content_version, row.policy,
                   dict(row.policy_options or {}), row.tracer)
