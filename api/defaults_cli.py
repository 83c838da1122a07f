"""``tutor tenant defaults``: show or set, in one command, the policy and the tracer that serve
a tenant's learners outside experiments (what ``GET``/``PUT /v1/tenant/defaults`` do over
HTTP, :mod:`api.tenant_defaults`)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli import AsJson, DbUrl, _print_json, _tenant
from api.defaults_schemas import checked_options
from api.tenant_defaults import DefaultsResponse, read_defaults, set_defaults
from engine.selection.registry import DEFAULT_POLICY, POLICIES, parse_policy
from tutor.console import fail


def tenant_defaults(
    name: Annotated[str, typer.Argument(help="Tenant name.")],
    policy: Annotated[str | None, typer.Option(
        help="The default policy, with its options: NAME or NAME:option=value,... (e.g. "
             f"target-success:target_success=0.7). Policies: {', '.join(POLICIES)}; left "
             f"out: the engine's default ({DEFAULT_POLICY}).")] = None,
    tracer: Annotated[str | None, typer.Option(
        help="The tracer built from the content's parameters (no fit needed): bkt-memory, "
             "bkt, bkt-forgets; left out: the policy's own (bkt-memory for the policies "
             "with reviews).")] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Go back to the engine's defaults (policy and tracer).")] = False,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Show a tenant's default policy and tracer, or set both at once (--policy, --tracer:
    what is left out goes back to the engine's default, as with PUT /v1/tenant/defaults).
    A policy that needs a tracer with memory is refused on a tracer without it; a new tracer
    rebuilds each learner's state from the answer log once. Learners in a running experiment
    keep their arm's policy."""
    engine, target = _tenant(database_url, name)
    if reset and (policy is not None or tracer is not None):
        raise fail("--reset goes back to the engine's defaults: give it alone, or give "
                   "--policy/--tracer without it")
    if policy is None and tracer is None and not reset:
        found = read_defaults(engine, target.id)
    else:
        try:
            chosen, options = parse_policy(policy) if policy is not None else (None, {})
            if chosen is not None:
                options = checked_options(chosen, options)
            found = set_defaults(engine, target.id, chosen, options, tracer)
        except (ValueError, LookupError) as exc:
            raise fail(str(exc)) from None
    if as_json:
        _print_json({"tenant": name, **found})
    else:
        print(f"{name}: {_line(found)}")


def _line(found: DefaultsResponse) -> str:
    options = ", ".join(f"{k}={v}" for k, v in found["options"].items())
    memory = "with memory" if found["memory"] else "without memory"
    return (f"policy {found['policy']}{f' ({options})' if options else ''} "
            f"[{found['policy_source']}]; tracer {found['tracer']} ({memory}) "
            f"[{found['tracer_source']}]; target success {found['target_success']}")
