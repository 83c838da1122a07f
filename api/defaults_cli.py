"""What ``tutor tenant defaults`` (:mod:`api.cli`) does: show or set, in one command, the
policy and the tracer that serve a tenant's learners outside experiments (what ``GET``/``PUT
/v1/tenant/defaults`` do over HTTP, :mod:`api.tenant_defaults`), and its line of output."""

from __future__ import annotations

from sqlalchemy import Engine

from api.defaults_schemas import checked_options
from api.tenant_defaults import DefaultsResponse, read_defaults, set_defaults
from engine.selection.registry import parse_policy


def show_or_set(engine: Engine, tenant_id: int, policy: str | None, tracer: str | None,
                reset: bool) -> DefaultsResponse:
    """The tenant's defaults, after setting them when ``policy`` (``NAME[:option=value,...]``),
    ``tracer`` or ``reset`` is given (what is left out goes back to the engine's default, as
    with PUT). ValueError or LookupError saying what stands in the way, nothing changed."""
    if reset and (policy is not None or tracer is not None):
        raise ValueError("--reset goes back to the engine's defaults: give it alone, or give "
                         "--policy/--tracer without it")
    if policy is None and tracer is None and not reset:
        return read_defaults(engine, tenant_id)
    name, options = parse_policy(policy) if policy is not None else (None, {})
    if name is not None:
        options = checked_options(name, options)  # the API's rules, ranges included
    return set_defaults(engine, tenant_id, name, options, tracer)


def line(found: DefaultsResponse) -> str:
    """The defaults in one line of text."""
    options = ", ".join(f"{k}={v}" for k, v in found["options"].items())
    memory = "with memory" if found["memory"] else "without memory"
    return (f"policy {found['policy']}{f' ({options})' if options else ''} "
            f"[{found['policy_source']}]; tracer {found['tracer']} ({memory}) "
            f"[{found['tracer_source']}]; target success {found['target_success']}")
