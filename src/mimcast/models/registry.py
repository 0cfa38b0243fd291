"""Model registry: `register_model`, `list_models()`, and the stack of a ModelConfig.

A model family registers a builder that turns a ModelConfig into its RecurrentStack, with the
variants it has (models/variants.py; a family OpenSTL does not have is "paper" only); the
Forecaster (the shared rollout) builds its stack through `build_stack`. An unknown name, a
variant the family lacks, or a setting of another family ("cdna only: ...") is an error.
`create_model` and `build_model` are in factory.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from mimcast.errors import ConfigError
from mimcast.models.config import VARIANTS, ModelConfig
from mimcast.models.stack import RecurrentStack

StackBuilder = Callable[[ModelConfig], RecurrentStack]
_BUILDERS: dict[str, StackBuilder] = {}
_VARIANTS: dict[str, tuple[str, ...]] = {}


def register_model(
    name: str, *, variants: tuple[str, ...] = VARIANTS
) -> Callable[[StackBuilder], StackBuilder]:
    """Decorator: `@register_model("mim")` on a function ModelConfig -> RecurrentStack;
    `variants`: the values of model.variant the family implements."""

    def decorate(builder: StackBuilder) -> StackBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        _VARIANTS[name] = tuple(variants)
        return builder

    return decorate


def list_models() -> list[str]:
    """Names accepted by create_model, sorted."""
    return sorted(_BUILDERS)


def model_variants(name: str) -> tuple[str, ...]:
    """The values of model.variant a registered model implements."""
    return _VARIANTS[name]


def _owner(field: dataclasses.Field) -> str | None:
    """The model a setting belongs to, from its doc ("MIM only: ..."), or None."""
    owner, sep, _ = field.metadata.get("doc", "").partition(" only:")
    return owner.lower() if sep else None


def check_buildable(config: ModelConfig) -> None:
    """Raise ConfigError when no model can be built from `config` (frame shape aside)."""
    name = config.name
    if name not in _BUILDERS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(list_models())}")
    if config.variant not in _VARIANTS[name]:
        raise ConfigError(
            f"model {name!r} has no {config.variant!r} variant (model.variant may be "
            f"{', '.join(_VARIANTS[name])})"
        )
    for f in dataclasses.fields(config):
        owner = _owner(f)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        if owner not in (None, name) and getattr(config, f.name) != default:
            raise ConfigError(f"model.{f.name} applies to the {owner!r} model only, not {name!r}")


def build_stack(config: ModelConfig) -> RecurrentStack:
    """The recurrent stack of a config (which must have its frame shape)."""
    check_buildable(config)
    if not config.has_frames:
        raise ConfigError("a model needs the frame shape: in_channels, height and width")
    return _BUILDERS[config.name](config)
