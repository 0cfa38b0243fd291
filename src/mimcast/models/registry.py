"""Model registry: `register_model`, `list_models()`, and the stack of a ModelConfig.

A model family registers a builder that turns a ModelConfig into its RecurrentStack; the
Forecaster (the shared rollout) builds its stack through `build_stack`. An unknown name is an
error. `create_model` and `build_model` are in factory.py.
"""

from __future__ import annotations

from collections.abc import Callable

from mimcast.errors import ConfigError
from mimcast.models.config import TRAJGRU_LINKS, ModelConfig
from mimcast.models.stack import RecurrentStack

StackBuilder = Callable[[ModelConfig], RecurrentStack]
_BUILDERS: dict[str, StackBuilder] = {}


def register_model(name: str) -> Callable[[StackBuilder], StackBuilder]:
    """Decorator: `@register_model("mim")` on a function ModelConfig -> RecurrentStack."""

    def decorate(builder: StackBuilder) -> StackBuilder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def list_models() -> list[str]:
    """Names accepted by create_model, sorted."""
    return sorted(_BUILDERS)


def check_buildable(config: ModelConfig) -> None:
    """Raise ConfigError when no model can be built from `config` (frame shape aside)."""
    if config.name not in _BUILDERS:
        raise ConfigError(f"unknown model {config.name!r}; available: {', '.join(list_models())}")
    if config.name != "mim" and not (config.mim_n and config.mim_s):
        raise ConfigError("mim_n / mim_s ablations apply to the 'mim' model only")
    if config.name != "trajgru" and config.trajgru_links != TRAJGRU_LINKS:
        raise ConfigError("model.trajgru_links applies to the 'trajgru' model only")


def build_stack(config: ModelConfig) -> RecurrentStack:
    """The recurrent stack of a config (which must have its frame shape)."""
    check_buildable(config)
    if not config.has_frames:
        raise ConfigError("a model needs the frame shape: in_channels, height and width")
    return _BUILDERS[config.name](config)
