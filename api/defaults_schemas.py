"""What ``PUT /v1/tenant/defaults`` takes (pydantic): a policy with exactly its own options
(the models arms use, :func:`api.experiment_schemas.options_model`), or none (the engine's
default), and a tracer the content defines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    create_model,
    field_validator,
)

from api.experiment_schemas import options_model
from api.tenant_defaults import CONTENT_TRACERS
from engine.selection.registry import DEFAULT_POLICY, POLICIES, PolicySpec

#: the tag of a body that names no policy
_ENGINE_DEFAULT = "engine-default"

TracerName = Literal[CONTENT_TRACERS]  # type: ignore[valid-type]


class _Defaults(BaseModel):
    """A tenant's defaults; what it leaves out is the engine's (PUT replaces them all)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"policy": "teach", "tracer": "bkt-memory"},
        {"policy": "target-success", "options": {"target_success": 0.7}, "tracer": "bkt"},
        {}]})

    tracer: TracerName | None = Field(None, description=(
        "The model built from the content's own parameters that traces the tenant's "
        "learners (no fit needed): `bkt-memory` (knowledge fades between practices: reviews), "
        "`bkt`, `bkt-forgets`. Null or left out: the policy's own (`bkt-memory` for the "
        "policies with reviews). A registered (fitted) model serves instead of any: giving a "
        "tracer then is a 409."))
    # each model below states these two exactly
    policy: str | None
    options: Any


class EngineDefaults(_Defaults):
    """No policy named: the engine's default serves, and moves with it from release to
    release (a tenant that names one keeps it)."""

    policy: None = Field(None, description=(
        f"Left out or null: the engine's default policy (`{DEFAULT_POLICY}` in this "
        "release)."))
    # the document states the rule (no property), the validator says it in words
    options: dict[str, Any] | None = Field(
        None, json_schema_extra={"maxProperties": 0},
        description="Not taken without a policy: name the policy the options are for.")

    @field_validator("options")
    @classmethod
    def _none_without_policy(cls, options: dict[str, Any] | None) -> dict[str, Any] | None:
        if options:
            raise ValueError("options given without a policy: name the policy they are for")
        return None


def _defaults_model(policy: str, spec: PolicySpec) -> type[_Defaults]:
    """The defaults naming ``policy``, with exactly its options."""
    options = options_model(policy)
    tag: Any = Literal[policy]
    return cast(type[_Defaults], create_model(
        f"{options.__name__.removesuffix('Options')}Defaults", __base__=_Defaults,
        __doc__=f"`{policy}` serves the tenant's learners outside experiments: {spec.summary}.",
        policy=(tag, Field(description="The policy choosing exercises.")),
        options=(options, Field(default_factory=options, description=(
            "The policy's options; an option it does not take, or a value outside its range, "
            "is a 422. `target_success`, where the policy takes it, overrides the tenant's "
            "target.")))))


def _policy_of(body: Any) -> Any:
    """The tag that picks the body's model: its policy (no policy: the engine's default)."""
    policy = body.get("policy") if isinstance(body, dict) else getattr(body, "policy", None)
    return _ENGINE_DEFAULT if policy is None else policy


#: the body: one of the registry's policies with its options, or none (to a type checker, the
#: fields every variant has)
if TYPE_CHECKING:
    DefaultsIn = _Defaults
else:
    DefaultsIn = Annotated[
        Union[(Annotated[EngineDefaults, Tag(_ENGINE_DEFAULT)],
               *(Annotated[_defaults_model(name, spec), Tag(name)]
                 for name, spec in POLICIES.items()))],
        Discriminator(_policy_of, custom_error_type="unknown_policy",
                      custom_error_message=f"unknown policy (policies: {', '.join(POLICIES)})")]


def checked_options(policy: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of ``policy`` as the API takes them (the command line's, which it parsed
    itself): the options given, checked; ValueError naming each problem."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (policies: {', '.join(POLICIES)})")
    try:
        model = options_model(policy).model_validate(options)
    except ValidationError as exc:
        raise ValueError(f"policy {policy!r}: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}"
            for e in exc.errors(include_url=False))) from None
    return model.model_dump(exclude_unset=True)
