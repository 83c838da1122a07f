"""A tenant's defaults: the policy that serves its learners outside experiments (with its
options) and the tracer built from its content's own parameters (``PUT /v1/tenant/defaults``,
``tutor tenant defaults``).

What serves a tenant's learners, each part resolved in this order:

* **policy**: the one the tenant configured, else the engine's default
  (:data:`engine.selection.registry.DEFAULT_POLICY`). A tenant that configured nothing moves
  with the engine's default from release to release; one that named a policy keeps it.
* **tracer**: a registered (fitted) model (``tutor model register``), else the model the tenant
  configured, built from its content's parameters, else its policy's own ``tracer_model``
  (``bkt-memory`` for the default policy), else BKT. No fit is needed for any of them: the
  content's packs hold the parameters.

A policy that needs a tracer with memory (its class's ``requires_memory``: its reviews and its
reasons read recall, which only a tracer whose knowledge fades between practices has) is
refused where the tenant's tracer has none: as its default here, as an experiment's arm
(:mod:`api.experiment_admin`), and a tracer (or a registered model) without memory is refused
while such a policy serves the tenant (default or an experiment that has not stopped).

A change of the tracer bumps the tenant's content version, as registering a model does: cached
learner states of the old tracer stop matching and are rebuilt from the answer log.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, select, update
from typing_extensions import TypedDict

from api.db import bump_content_version, experiments, tenants, tracer_models
from api.tenant_row import Tenant
from engine.selection import Policy
from engine.selection.registry import DEFAULT_POLICY, POLICIES, make_policy
from engine.tracing.recall import has_memory
from engine.tracing.registry import make_tracer

#: the models a tenant's content defines without a fit: BKT and the models built on its
#: parameters (engine.catalog.Catalog.tracer; a test checks this against the registry)
CONTENT_TRACERS = ("bkt", "bkt-forgets", "bkt-memory")
#: a policy's tracer where it names none
FALLBACK_TRACER = "bkt"

TracerSource = Literal["registered model", "configured", "policy"]


class DefaultsResponse(TypedDict):
    """What serves the tenant's learners outside experiments, and where each part comes
    from."""

    policy: str
    options: dict[str, Any]
    policy_source: Literal["configured", "engine default"]
    tracer: str
    tracer_source: TracerSource
    memory: bool
    target_success: float


def build_policy(name: str, options: Mapping[str, Any]) -> Policy:
    """The registry's policy ``name`` with ``options``; ValueError, saying what is wrong, for
    an unknown name or option, or an option's value of the wrong type."""
    try:
        return make_policy(name, **options)
    except TypeError as exc:  # e.g. a string where the policy compares a number
        raise ValueError(f"policy {name!r}: {exc}") from None


def tenant_policy(tenant: Tenant) -> tuple[str, Mapping[str, Any]]:
    """The policy serving the tenant's learners outside experiments, with its options."""
    if tenant.policy is None:
        return DEFAULT_POLICY, {}
    return tenant.policy, tenant.policy_options


def policy_tracer(policy: str) -> str:
    """The tracer ``policy`` is meant to run with (its ``tracer_model``; BKT where it names
    none, or for a name the registry no longer has)."""
    spec = POLICIES.get(policy)
    model = getattr(spec.build, "tracer_model", None) if spec is not None else None
    return model if isinstance(model, str) else FALLBACK_TRACER


def content_tracer(tenant: Tenant) -> str:
    """The model built from the tenant's content when no model is registered."""
    return tenant.tracer or policy_tracer(tenant_policy(tenant)[0])


def requires_memory(policy: str) -> bool:
    """Whether ``policy`` is refused on a tracer without memory."""
    spec = POLICIES.get(policy)
    return spec is not None and bool(getattr(spec.build, "requires_memory", False))


@functools.cache
def tracer_has_memory(model: str) -> bool:
    """Whether the registry's ``model`` models memory (:func:`has_memory` of its class)."""
    return has_memory(make_tracer(model))


def memory_refusal(policy: str, tracer: str, what: str) -> str | None:
    """Why ``policy`` cannot serve (as ``what``) on ``tracer``; None when it can."""
    if not requires_memory(policy) or tracer_has_memory(tracer):
        return None
    with_memory = [m for m in CONTENT_TRACERS if tracer_has_memory(m)]
    return (f"{what}: policy {policy!r} needs a tracer with memory (knowledge that fades "
            f"between practices: its reviews read recall), and {tracer!r}, the tracer it would "
            f"run on, has none; set a tracer with memory first ({', '.join(with_memory)}: PUT "
            "/v1/tenant/defaults with \"tracer\", or `tutor tenant defaults NAME --tracer`)")


def registered_model(conn: Connection, tenant_id: int) -> str | None:
    """The kind of the tenant's registered model (None: served by its content's tracer)."""
    kind: str | None = conn.execute(select(tracer_models.c.kind).where(
        tracer_models.c.tenant_id == tenant_id)).scalar()
    return kind


def served_tracer(conn: Connection, tenant: Tenant) -> tuple[str, TracerSource]:
    """The model serving the tenant now, and where it comes from."""
    kind = registered_model(conn, tenant.id)
    if kind is not None:
        return kind, "registered model"
    return content_tracer(tenant), "configured" if tenant.tracer else "policy"


def describe(conn: Connection, tenant: Tenant) -> DefaultsResponse:
    policy, options = tenant_policy(tenant)
    tracer, source = served_tracer(conn, tenant)
    return {"policy": policy, "options": dict(options),
            "policy_source": "engine default" if tenant.policy is None else "configured",
            "tracer": tracer, "tracer_source": source, "memory": tracer_has_memory(tracer),
            "target_success": tenant.target_success}


def read_defaults(engine: Engine, tenant_id: int) -> DefaultsResponse:
    with engine.connect() as conn:
        return describe(conn, tenant_of(conn, tenant_id))


def set_defaults(engine: Engine, tenant_id: int, policy: str | None,
                 options: Mapping[str, Any], tracer: str | None) -> DefaultsResponse:
    """Configure the tenant's default policy (None: the engine's default, and then no
    options) with ``options``, and its tracer (None: its policy's own), replacing what was
    configured. ValueError saying what is wrong (an unknown policy, option or tracer; a policy
    that needs memory on a tracer without it), LookupError when something else stands in the
    way (a registered model, which a tracer setting could not replace; an experiment whose
    arm needs memory): nothing is changed then."""
    if policy is None and options:
        raise ValueError(f"options {sorted(options)} given without a policy: name the policy "
                         "they are for")
    if tracer is not None and tracer not in CONTENT_TRACERS:
        raise ValueError(f"unknown tracer {tracer!r}: a tenant's content defines "
                         f"{', '.join(CONTENT_TRACERS)} (other models are fitted on answers, "
                         "then registered: `tutor model register`)")
    build_policy(policy or DEFAULT_POLICY, options)  # an unknown name, option or value
    with engine.begin() as conn:
        # the tenant's row first: creations of experiments (api.experiment_admin) queue behind
        # this, and this behind them, so neither checks the other's memory needs half-done
        old = tenant_of(conn, tenant_id, lock=True)
        new = Tenant(old.id, old.name, old.target_success, old.content_version, policy,
                     dict(options), tracer)
        model = registered_model(conn, tenant_id)
        if model is not None and tracer is not None:
            raise LookupError(f"this tenant is served by its registered model ({model!r}), "
                              f"which a tracer setting does not replace: leave \"tracer\" "
                              "out, or unregister the model first (`tutor model unregister`)")
        served = model or content_tracer(new)
        problem = memory_refusal(tenant_policy(new)[0], served, "the default policy")
        if problem is not None:  # the request's own tracer (422), or the registered model's
            raise ValueError(problem) if tracer is not None else LookupError(problem)
        for name, arm, arm_policy in _live_arms(conn, tenant_id):
            problem = memory_refusal(arm_policy, served, f"arm {arm!r} of experiment {name!r}")
            if problem is not None:
                raise LookupError(f"{problem} (or stop the experiment first)")
        conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(
            policy=policy, policy_options=dict(options) if policy is not None else None,
            tracer=tracer))
        if model is None and content_tracer(old) != served:
            bump_content_version(conn, tenant_id)
        return describe(conn, tenant_of(conn, tenant_id))


def check_model_memory(conn: Connection, tenant_id: int, model: str) -> None:
    """ValueError if registering a ``model`` without memory would leave a policy serving the
    tenant that needs memory (its default, or an arm of an experiment that has not
    stopped)."""
    tenant = tenant_of(conn, tenant_id)
    problem = memory_refusal(tenant_policy(tenant)[0], model, "the tenant's default policy")
    for name, arm, arm_policy in _live_arms(conn, tenant_id):
        problem = problem or memory_refusal(arm_policy, model,
                                            f"arm {arm!r} of experiment {name!r}")
    if problem is not None:
        raise ValueError(f"a {model} model has no memory: {problem}")


def _live_arms(conn: Connection, tenant_id: int) -> Iterator[tuple[str, str, str]]:
    """(experiment, arm, policy) of the tenant's experiments that have not stopped."""
    now = datetime.now(UTC)
    for row in conn.execute(select(experiments.c.name, experiments.c.arms,
                                   experiments.c.stops_at).where(
            experiments.c.tenant_id == tenant_id)):
        stops = row.stops_at
        if stops is not None and (stops if stops.tzinfo else stops.replace(tzinfo=UTC)) <= now:
            continue
        for arm in row.arms:
            yield row.name, str(arm.get("name")), str(arm.get("policy"))


def tenant_of(conn: Connection, tenant_id: int, *, lock: bool = False) -> Tenant:
    """The tenant's row (``lock``: locked until ``conn``'s transaction ends)."""
    if lock:  # an update that changes nothing: the row's lock (see experiment_admin)
        conn.execute(update(tenants).where(tenants.c.id == tenant_id)
                     .values(target_success=tenants.c.target_success))
    return Tenant.of(conn.execute(select(tenants).where(tenants.c.id == tenant_id)).one())
